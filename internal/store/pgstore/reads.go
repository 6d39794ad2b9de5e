package pgstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/airlock-dev/airlock/internal/model"
	"github.com/airlock-dev/airlock/internal/store"
	"github.com/airlock-dev/airlock/internal/store/storerow"
)

// Identity returns one identity by name.
func (s *Store) Identity(ctx context.Context, name string) (model.Identity, error) {
	return getIdentity(ctx, s.pool, name)
}

// Identities returns every identity, ordered by name.
func (s *Store) Identities(ctx context.Context) ([]model.Identity, error) {
	rows, err := s.pool.Query(ctx, "SELECT "+identityCols+" FROM identities ORDER BY name")
	if err != nil {
		return nil, fmt.Errorf("pgstore: list identities: %w", err)
	}
	defer rows.Close()
	var out []model.Identity
	for rows.Next() {
		id, err := scanIdentity(rows)
		if err != nil {
			return nil, fmt.Errorf("pgstore: list identities: %w", err)
		}
		out = append(out, id)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("pgstore: list identities: %w", err)
	}
	return out, nil
}

func getIdentity(ctx context.Context, q querier, name string) (model.Identity, error) {
	id, err := scanIdentity(q.QueryRow(ctx, "SELECT "+identityCols+" FROM identities WHERE name = $1", name))
	if errors.Is(err, pgx.ErrNoRows) {
		return model.Identity{}, fmt.Errorf("pgstore: identity %q: %w", name, store.ErrNotFound)
	}
	if err != nil {
		return model.Identity{}, fmt.Errorf("pgstore: identity %q: %w", name, err)
	}
	return id, nil
}

// withUsage wraps a query whose columns are (requested_at, id, record) into
// one that also sums each grant's usage from its sessions (through the
// sessions_grant index), so that a grant and its usage come from the same
// snapshot in one round trip. Its columns are those read by queryGrants.
func withUsage(grantsSQL string) string {
	return `WITH g AS (` + grantsSQL + `)
SELECT g.id, g.record, u.n, u.calls, u.denied, u.bytes_in, u.bytes_out, u.used
FROM g CROSS JOIN LATERAL (
	SELECT count(*) AS n,
		COALESCE(sum(s.calls), 0)::bigint AS calls,
		COALESCE(sum(s.denied), 0)::bigint AS denied,
		COALESCE(sum(s.bytes_in), 0)::bigint AS bytes_in,
		COALESCE(sum(s.bytes_out), 0)::bigint AS bytes_out,
		array_agg(s.used_json) FILTER (WHERE s.used_json IS NOT NULL AND s.used_json <> '') AS used
	FROM sessions s WHERE s.grant_id = g.id
) u
ORDER BY g.requested_at, g.id`
}

// withoutUsage wraps a query as withUsage does, its usage columns zero
// and its sessions unread (GrantFilter.RecordsOnly), so that queryGrants
// reads either.
func withoutUsage(grantsSQL string) string {
	return `WITH g AS (` + grantsSQL + `)
SELECT g.id, g.record, 0::bigint, 0::bigint, 0::bigint, 0::bigint, 0::bigint, NULL::text[]
FROM g ORDER BY g.requested_at, g.id`
}

// queryGrants runs a withUsage (or withoutUsage) query and returns the
// decoded grants with their Usage.
func queryGrants(ctx context.Context, q querier, query string, args ...any) ([]model.Grant, error) {
	rows, err := q.Query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("pgstore: query grants: %w", err)
	}
	defer rows.Close()
	var (
		out  []model.Grant
		id   string
		rec  []byte
		u    model.Usage
		used []string
	)
	for rows.Next() {
		used = used[:0]
		if err := rows.Scan(&id, &rec, &u.Sessions, &u.Calls, &u.DeniedCalls, &u.BytesIn, &u.BytesOut, &used); err != nil {
			return nil, fmt.Errorf("pgstore: query grants: %w", err)
		}
		g, err := storerow.DecodeGrant(rec)
		if err != nil {
			return nil, fmt.Errorf("pgstore: grant %q: %w", id, err)
		}
		g.Usage = u
		for _, js := range used {
			var pairs []string
			if err := json.Unmarshal([]byte(js), &pairs); err != nil {
				return nil, fmt.Errorf("pgstore: read usage of grant %q: %w", id, err)
			}
			g.Usage.ScopeUsed = append(g.Usage.ScopeUsed, pairs...)
		}
		if len(g.Usage.ScopeUsed) > 0 {
			slices.Sort(g.Usage.ScopeUsed)
			g.Usage.ScopeUsed = slices.Compact(g.Usage.ScopeUsed)
		}
		out = append(out, g)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("pgstore: query grants: %w", err)
	}
	return out, nil
}

