package sqlitestore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/airlock-dev/airlock/internal/model"
	"github.com/airlock-dev/airlock/internal/store"
	"github.com/airlock-dev/airlock/internal/store/storerow"
)

// Identity returns one identity by name.
func (s *Store) Identity(ctx context.Context, name string) (model.Identity, error) {
	return getIdentity(ctx, s.r, s.identitySelect(), name)
}

// identitySelect is the identities' columns to select: identityCols, or
// for a database read before their bindings column, none recorded.
func (s *Store) identitySelect() string {
	if s.noBindings {
		return identityColsBefore7 + ", ''"
	}
	return identityCols
}

// Identities returns every identity, ordered by name.
func (s *Store) Identities(ctx context.Context) ([]model.Identity, error) {
	rows, err := s.r.QueryContext(ctx, "SELECT "+s.identitySelect()+" FROM identities ORDER BY name")
	if err != nil {
		return nil, fmt.Errorf("sqlitestore: list identities: %w", err)
	}
	defer rows.Close()
	var out []model.Identity
	for rows.Next() {
		id, err := scanIdentity(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlitestore: list identities: %w", err)
		}
		out = append(out, id)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlitestore: list identities: %w", err)
	}
	return out, nil
}

func getIdentity(ctx context.Context, q querier, cols, name string) (model.Identity, error) {
	id, err := scanIdentity(q.QueryRowContext(ctx, "SELECT "+cols+" FROM identities WHERE name = ?", name))
	if errors.Is(err, sql.ErrNoRows) {
		return model.Identity{}, fmt.Errorf("sqlitestore: identity %q: %w", name, store.ErrNotFound)
	}
	if err != nil {
		return model.Identity{}, fmt.Errorf("sqlitestore: identity %q: %w", name, err)
	}
	return id, nil
}

// Grant returns one grant with its Usage filled from its sessions.
func (s *Store) Grant(ctx context.Context, id string) (model.Grant, error) {
	tx, err := s.readTx(ctx)
	if err != nil {
		return model.Grant{}, err
	}
	defer tx.Rollback()
	return getGrant(ctx, tx, "id", id)
}

// GrantRecord returns one grant's record without its Usage, its sessions
// unread: one statement, which needs no read transaction of its own.
func (s *Store) GrantRecord(ctx context.Context, id string) (model.Grant, error) {
	return getGrantRecord(ctx, s.r, "id", id)
}

// getGrant returns the grant whose column col equals v, with Usage.
func getGrant(ctx context.Context, q querier, col, v string) (model.Grant, error) {
	g, err := getGrantRecord(ctx, q, col, v)
	if err != nil {
		return model.Grant{}, err
	}
	gs := []model.Grant{g}
	if err := fillUsage(ctx, q, gs); err != nil {
		return model.Grant{}, err
	}
	return gs[0], nil
}

// getGrantRecord returns the grant whose column col equals v, without
// Usage.
func getGrantRecord(ctx context.Context, q querier, col, v string) (model.Grant, error) {
	var rec []byte
	err := q.QueryRowContext(ctx, "SELECT record FROM grants WHERE "+col+" = ?", v).Scan(&rec)
	if errors.Is(err, sql.ErrNoRows) {
		return model.Grant{}, fmt.Errorf("sqlitestore: grant with %s %q: %w", col, v, store.ErrNotFound)
	}
	if err != nil {
		return model.Grant{}, fmt.Errorf("sqlitestore: grant with %s %q: %w", col, v, err)
	}
	g, err := storerow.DecodeGrant(rec)
	if err != nil {
		return model.Grant{}, fmt.Errorf("sqlitestore: grant with %s %q: %w", col, v, err)
	}
	return g, nil
}

// queryGrants runs a query whose columns are (requested_at, id, record) and
// returns the decoded grants, without Usage.
func queryGrants(ctx context.Context, q querier, query string, args ...any) ([]model.Grant, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("sqlitestore: query grants: %w", err)
	}
	defer rows.Close()
	var out []model.Grant
	var (
		at  int64
		id  string
		rec []byte
	)
	for rows.Next() {
		if err := rows.Scan(&at, &id, &rec); err != nil {
			return nil, fmt.Errorf("sqlitestore: query grants: %w", err)
		}
		g, err := storerow.DecodeGrant(rec)
		if err != nil {
			return nil, fmt.Errorf("sqlitestore: grant %q: %w", id, err)
		}
		out = append(out, g)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlitestore: query grants: %w", err)
	}
	return out, nil
}

