package pgstore

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/airlock-dev/airlock/internal/store"
)

// The session slots of max_sessions_per_grant across replicas
// (store.SessionSlots), in session_slots (migration 0010). They are not
// part of the record: written outside the writers' lock, on the pool,
// each in one round trip.

var _ store.SessionSlots = (*Store)(nil)

// takeSlotSQL takes a slot for grant $2 when fewer than $6 live ones are
// held at $4 (unix nanoseconds), taking over kept ones if they alone stand
// in the way ($3's own first, then the oldest leases), and deletes the
// grant's expired ones. It runs after the grant's slot lock (a statement
// of its own before it, in one transaction), so its snapshot sees every
// slot taken before.
const takeSlotSQL = `WITH live AS (
	SELECT id, replica, kept, lease_until FROM session_slots WHERE grant_id = $2 AND lease_until > $4
), expired AS (
	DELETE FROM session_slots WHERE grant_id = $2 AND lease_until <= $4
), victim AS (
	SELECT id FROM live WHERE kept AND (SELECT count(*) FROM live WHERE NOT kept) < $6
	ORDER BY replica = $3 DESC, lease_until, id
	LIMIT greatest(0, (SELECT count(*) FROM live) - $6 + 1)
), stolen AS (
	DELETE FROM session_slots s USING victim v WHERE s.id = v.id RETURNING s.id, s.grant_id, s.replica
), ins AS (
	INSERT INTO session_slots (id, grant_id, replica, lease_until)
	SELECT $1, $2, $3, $5 WHERE (SELECT count(*) FROM live) - (SELECT count(*) FROM victim) < $6
	RETURNING id
)
SELECT (SELECT count(*) FROM ins) = 1, id, grant_id, replica FROM (SELECT NULL) one LEFT JOIN stolen ON true`

// TakeSlot is store.SessionSlots.TakeSlot: BEGIN, the grant's slot lock
// (transaction-scoped: released at COMMIT), the take and COMMIT in one
// round trip.
func (s *Store) TakeSlot(ctx context.Context, sl store.Slot, max int, now time.Time) (bool, []store.Slot, error) {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return false, nil, fmt.Errorf("pgstore: taking a session slot: %w", err)
	}
	defer conn.Release() // a connection left in a transaction is closed, not pooled
	b := &pgx.Batch{}
	b.Queue("BEGIN")
	b.Queue("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", "airlock.slots/"+s.schema+"/"+sl.GrantID)
	b.Queue(takeSlotSQL, sl.ID, sl.GrantID, sl.Replica, now.UnixNano(), sl.LeaseUntil.UnixNano(), max)
	b.Queue("COMMIT")
	br := conn.SendBatch(ctx, b)
	var taken bool
	var stolen []store.Slot
	_, err = br.Exec()
	if err == nil {
		_, err = br.Exec()
	}
	if err == nil {
		var rows pgx.Rows
		rows, err = br.Query()
		if err == nil {
			for rows.Next() {
				var id, grant, replica *string
				if err = rows.Scan(&taken, &id, &grant, &replica); err != nil {
					break
				}
				if id != nil {
					stolen = append(stolen, store.Slot{ID: *id, GrantID: *grant, Replica: *replica, Kept: true})
				}
			}
			rows.Close()
			if err == nil {
				err = rows.Err()
			}
		}
	}
	if err == nil {
		_, err = br.Exec()
	}
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return false, nil, fmt.Errorf("pgstore: taking a session slot: %w", err)
	}
	return taken, stolen, nil
}

// KeepSlot is store.SessionSlots.KeepSlot.
func (s *Store) KeepSlot(ctx context.Context, id string) error {
	if _, err := s.pool.Exec(ctx, "UPDATE session_slots SET kept = true WHERE id = $1", id); err != nil {
		return fmt.Errorf("pgstore: keeping a session slot: %w", err)
	}
	return nil
}

// ReleaseSlots is store.SessionSlots.ReleaseSlots.
func (s *Store) ReleaseSlots(ctx context.Context, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	if _, err := s.pool.Exec(ctx, "DELETE FROM session_slots WHERE id = ANY($1)", ids); err != nil {
		return fmt.Errorf("pgstore: releasing session slots: %w", err)
	}
	return nil
}

// RenewSlots is store.SessionSlots.RenewSlots: one round trip.
func (s *Store) RenewSlots(ctx context.Context, replica string, slots []store.Slot, until time.Time) (lost, missing []string, err error) {
	ids := make([]string, len(slots))
	for i, sl := range slots {
		ids[i] = sl.ID
	}
	rows, err := s.pool.Query(ctx, "UPDATE session_slots SET lease_until = $3 WHERE id = ANY($1) AND replica = $2 RETURNING id", ids, replica, until.UnixNano())
	if err != nil {
		return nil, nil, fmt.Errorf("pgstore: renewing session slots: %w", err)
	}
	renewed, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, nil, fmt.Errorf("pgstore: renewing session slots: %w", err)
	}
	have := make(map[string]bool, len(renewed))
	for _, id := range renewed {
		have[id] = true
	}
	for _, sl := range slots {
		switch {
		case have[sl.ID]:
		case sl.Kept:
			lost = append(lost, sl.ID)
		default:
			missing = append(missing, sl.ID)
		}
	}
	return lost, missing, nil
}

// ClearSlots is store.SessionSlots.ClearSlots.
func (s *Store) ClearSlots(ctx context.Context, replica string) error {
	if _, err := s.pool.Exec(ctx, "DELETE FROM session_slots WHERE replica = $1", replica); err != nil {
		return fmt.Errorf("pgstore: clearing replica %q's session slots: %w", replica, err)
	}
	return nil
}
