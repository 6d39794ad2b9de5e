package sqlitestore

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/airlock-dev/airlock/internal/store"
)

// logColsE are an entry's columns, of log_entries e.
const logColsE = "e.seq, e.time, COALESCE(e.type, ''), COALESCE(e.grant_id, ''), COALESCE(e.session_id, ''), e.data, e.leaf_hash"

func scanLogEntry(rows *sql.Rows) (store.LogEntry, error) {
	var (
		e  store.LogEntry
		tm sql.NullInt64
	)
	if err := rows.Scan(&e.Seq, &tm, &e.Type, &e.GrantID, &e.SessionID, &e.Data, &e.LeafHash); err != nil {
		return store.LogEntry{}, err
	}
	e.Time = fromNullNanos(tm)
	return e, nil
}

// LogSize is the number of log entries: one more than the highest Seq, since
// the log starts at 0 and has no gaps (entries are stored as given; a gap left
// by tampering is for verification to find).
func (s *Store) LogSize(ctx context.Context) (int64, error) {
	var n int64
	if err := s.r.QueryRowContext(ctx, logSizeSQL).Scan(&n); err != nil {
		return 0, fmt.Errorf("sqlitestore: log size: %w", err)
	}
	return n, nil
}

// ScanLog calls fn for every entry with from <= Seq < to, in Seq order,
// streaming rows from one read snapshot. It stops at the first error fn
// returns and returns it unwrapped.
//
// Verification walks the whole log, so this reads rows through the driver
// directly: database/sql's per-column conversion and copying cost a third of
// the throughput. fn may call other methods of the store meanwhile.
func (s *Store) ScanLog(ctx context.Context, from, to int64, fn func(store.LogEntry) error) error {
	if to <= from {
		return nil
	}
	conn, err := s.r.Conn(ctx)
	if err != nil {
		return fmt.Errorf("sqlitestore: scan log: %w", err)
	}
	defer conn.Close()
	return scanRange(ctx, conn, scanLogSQL, from, to, 7, func(dest []driver.Value) (error, error) {
		e, err := logEntryFromValues(dest)
		if err != nil {
			return nil, err
		}
		return fn(e), nil
	})
}

// scanRange streams the rows of query, whose two parameters are from and
// to, on conn's driver connection directly (ScanLog says why), calling row
// with each row's ncols values; the values are reused for the next row.
// row returns the error of the scan's callback (fnErr), which ends the
// scan and is returned unwrapped, or one of its own reading the row (err),
// which ends it wrapped like the driver's. Neither is returned through
// conn.Raw, which would close the connection for a driver.ErrBadConn.
func scanRange(ctx context.Context, conn *sql.Conn, query string, from, to int64, ncols int, row func(dest []driver.Value) (fnErr, err error)) error {
	var fnErr, rowErr error
	err := conn.Raw(func(dc any) error {
		q, ok := dc.(driver.QueryerContext)
		if !ok {
			return fmt.Errorf("driver connection %T cannot query", dc)
		}
		rows, err := q.QueryContext(ctx, query, []driver.NamedValue{
			{Ordinal: 1, Value: from}, {Ordinal: 2, Value: to},
		})
		if err != nil {
			return err
		}
		defer rows.Close()
		dest := make([]driver.Value, ncols)
		for {
			if err := rows.Next(dest); err != nil {
				if err == io.EOF {
					return nil
				}
				return err
			}
			// Locals, not the captured variables, take each row's
			// results: stores through those on every row cost 17
			// instructions an entry (bench/HISTORY.md, "ScanLog's
			// shared row loop").
			if fe, re := row(dest); fe != nil || re != nil {
				fnErr, rowErr = fe, re
				return nil
			}
		}
	})
	switch {
	case fnErr != nil:
		return fnErr
	case rowErr != nil:
		err = rowErr
	}
	if err != nil {
		return fmt.Errorf("sqlitestore: scan log: %w", err)
	}
	return nil
}

var _ store.LogLeafScanner = (*Store)(nil)