const openGrantsSQL = `SELECT requested_at, id, record FROM grants
	WHERE status IN ('pending', 'active') ORDER BY requested_at, id`

// fillUsage sets the Usage of every grant in gs from its sessions, reading
// only those grants' sessions (through the sessions_grant index).
func fillUsage(ctx context.Context, q querier, gs []model.Grant) error {
	if len(gs) == 0 {
		return nil
	}
	const cols = "SELECT grant_id, calls, denied, bytes_in, bytes_out, used_json FROM sessions WHERE "
	var (
		rows *sql.Rows
		err  error
	)
	index := make(map[string]int, len(gs))
	for i := range gs {
		gs[i].Usage = model.Usage{}
		index[gs[i].ID] = i
	}
	if len(gs) == 1 {
		rows, err = q.QueryContext(ctx, cols+"grant_id = ?", gs[0].ID)
	} else {
		ids := make([]string, len(gs))
		for i := range gs {
			ids[i] = gs[i].ID
		}
		js, _ := json.Marshal(ids) // []string always encodes
		rows, err = q.QueryContext(ctx, cols+"grant_id IN (SELECT value FROM json_each(?))", string(js))
	}
	if err != nil {
		return fmt.Errorf("sqlitestore: read usage: %w", err)
	}
	defer rows.Close()
	touched := map[int]bool{}
	for rows.Next() {
		var (
			gid                           string
			calls, denied, bytesIn, bytes int64
			used                          sql.NullString
		)
		if err := rows.Scan(&gid, &calls, &denied, &bytesIn, &bytes, &used); err != nil {
			return fmt.Errorf("sqlitestore: read usage: %w", err)
		}
		i, ok := index[gid]
		if !ok {
			continue
		}
		u := &gs[i].Usage
		u.Sessions++
		u.Calls += calls
		u.DeniedCalls += denied
		u.BytesIn += bytesIn
		u.BytesOut += bytes
		if used.Valid && used.String != "" {
			var pairs []string
			if err := json.Unmarshal([]byte(used.String), &pairs); err != nil {
				return fmt.Errorf("sqlitestore: read usage of grant %q: %w", gid, err)
			}
			u.ScopeUsed = append(u.ScopeUsed, pairs...)
			touched[i] = true
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("sqlitestore: read usage: %w", err)
	}
	for i := range touched {
		u := &gs[i].Usage
		slices.Sort(u.ScopeUsed)
		u.ScopeUsed = slices.Compact(u.ScopeUsed)
	}
	return nil
}

// Grants returns the grants matching f, ordered by RequestedAt then ID, with
// Usage filled unless f.RecordsOnly. See the package documentation for how
// the time window is answered from the indexes.
func (s *Store) Grants(ctx context.Context, f store.GrantFilter) ([]model.Grant, error) {
	if !f.Since.IsZero() && !f.Until.IsZero() && !f.Until.After(f.Since) {
		return nil, nil // an empty window overlaps nothing
	}
	tx, err := s.readTx(ctx)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	var maxSpan int64
	if !f.Since.IsZero() {
		if maxSpan, err = readMaxSpan(ctx, tx); err != nil {
			return nil, err
		}
	}
	query, args := grantsQuery(f, maxSpan)
	gs, err := queryGrants(ctx, tx, query, args...)
	if err != nil || f.RecordsOnly {
		return gs, err
	}
	if err := fillUsage(ctx, tx, gs); err != nil {
		return nil, err
	}
	return gs, nil
}

func readMaxSpan(ctx context.Context, q querier) (int64, error) {
	var v sql.NullString
	err := q.QueryRowContext(ctx, "SELECT value FROM meta WHERE key = 'max_span_nanos'").Scan(&v)
	if errors.Is(err, sql.ErrNoRows) || (err == nil && !v.Valid) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("sqlitestore: read max_span_nanos: %w", err)
	}
	n, err := strconv.ParseInt(v.String, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("sqlitestore: meta max_span_nanos %q is not a non-negative integer", v.String)
	}
	return n, nil
}

