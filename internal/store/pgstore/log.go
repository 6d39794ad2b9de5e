package pgstore

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/airlock-dev/airlock/internal/store"
)

const (
	logCols    = "seq, time, COALESCE(type, ''), COALESCE(grant_id, ''), COALESCE(session_id, ''), data, leaf_hash"
	logSizeSQL = "SELECT COALESCE(MAX(seq) + 1, 0) FROM log_entries"
)

func scanLogEntry(sc interface{ Scan(...any) error }) (store.LogEntry, error) {
	var (
		e  store.LogEntry
		tm *int64
	)
	if err := sc.Scan(&e.Seq, &tm, &e.Type, &e.GrantID, &e.SessionID, &e.Data, &e.LeafHash); err != nil {
		return store.LogEntry{}, err
	}
	e.Time = fromNullNanos(tm)
	return e, nil
}

// LogSize is the number of log entries: one more than the highest Seq.
func (s *Store) LogSize(ctx context.Context) (int64, error) {
	var n int64
	if err := s.pool.QueryRow(ctx, logSizeSQL).Scan(&n); err != nil {
		return 0, fmt.Errorf("pgstore: log size: %w", err)
	}
	return n, nil
}

// ScanLog calls fn for every entry with from <= Seq < to, in Seq order,
// streaming rows of one statement (one snapshot). It stops at the first
// error fn returns and returns it unwrapped. fn may call other methods of
// the store meanwhile (they use other connections of the pool).
func (s *Store) ScanLog(ctx context.Context, from, to int64, fn func(store.LogEntry) error) error {
	if to <= from {
		return nil
	}
	rows, err := s.pool.Query(ctx, "SELECT "+logCols+" FROM log_entries WHERE seq >= $1 AND seq < $2 ORDER BY seq", from, to)
	if err != nil {
		return fmt.Errorf("pgstore: scan log: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		e, err := scanLogEntry(rows)
		if err != nil {
			return fmt.Errorf("pgstore: scan log: %w", err)
		}
		if err := fn(e); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("pgstore: scan log: %w", err)
	}
	return nil
}

// ScanLeafHashes calls fn with the sequence number and stored leaf hash of
// every entry with from <= Seq < to, in Seq order, without their bytes:
// for a replica that follows the tree others grow (auditlog's follower),
// which needs only the hashes. It stops at fn's first error and returns it.
func (s *Store) ScanLeafHashes(ctx context.Context, from, to int64, fn func(seq int64, hash []byte) error) error {
	if to <= from {
		return nil
	}
	rows, err := s.pool.Query(ctx, "SELECT seq, leaf_hash FROM log_entries WHERE seq >= $1 AND seq < $2 ORDER BY seq", from, to)
	if err != nil {
		return fmt.Errorf("pgstore: scan leaf hashes: %w", err)
	}
	defer rows.Close()
	var seq int64
	var h []byte
	for rows.Next() {
		if err := rows.Scan(&seq, &h); err != nil {
			return fmt.Errorf("pgstore: scan leaf hashes: %w", err)
		}
		if err := fn(seq, h); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("pgstore: scan leaf hashes: %w", err)
	}
	return nil
}

// LogEntries returns the entries matching f in Seq order.
func (s *Store) LogEntries(ctx context.Context, f store.LogFilter) ([]store.LogEntry, error) {
	q, p := logEntriesQuery(f)
	rows, err := s.pool.Query(ctx, q, p...)
	if err != nil {
		return nil, fmt.Errorf("pgstore: log entries: %w", err)
	}
	defer rows.Close()
	var out []store.LogEntry
	for rows.Next() {
		e, err := scanLogEntry(rows)
		if err != nil {
			return nil, fmt.Errorf("pgstore: log entries: %w", err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("pgstore: log entries: %w", err)
	}
	return out, nil
}

// logEntriesQuery is LogEntries' query and its parameters.
func logEntriesQuery(f store.LogFilter) (string, params) {
	var (
		p     params
		conds []string
	)
	if f.GrantID != "" {
		conds = append(conds, "grant_id = "+p.add(f.GrantID))
	}
	if f.SessionID != "" {
		conds = append(conds, "session_id = "+p.add(f.SessionID))
	}
	if f.NoSession {
		// The condition of the grant's own entries' partial index
		// (migration 12), which a generic plan of the statement uses
		// too: it holds no parameter.
		conds = append(conds, "session_id IS NULL")
	}
	if f.After > 0 {
		conds = append(conds, "seq > "+p.add(f.After))
	}
	switch {
	case store.IndexedLogTypes[f.Type]:
		// A literal, so that the type's partial index (migration 6,
		// the findings'; 13, the log.refused entries') serves the query whatever plan the statement gets: pgx
		// prepares and caches statements, and a generic plan of "type =
		// $1" cannot use an index on "type = 'finding'".
		conds = append(conds, "type = '"+f.Type+"'")
	case f.Type != "":
		conds = append(conds, "type = "+p.add(f.Type))
	}
	q := "SELECT " + logCols + " FROM log_entries"
	if len(conds) > 0 {
		q += " WHERE " + strings.Join(conds, " AND ")
	}
	q += " ORDER BY seq"
	if f.Limit > 0 {
		q += " LIMIT " + p.add(int64(f.Limit))
	}
	return q, p
}

const (
	checkpointCols      = "id, COALESCE(size, 0), root, note, frontier, created_at, head_mac"
	latestCheckpointSQL = "SELECT " + checkpointCols + " FROM log_checkpoints ORDER BY id DESC LIMIT 1"
)

func scanCheckpoint(sc interface{ Scan(...any) error }) (store.Checkpoint, error) {
	var (
		c  store.Checkpoint
		tm *int64
	)
	if err := sc.Scan(&c.ID, &c.Size, &c.Root, &c.Note, &c.Frontier, &tm, &c.MAC); err != nil {
		return store.Checkpoint{}, err
	}
	c.CreatedAt = fromNullNanos(tm)
	return c, nil
}

// ScanCheckpoints calls fn for every checkpoint in ID order. It stops at the
// first error fn returns and returns it unwrapped.
func (s *Store) ScanCheckpoints(ctx context.Context, fn func(store.Checkpoint) error) error {
	rows, err := s.pool.Query(ctx, "SELECT "+checkpointCols+" FROM log_checkpoints ORDER BY id")
	if err != nil {
		return fmt.Errorf("pgstore: scan checkpoints: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		c, err := scanCheckpoint(rows)
		if err != nil {
			return fmt.Errorf("pgstore: scan checkpoints: %w", err)
		}
		if err := fn(c); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("pgstore: scan checkpoints: %w", err)
	}
	return nil
}

// LatestCheckpoint returns the checkpoint with the highest ID, or
// store.ErrNotFound when none was written yet.
func (s *Store) LatestCheckpoint(ctx context.Context) (store.Checkpoint, error) {
	c, err := scanCheckpoint(s.pool.QueryRow(ctx, latestCheckpointSQL))
	if errors.Is(err, pgx.ErrNoRows) {
		return store.Checkpoint{}, fmt.Errorf("pgstore: latest checkpoint: %w", store.ErrNotFound)
	}
	if err != nil {
		return store.Checkpoint{}, fmt.Errorf("pgstore: latest checkpoint: %w", err)
	}
	return c, nil
}

// CheckpointOfSize returns the newest checkpoint of a log of size entries,
// or store.ErrNotFound (store.CheckpointFinder). With several replicas the
// tree a tlog-witness last cosigned was often signed by another replica:
// its stored frontier spares rebuilding that tree from the entries.
func (s *Store) CheckpointOfSize(ctx context.Context, size int64) (store.Checkpoint, error) {
	c, err := scanCheckpoint(s.pool.QueryRow(ctx, "SELECT "+checkpointCols+" FROM log_checkpoints WHERE size = $1 ORDER BY id DESC LIMIT 1", size))
	if errors.Is(err, pgx.ErrNoRows) {
		return store.Checkpoint{}, fmt.Errorf("pgstore: checkpoint of size %d: %w", size, store.ErrNotFound)
	}
	if err != nil {
		return store.Checkpoint{}, fmt.Errorf("pgstore: checkpoint of size %d: %w", size, err)
	}
	return c, nil
}