// getGrant returns the grant whose column col equals v, with Usage; lock
// adds FOR UPDATE (inside a write transaction).
func getGrant(ctx context.Context, q querier, col, v string, lock bool) (model.Grant, error) {
	inner := "SELECT requested_at, id, record FROM grants WHERE " + col + " = $1"
	if lock {
		inner += " FOR UPDATE"
	}
	gs, err := queryGrants(ctx, q, withUsage(inner), v)
	if err != nil {
		return model.Grant{}, err
	}
	if len(gs) == 0 {
		return model.Grant{}, fmt.Errorf("pgstore: grant with %s %q: %w", col, v, store.ErrNotFound)
	}
	return gs[0], nil
}

// Grant returns one grant with its Usage filled from its sessions.
func (s *Store) Grant(ctx context.Context, id string) (model.Grant, error) {
	return getGrant(ctx, s.pool, "id", id, false)
}

// GrantRecord returns one grant's record without its Usage, its sessions
// unread.
func (s *Store) GrantRecord(ctx context.Context, id string) (model.Grant, error) {
	return getGrantRecord(ctx, s.pool, id, false)
}

// getGrantRecord returns grant id's record without its Usage; lock adds
// FOR UPDATE (inside a write transaction).
func getGrantRecord(ctx context.Context, q querier, id string, lock bool) (model.Grant, error) {
	query := "SELECT record FROM grants WHERE id = $1"
	if lock {
		query += " FOR UPDATE"
	}
	var rec []byte
	err := q.QueryRow(ctx, query, id).Scan(&rec)
	if errors.Is(err, pgx.ErrNoRows) {
		return model.Grant{}, fmt.Errorf("pgstore: grant with id %q: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return model.Grant{}, fmt.Errorf("pgstore: grant with id %q: %w", id, err)
	}
	g, err := storerow.DecodeGrant(rec)
	if err != nil {
		return model.Grant{}, fmt.Errorf("pgstore: grant with id %q: %w", id, err)
	}
	return g, nil
}

const openGrantsSQL = `SELECT requested_at, id, record FROM grants
	WHERE status IN ('pending', 'active') ORDER BY requested_at, id FOR UPDATE`

// Grants returns the grants matching f, ordered by RequestedAt then ID, with
// Usage filled unless f.RecordsOnly, in one statement. See the package
// documentation.
func (s *Store) Grants(ctx context.Context, f store.GrantFilter) ([]model.Grant, error) {
	if !f.Since.IsZero() && !f.Until.IsZero() && !f.Until.After(f.Since) {
		return nil, nil // an empty window overlaps nothing
	}
	query, args := grantsQuery(f)
	if f.RecordsOnly {
		return queryGrants(ctx, s.pool, withoutUsage(query), args...)
	}
	return queryGrants(ctx, s.pool, withUsage(query), args...)
}

// params numbers query parameters.
type params []any

func (p *params) add(v any) string {
	*p = append(*p, v)
	return "$" + strconv.Itoa(len(*p))
}

// grantsQuery builds the review query for f, with columns (requested_at,
// id, record).
//
// With a lower bound Since, a grant overlaps the window iff it was requested
// before Until and its deadline is not before Since. Every grant that is not
// long_lived lived at most max_span_nanos, so it was requested at or after
// Since-max_span: that bounds the index range scan of the first SELECT.
// Long-lived grants requested before that are found by the second SELECT
// through the grants_long partial index. max_span_nanos is read by the same
// statement, so it is consistent with the rows.
func grantsQuery(f store.GrantFilter) (string, []any) {
	var p params
	var conds []string
	if f.Identity != "" {
		conds = append(conds, "identity = "+p.add(f.Identity))
	}
	if f.Target != "" {
		conds = append(conds, "target = "+p.add(f.Target))
	}
	if f.Account != "" {
		conds = append(conds, "account = "+p.add(f.Account))
	}
	if len(f.Status) > 0 {
		st := make([]string, len(f.Status))
		for i, s := range f.Status {
			st[i] = string(s)
		}
		conds = append(conds, "status = ANY("+p.add(st)+"::text[])")
	}
	if f.After.ID != "" {
		// The cursor's bound on requested_at is a range of the index
		// each SELECT reads; id breaks ties.
		at := p.add(storerow.ClampNanos(f.After.RequestedAt))
		conds = append(conds, "requested_at >= "+at+" AND (requested_at > "+at+" OR id > "+p.add(f.After.ID)+")")
	}
	where := func(conds []string) string {
		if len(conds) == 0 {
			return ""
		}
		return " WHERE " + strings.Join(conds, " AND ")
	}
	const sel = "SELECT requested_at, id, record FROM grants"
	var query string
	if f.Since.IsZero() {
		if !f.Until.IsZero() {
			conds = append(conds, "requested_at < "+p.add(storerow.ClampNanos(f.Until)))
		}
		query = sel + where(conds) + " ORDER BY requested_at, id"
	} else {
		since := p.add(storerow.ClampNanos(f.Since))
		lo := `(SELECT CASE WHEN ` + since + `::bigint < (-9223372036854775808)::bigint + m.span
			THEN (-9223372036854775808)::bigint ELSE ` + since + `::bigint - m.span END
			FROM (SELECT COALESCE((SELECT value::bigint FROM meta WHERE key = 'max_span_nanos'), 0) AS span) m)`
		first := slices.Clone(conds)
		if !f.Until.IsZero() {
			first = append(first, "requested_at < "+p.add(storerow.ClampNanos(f.Until)))
		}
		first = append(first, "requested_at >= "+lo, "span_end >= "+since)
		long := append(slices.Clone(conds), "long_lived", "requested_at < "+lo, "span_end >= "+since)
		query = "(" + sel + where(first) + ") UNION ALL (" + sel + where(long) + ") ORDER BY requested_at, id"
	}
	if f.Limit > 0 {
		query += " LIMIT " + p.add(int64(f.Limit))
	}
	return query, p
}

// Session returns one session.
func (s *Store) Session(ctx context.Context, id string) (model.Session, error) {
	return getSession(ctx, s.pool, id)
}

// Sessions returns a grant's sessions ordered by StartedAt (then ID); a
// session without a start time comes first, as in SQLite.
func (s *Store) Sessions(ctx context.Context, grantID string) ([]model.Session, error) {
	return s.SessionsPage(ctx, store.SessionFilter{GrantID: grantID})
}

// SessionsPage returns a page of a grant's sessions ordered by StartedAt
// (NULL first), then ID, through the sessions_grant index; the cursor's
// started_at is a range of it.
func (s *Store) SessionsPage(ctx context.Context, f store.SessionFilter) ([]model.Session, error) {
	var p params
	query := "SELECT record FROM sessions WHERE grant_id = " + p.add(f.GrantID)
	switch {
	case f.After.ID == "":
	case f.After.StartedAt.IsZero():
		query += " AND (started_at IS NOT NULL OR id > " + p.add(f.After.ID) + ")"
	default:
		at := p.add(storerow.ClampNanos(f.After.StartedAt))
		query += " AND started_at >= " + at + " AND (started_at > " + at + " OR id > " + p.add(f.After.ID) + ")"
	}
	query += " ORDER BY started_at NULLS FIRST, id"
	if f.Limit > 0 {
		query += " LIMIT " + p.add(int64(f.Limit))
	}
	out, err := scanSessions(ctx, s.pool, query, p...)
	if err != nil {
		return nil, fmt.Errorf("pgstore: sessions of grant %q: %w", f.GrantID, err)
	}
	return out, nil
}

// SessionsInLogOrder is store.SessionLogOrder.SessionsInLogOrder, through
// the sessions_grant_seq index.
func (s *Store) SessionsInLogOrder(ctx context.Context, grantID string, afterSeq int64, afterID string, limit int) ([]model.Session, []int64, error) {
	var p params
	query := "SELECT record, start_seq FROM sessions WHERE grant_id = " + p.add(grantID)
	if afterSeq != 0 || afterID != "" {
		query += " AND (start_seq, id) > (" + p.add(afterSeq) + ", " + p.add(afterID) + ")"
	}
	query += " ORDER BY start_seq, id"
	if limit > 0 {
		query += " LIMIT " + p.add(int64(limit))
	}
	rows, err := s.pool.Query(ctx, query, p...)
	if err != nil {
		return nil, nil, fmt.Errorf("pgstore: sessions of grant %q: %w", grantID, err)
	}
	defer rows.Close()
	var out []model.Session
	var seqs []int64
	var rec []byte
	var seq int64
	for rows.Next() {
		if err := rows.Scan(&rec, &seq); err != nil {
			return nil, nil, fmt.Errorf("pgstore: sessions of grant %q: %w", grantID, err)
		}
		ss, err := storerow.DecodeSession(rec)
		if err != nil {
			return nil, nil, fmt.Errorf("pgstore: sessions of grant %q: %w", grantID, err)
		}
		out, seqs = append(out, ss), append(seqs, seq)
	}
	if err := rows.Err(); err != nil {
		return nil, nil, fmt.Errorf("pgstore: sessions of grant %q: %w", grantID, err)
	}
	return out, seqs, nil
}

// OpenSessions returns every session whose row records no end, ordered by
// ID, through the partial index of open sessions (store.OpenSessionLister).
func (s *Store) OpenSessions(ctx context.Context) ([]model.Session, error) {
	out, err := scanSessions(ctx, s.pool, "SELECT record FROM sessions WHERE open ORDER BY id")
	if err != nil {
		return nil, fmt.Errorf("pgstore: open sessions: %w", err)
	}
	return out, nil
}

func scanSessions(ctx context.Context, q querier, query string, args ...any) ([]model.Session, error) {
	var out []model.Session
	err := eachSession(ctx, q, query, args, func(s model.Session) error {
		out = append(out, s)
		return nil
	})
	return out, err
}

// errStop carries fn's error out of eachSession unwrapped.
type errStop struct{ err error }

func (e errStop) Error() string { return e.err.Error() }

func eachSession(ctx context.Context, q querier, query string, args []any, fn func(model.Session) error) error {
	rows, err := q.Query(ctx, query, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	var rec []byte
	for rows.Next() {
		if err := rows.Scan(&rec); err != nil {
			return err
		}
		ss, err := storerow.DecodeSession(rec)
		if err != nil {
			return err
		}
		if err := fn(ss); err != nil {
			return errStop{err}
		}
	}
	return rows.Err()
}

// ScanSessions calls fn for every session, in ID order (for verification,
// which compares every row with the log), from one snapshot. It stops at the
// first error fn returns and returns it unwrapped.
func (s *Store) ScanSessions(ctx context.Context, fn func(model.Session) error) error {
	tx, err := s.readTx(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(context.Background())
	err = eachSession(ctx, tx, "SELECT record FROM sessions ORDER BY id", nil, fn)
	var stop errStop
	if errors.As(err, &stop) {
		return stop.err
	}
	if err != nil {
		return fmt.Errorf("pgstore: scan sessions: %w", err)
	}
	return nil
}