// grantsQuery builds the review query for f given max_span_nanos. It returns
// columns (requested_at, id, record).
//
// With a lower bound Since, a grant overlaps the window iff it was requested
// before Until and its deadline is not before Since. Every grant whose
// lifetime is at most longSpan lived at most maxSpan, so it was requested at
// or after Since-maxSpan: that bounds the index range scan of the first
// SELECT. Longer-lived grants requested before that are found by the second
// SELECT through the grants_long partial index.
//
// Each SELECT names its index (INDEXED BY) so the plan never depends on the
// planner's guesses: the first SELECT uses the (identity | target | account |
// status, requested_at) index of the first of those filters given, else
// (requested_at); the second uses grants_long.
func grantsQuery(f store.GrantFilter, maxSpan int64) (string, []any) {
	var conds []string
	var args []any
	index := "grants_time"
	switch {
	case f.Identity != "":
		index = "grants_identity_time"
	case f.Target != "":
		index = "grants_target_time"
	case f.Account != "":
		index = "grants_account_time"
	case len(f.Status) > 0:
		index = "grants_status_time"
	}
	if f.Identity != "" {
		conds = append(conds, "identity = ?")
		args = append(args, f.Identity)
	}
	if f.Target != "" {
		conds = append(conds, "target = ?")
		args = append(args, f.Target)
	}
	if f.Account != "" {
		conds = append(conds, "account = ?")
		args = append(args, f.Account)
	}
	if len(f.Status) > 0 {
		conds = append(conds, "status IN ("+strings.TrimSuffix(strings.Repeat("?, ", len(f.Status)), ", ")+")")
		for _, s := range f.Status {
			args = append(args, string(s))
		}
	}
	if f.After.ID != "" {
		// The cursor's bound on requested_at is a range of the index
		// each SELECT reads; id breaks ties.
		at := storerow.ClampNanos(f.After.RequestedAt)
		conds = append(conds, "requested_at >= ? AND (requested_at > ? OR id > ?)")
		args = append(args, at, at, f.After.ID)
	}
	filterConds := conds
	filterArgs := args

	where := func(conds []string) string {
		if len(conds) == 0 {
			return ""
		}
		return " WHERE " + strings.Join(conds, " AND ")
	}
	sel := func(index string) string {
		return "SELECT requested_at, id, record FROM grants INDEXED BY " + index
	}

	conds = slices.Clone(filterConds)
	args = slices.Clone(filterArgs)
	if !f.Until.IsZero() {
		conds = append(conds, "requested_at < ?")
		args = append(args, storerow.ClampNanos(f.Until))
	}
	var query string
	if f.Since.IsZero() {
		if len(conds) == 0 {
			query = "SELECT requested_at, id, record FROM grants ORDER BY requested_at, id"
		} else {
			query = sel(index) + where(conds) + " ORDER BY requested_at, id"
		}
	} else {
		since := storerow.ClampNanos(f.Since)
		lo := since - maxSpan
		if lo > since { // underflow
			lo = math.MinInt64
		}
		conds = append(conds, "requested_at >= ?", "span_end >= ?")
		args = append(args, lo, since)

		longConds := append(slices.Clone(filterConds),
			"span_end - requested_at > "+strconv.FormatInt(int64(longSpan), 10),
			"requested_at < ?", "span_end >= ?")
		args = append(args, filterArgs...)
		args = append(args, lo, since)

		query = sel(index) + where(conds) + " UNION ALL " + sel("grants_long") + where(longConds) + " ORDER BY 1, 2"
	}
	if f.Limit > 0 {
		query += " LIMIT ?"
		args = append(args, f.Limit)
	}
	return query, args
}