// ScanLogLeaves implements store.LogLeafScanner: ScanLog reading only the
// sequence number, the entry bytes and the leaf hash. For the scan, the
// connection reads the file through a memory map, which saves a read system
// call per page (a tenth of a verification's time otherwise).
func (s *Store) ScanLogLeaves(ctx context.Context, from, to int64, fn func(seq int64, data, leaf []byte) error) error {
	if to <= from {
		return nil
	}
	conn, err := s.r.Conn(ctx)
	if err != nil {
		return fmt.Errorf("sqlitestore: scan log: %w", err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, fmt.Sprintf("PRAGMA mmap_size=%d", scanMmapSize)); err != nil {
		return fmt.Errorf("sqlitestore: scan log: %w", err)
	}
	// The connection goes back to the pool as it was.
	defer conn.ExecContext(context.WithoutCancel(ctx), "PRAGMA mmap_size=0")
	return scanRange(ctx, conn, scanLeavesSQL, from, to, 3, func(dest []driver.Value) (error, error) {
		seq, ok := dest[0].(int64)
		if !ok {
			return nil, fmt.Errorf("log entry seq %v (%T) is not an integer", dest[0], dest[0])
		}
		// The driver returns freshly allocated []byte values.
		return fn(seq, valueBytes(dest[1]), valueBytes(dest[2])), nil
	})
}

// scanMmapSize is the most of the file ScanLogLeaves maps (address space
// only; pages come from the page cache as they are read).
const scanMmapSize = 1 << 40

const scanLeavesSQL = "SELECT seq, data, leaf_hash FROM log_entries WHERE seq >= ? AND seq < ? ORDER BY seq"

const scanLogSQL = "SELECT seq, time, type, grant_id, session_id, data, leaf_hash FROM log_entries WHERE seq >= ? AND seq < ? ORDER BY seq"

// logEntryFromValues converts a driver row of scanLogSQL. The driver returns
// freshly allocated []byte values, so the entry owns them. Rows are taken as
// stored, whatever their types (a tampered row may hold anything).
func logEntryFromValues(v []driver.Value) (store.LogEntry, error) {
	var e store.LogEntry
	seq, ok := v[0].(int64)
	if !ok {
		return e, fmt.Errorf("log entry seq %v (%T) is not an integer", v[0], v[0])
	}
	e.Seq = seq
	switch tm := v[1].(type) {
	case nil:
	case int64:
		e.Time = time.Unix(0, tm).UTC()
	default:
		return e, fmt.Errorf("log entry %d: time %v (%T) is not an integer", seq, v[1], v[1])
	}
	e.Type = valueString(v[2])
	e.GrantID = valueString(v[3])
	e.SessionID = valueString(v[4])
	e.Data = valueBytes(v[5])
	e.LeafHash = valueBytes(v[6])
	return e, nil
}

func valueString(v driver.Value) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case []byte:
		return string(x)
	default:
		return fmt.Sprint(x)
	}
}

func valueBytes(v driver.Value) []byte {
	switch x := v.(type) {
	case nil:
		return nil
	case []byte:
		return x
	case string:
		return []byte(x)
	default:
		return []byte(fmt.Sprint(x))
	}
}

// LogEntries returns the entries matching f in Seq order.
func (s *Store) LogEntries(ctx context.Context, f store.LogFilter) ([]store.LogEntry, error) {
	q, args := logEntriesQuery(f, s.noSessionRuns, s.noGrantRuns, s.noOwnIndex)
	rows, err := s.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("sqlitestore: log entries: %w", err)
	}
	defer rows.Close()
	var out []store.LogEntry
	for rows.Next() {
		e, err := scanLogEntry(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlitestore: log entries: %w", err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlitestore: log entries: %w", err)
	}
	return out, nil
}

// logEntriesQuery is LogEntries' query. A session's (or else a grant's)
// entries are read through its runs (log_session_runs, log_grant_runs),
// each a range of sequence numbers read through the table itself and
// filtered on the session or grant: a key's runs are disjoint and ordered
// by first_seq, so ordering by run, then seq, is ordering by seq, without
// a sort. Without runs (an old database opened read-only, see
// OpenReadOnly) the session or grant is a condition on the rows. A
// grant's own entries (f.NoSession) are read through their partial index
// (migration 9), named so that no plan reads the grant's runs instead;
// without it, through the grant's runs, keeping those of no session.
func logEntriesQuery(f store.LogFilter, noSessionRuns, noGrantRuns, noOwnIndex bool) (string, []any) {
	var (
		conds []string
		args  []any
	)
	from, order := "log_entries e", "e.seq"
	viaRuns := false
	runs := func(table, col, key string) {
		viaRuns = true
		from = table + " r CROSS JOIN log_entries e ON e.seq BETWEEN r.first_seq AND r.last_seq"
		order = "r.first_seq, e.seq"
		conds = append(conds, "r."+col+" = ?")
		args = append(args, key)
	}
	switch {
	case f.SessionID != "" && !noSessionRuns:
		runs("log_session_runs", "session_id", f.SessionID)
	case f.GrantID != "" && f.NoSession && !noOwnIndex:
		from = "log_entries e INDEXED BY log_entries_grant_own"
	case f.GrantID != "" && !noGrantRuns:
		runs("log_grant_runs", "grant_id", f.GrantID)
	}
	if f.SessionID != "" {
		conds = append(conds, "e.session_id = ?")
		args = append(args, f.SessionID)
	}
	if f.NoSession {
		// The index's condition, as it states it.
		conds = append(conds, "e.session_id IS NULL")
	}
	if f.GrantID != "" {
		conds = append(conds, "e.grant_id = ?")
		args = append(args, f.GrantID)
	}
	if f.After > 0 {
		conds = append(conds, "e.seq > ?")
		args = append(args, f.After)
		if viaRuns {
			// A page of a session's events (or a grant's) after the
			// cursor skips the runs that end before it without reading
			// the log for each: a long session has many runs, and every
			// page would otherwise seek each earlier one.
			conds = append(conds, "r.last_seq > ?")
			args = append(args, f.After)
		}
	}
	if f.Type != "" {
		// SQLite plans with the bound value, so a type with a partial
		// index of its own (migration 4, the findings'; 10, the
		// log.refused entries') is read through it.
		conds = append(conds, "e.type = ?")
		args = append(args, f.Type)
	}
	q := "SELECT " + logColsE + " FROM " + from
	if len(conds) > 0 {
		q += " WHERE " + strings.Join(conds, " AND ")
	}
	q += " ORDER BY " + order
	if f.Limit > 0 {
		q += " LIMIT ?"
		args = append(args, f.Limit)
	}
	return q, args
}

const checkpointCols = "id, COALESCE(size, 0), root, note, frontier, created_at"

func scanCheckpoint(sc interface{ Scan(...any) error }) (store.Checkpoint, error) {
	var (
		c  store.Checkpoint
		tm sql.NullInt64
	)
	if err := sc.Scan(&c.ID, &c.Size, &c.Root, &c.Note, &c.Frontier, &tm); err != nil {
		return store.Checkpoint{}, err
	}
	c.CreatedAt = fromNullNanos(tm)
	return c, nil
}

// ScanCheckpoints calls fn for every checkpoint in ID order. It stops at the
// first error fn returns and returns it unwrapped.
func (s *Store) ScanCheckpoints(ctx context.Context, fn func(store.Checkpoint) error) error {
	rows, err := s.r.QueryContext(ctx, "SELECT "+checkpointCols+" FROM log_checkpoints ORDER BY id")
	if err != nil {
		return fmt.Errorf("sqlitestore: scan checkpoints: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		c, err := scanCheckpoint(rows)
		if err != nil {
			return fmt.Errorf("sqlitestore: scan checkpoints: %w", err)
		}
		if err := fn(c); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("sqlitestore: scan checkpoints: %w", err)
	}
	return nil
}

// LatestCheckpoint returns the checkpoint with the highest ID, or
// store.ErrNotFound when none was written yet.
func (s *Store) LatestCheckpoint(ctx context.Context) (store.Checkpoint, error) {
	c, err := scanCheckpoint(s.r.QueryRowContext(ctx, "SELECT "+checkpointCols+" FROM log_checkpoints ORDER BY id DESC LIMIT 1"))
	if errors.Is(err, sql.ErrNoRows) {
		return store.Checkpoint{}, fmt.Errorf("sqlitestore: latest checkpoint: %w", store.ErrNotFound)
	}
	if err != nil {
		return store.Checkpoint{}, fmt.Errorf("sqlitestore: latest checkpoint: %w", err)
	}
	return c, nil
}