// Session returns one session.
func (s *Store) Session(ctx context.Context, id string) (model.Session, error) {
	var rec []byte
	err := s.r.QueryRowContext(ctx, "SELECT record FROM sessions WHERE id = ?", id).Scan(&rec)
	if errors.Is(err, sql.ErrNoRows) {
		return model.Session{}, fmt.Errorf("sqlitestore: session %q: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return model.Session{}, fmt.Errorf("sqlitestore: session %q: %w", id, err)
	}
	ss, err := storerow.DecodeSession(rec)
	if err != nil {
		return model.Session{}, fmt.Errorf("sqlitestore: session %q: %w", id, err)
	}
	return ss, nil
}

// openSessionsQuery's condition is sessions_open's, so that SQLite reads
// the partial index (TestOpenSessionsPlan).
const openSessionsQuery = `SELECT record FROM sessions WHERE instr(record, '"ended_at":') = 0 ORDER BY id`

// OpenSessions returns every session whose record states no end, through
// the sessions_open partial index (the query's condition is the index's).
func (s *Store) OpenSessions(ctx context.Context) ([]model.Session, error) {
	out, err := s.sessions(ctx, openSessionsQuery)
	if err != nil {
		return nil, fmt.Errorf("sqlitestore: open sessions: %w", err)
	}
	return out, nil
}

// Sessions returns a grant's sessions ordered by StartedAt (then ID).
func (s *Store) Sessions(ctx context.Context, grantID string) ([]model.Session, error) {
	return s.SessionsPage(ctx, store.SessionFilter{GrantID: grantID})
}

// SessionsPage returns a page of a grant's sessions ordered by StartedAt
// (NULL first, as SQLite orders it), then ID, through the sessions_grant
// index; the cursor's started_at is a range of it.
func (s *Store) SessionsPage(ctx context.Context, f store.SessionFilter) ([]model.Session, error) {
	query := "SELECT record FROM sessions WHERE grant_id = ?"
	args := []any{f.GrantID}
	switch {
	case f.After.ID == "":
	case f.After.StartedAt.IsZero():
		query += " AND (started_at IS NOT NULL OR id > ?)"
		args = append(args, f.After.ID)
	default:
		at := storerow.ClampNanos(f.After.StartedAt)
		query += " AND started_at >= ? AND (started_at > ? OR id > ?)"
		args = append(args, at, at, f.After.ID)
	}
	query += " ORDER BY started_at, id"
	if f.Limit > 0 {
		query += " LIMIT ?"
		args = append(args, f.Limit)
	}
	out, err := s.sessions(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("sqlitestore: sessions of grant %q: %w", f.GrantID, err)
	}
	return out, nil
}

// SessionsInLogOrder is store.SessionLogOrder.SessionsInLogOrder, through
// the sessions_grant_seq index (migration 8).
func (s *Store) SessionsInLogOrder(ctx context.Context, grantID string, afterSeq int64, afterID string, limit int) ([]model.Session, []int64, error) {
	if s.noStartSeq {
		return nil, nil, fmt.Errorf("sqlitestore: sessions of grant %q in log order: the database is from before schema version 8 (opened read-only, not migrated)", grantID)
	}
	query := "SELECT record, start_seq FROM sessions WHERE grant_id = ?"
	args := []any{grantID}
	if afterSeq != 0 || afterID != "" {
		query += " AND (start_seq, id) > (?, ?)"
		args = append(args, afterSeq, afterID)
	}
	query += " ORDER BY start_seq, id"
	if limit > 0 {
		query += " LIMIT ?"
		args = append(args, limit)
	}
	rows, err := s.r.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, nil, fmt.Errorf("sqlitestore: sessions of grant %q: %w", grantID, err)
	}
	defer rows.Close()
	var out []model.Session
	var seqs []int64
	for rows.Next() {
		var rec []byte
		var seq int64
		if err := rows.Scan(&rec, &seq); err != nil {
			return nil, nil, fmt.Errorf("sqlitestore: sessions of grant %q: %w", grantID, err)
		}
		ss, err := storerow.DecodeSession(rec)
		if err != nil {
			return nil, nil, fmt.Errorf("sqlitestore: sessions of grant %q: %w", grantID, err)
		}
		out, seqs = append(out, ss), append(seqs, seq)
	}
	if err := rows.Err(); err != nil {
		return nil, nil, fmt.Errorf("sqlitestore: sessions of grant %q: %w", grantID, err)
	}
	return out, seqs, nil
}

// sessions decodes the records query selects.
func (s *Store) sessions(ctx context.Context, query string, args ...any) ([]model.Session, error) {
	rows, err := s.r.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []model.Session
	for rows.Next() {
		var rec []byte
		if err := rows.Scan(&rec); err != nil {
			return nil, err
		}
		ss, err := storerow.DecodeSession(rec)
		if err != nil {
			return nil, err
		}
		out = append(out, ss)
	}
	return out, rows.Err()
}
