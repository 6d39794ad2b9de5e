package sqlitestore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/airlock-dev/airlock/internal/store"
	"github.com/airlock-dev/airlock/internal/store/storerow"
)

// maxIndexDiffs bounds the differences IndexDiffs lists per kind.
const maxIndexDiffs = 100

// IndexDiffs implements review.IndexChecker. Lists and per-grant reads do
// not read the records and entries that verification checks against the
// log, but columns copied from them: a grant's identity, target, account,
// status and time span (`airlock grants --account/--status/--day`, the
// evidence export's selection), a session's grant, start and start_seq
// (the sequence of its session.started entry: its place in the grant's
// pages), and an entry's type,
// grant and session with the runs that index them (a grant's or session's
// entries: `grant show`, `session show`, the per-row check against the
// log). It returns one description per column that does not say what its
// record or entry says, so that a copy changed behind the store's back is
// found by `audit verify` instead of silently changing those answers.
// First, SQLite's integrity check: the indexes those reads go through
// must hold what their tables hold (integrityDiffs).
func (s *Store) IndexDiffs(ctx context.Context) ([]string, error) {
	tx, err := s.readTx(ctx)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	out, err := integrityDiffs(ctx, tx)
	if err != nil {
		return nil, err
	}
	var longest int64
	if out, longest, err = grantColumnDiffs(ctx, tx, out); err != nil {
		return nil, err
	}
	if out, err = maxSpanDiff(ctx, tx, out, longest); err != nil {
		return nil, err
	}
	if out, err = sessionColumnDiffs(ctx, tx, out, !s.noStartSeq); err != nil {
		return nil, err
	}
	return entryColumnDiffs(ctx, tx, out, !s.noGrantRuns, !s.noSessionRuns)
}

func grantColumnDiffs(ctx context.Context, tx *sql.Tx, out []string) ([]string, int64, error) {
	rows, err := tx.QueryContext(ctx, "SELECT id, identity, target, account, status, requested_at, span_end, credential_id, record FROM grants ORDER BY id")
	if err != nil {
		return nil, 0, fmt.Errorf("sqlitestore: check grant columns: %w", err)
	}
	defer rows.Close()
	n := 0
	var longest int64 // the longest lifetime max_span_nanos must cover
	for rows.Next() {
		var r grantRow
		if err := rows.Scan(&r.ID, &r.Identity, &r.Target, &r.Account, &r.Status, &r.RequestedAt, &r.SpanEnd, &r.credentialID, &r.Record); err != nil {
			return nil, 0, fmt.Errorf("sqlitestore: check grant columns: %w", err)
		}
		g, err := storerow.DecodeGrant(r.Record)
		if err != nil {
			return nil, 0, fmt.Errorf("sqlitestore: grant %q: %w", r.ID, err)
		}
		w, err := encodeGrant(g)
		if err != nil {
			out = append(out, fmt.Sprintf("grant %s: its record cannot be stored: %v", r.ID, err))
			continue
		}
		if d, counted := w.Span(); counted && d > longest {
			longest = d
		}
		out = storerow.GrantColumnDiffs(out, &n, maxIndexDiffs, r.Grant, w.Grant,
			storerow.Column{Name: "credential_id", Got: r.credentialID.String, Want: w.credentialID.String})
	}
	if err := rows.Err(); err != nil {
		return nil, 0, fmt.Errorf("sqlitestore: check grant columns: %w", err)
	}
	return out, longest, nil
}

// sessionStartSeqSQL reads each session's columns with its start_seq and
// the sequence of its session.started entry (0 if it has none: a row
// written from no entry), from one scan of the log: a session's entries
// have no index of their own but runs.
const sessionStartSeqSQL = `SELECT s.id, s.grant_id, s.started_at, s.record, s.start_seq, COALESCE(st.seq, 0)
	FROM sessions s LEFT JOIN (
		SELECT session_id, MIN(seq) AS seq FROM log_entries
		WHERE type = 'session.started' AND session_id IS NOT NULL AND session_id <> '' GROUP BY session_id) st
	ON st.session_id = s.id ORDER BY s.id`

func sessionColumnDiffs(ctx context.Context, tx *sql.Tx, out []string, startSeq bool) ([]string, error) {
	query := "SELECT id, grant_id, started_at, record, 0, 0 FROM sessions ORDER BY id" // before schema version 8
	if startSeq {
		query = sessionStartSeqSQL
	}
	rows, err := tx.QueryContext(ctx, query)
	if err != nil {
		return nil, fmt.Errorf("sqlitestore: check session columns: %w", err)
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		var r sessionRow
		var startSeq, entrySeq int64
		if err := rows.Scan(&r.ID, &r.GrantID, &r.startedAt, &r.Record, &startSeq, &entrySeq); err != nil {
			return nil, fmt.Errorf("sqlitestore: check session columns: %w", err)
		}
		ss, err := storerow.DecodeSession(r.Record)
		if err != nil {
			return nil, fmt.Errorf("sqlitestore: session %q: %w", r.ID, err)
		}
		w, err := encodeSession(ss)
		if err != nil {
			out = append(out, fmt.Sprintf("session %s: its record cannot be stored: %v", r.ID, err))
			continue
		}
		if (r.ID != w.ID || r.GrantID != w.GrantID || r.startedAt != w.startedAt) && n < maxIndexDiffs {
			n++
			out = append(out, fmt.Sprintf("session %s: its id, grant_id or started_at column (%s, %s, %v) is not its record's (%s, %s, %v): the column reads filter on was changed", r.ID, r.ID, r.GrantID, r.startedAt.Int64, w.ID, w.GrantID, w.startedAt.Int64))
		}
		if startSeq != entrySeq && n < maxIndexDiffs {
			n++
			out = append(out, fmt.Sprintf("session %s: its start_seq column (%d) is not the sequence of its session.started entry (%d): the grant's pages of sessions are read in its order", r.ID, startSeq, entrySeq))
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlitestore: check session columns: %w", err)
	}
	return out, nil
}

// entryColumnDiffsSQL finds the entries whose type, grant or session
// column is not what the entry's bytes say, or that no run of their grant
// (session) covers, so that reading the grant's (session's) entries would
// miss them. The bytes themselves are verification's to check.
func entryColumnDiffsSQL(grantRuns, sessionRuns bool) string {
	q := `SELECT seq FROM log_entries e WHERE seq >= 0 AND (
	COALESCE(e.type, '') IS NOT COALESCE(json_extract(CAST(e.data AS TEXT), '$.type'), '')
	OR COALESCE(e.grant_id, '') IS NOT COALESCE(json_extract(CAST(e.data AS TEXT), '$.grant'), '')
	OR COALESCE(e.session_id, '') IS NOT COALESCE(json_extract(CAST(e.data AS TEXT), '$.session'), '')`
	if grantRuns {
		q += `
	OR (COALESCE(e.grant_id, '') <> '' AND (SELECT r.last_seq >= e.seq FROM log_grant_runs r
		WHERE r.grant_id = e.grant_id AND r.first_seq <= e.seq ORDER BY r.first_seq DESC LIMIT 1) IS NOT 1)`
	}
	if sessionRuns {
		q += `
	OR (COALESCE(e.session_id, '') <> '' AND (SELECT r.last_seq >= e.seq FROM log_session_runs r
		WHERE r.session_id = e.session_id AND r.first_seq <= e.seq ORDER BY r.first_seq DESC LIMIT 1) IS NOT 1)`
	}
	return q + ") ORDER BY seq LIMIT " + fmt.Sprint(maxIndexDiffs)
}

func entryColumnDiffs(ctx context.Context, tx *sql.Tx, out []string, grantRuns, sessionRuns bool) ([]string, error) {
	rows, err := tx.QueryContext(ctx, entryColumnDiffsSQL(grantRuns, sessionRuns))
	if err != nil {
		return nil, fmt.Errorf("sqlitestore: check the log's index: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var seq int64
		if err := rows.Scan(&seq); err != nil {
			return nil, fmt.Errorf("sqlitestore: check the log's index: %w", err)
		}
		out = append(out, fmt.Sprintf("entry %d: its type, grant or session column, or the runs that index it, do not say what the entry says: reads of its grant's or session's entries miss it", seq))
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlitestore: check the log's index: %w", err)
	}
	return out, nil
}

// maxSpanDiff checks meta's max_span_nanos against longest, the longest
// lifetime (at most longSpan) of any grant as its record says. A review of
// a time window scans only the grants requested at most max_span_nanos
// before it (and the long-lived ones), so a value lowered behind the
// store's back would hide the grants that started before the window and
// were live in it from `airlock grants --since/--day`.
func maxSpanDiff(ctx context.Context, tx *sql.Tx, out []string, longest int64) ([]string, error) {
	var v sql.NullString
	err := tx.QueryRowContext(ctx, "SELECT value FROM meta WHERE key = 'max_span_nanos'").Scan(&v)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("sqlitestore: check max_span_nanos: %w", err)
	}
	if d := store.MaxSpanDiff(v.String, v.Valid, longest); d != "" {
		out = append(out, d)
	}
	return out, nil
}

// integrityDiffs runs SQLite's integrity check, which compares every
// index with its table. Whoever can write the database file can make an
// index disagree with its table without changing a row (through
// writable_schema, or by editing the file's pages): the checks above read
// the tables, while lists read through the indexes (`grants --account`
// through grants_account_time, the findings through their partial index)
// and would miss, or find, rows the tables do not say. It reads the whole
// file, as verification reads the whole log.
func integrityDiffs(ctx context.Context, tx *sql.Tx) ([]string, error) {
	rows, err := tx.QueryContext(ctx, fmt.Sprintf("PRAGMA integrity_check(%d)", maxIndexDiffs))
	if err != nil {
		return nil, fmt.Errorf("sqlitestore: integrity check: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var msg string
		if err := rows.Scan(&msg); err != nil {
			return nil, fmt.Errorf("sqlitestore: integrity check: %w", err)
		}
		if msg != "ok" {
			out = append(out, "database file: "+msg+": an index or page does not match its table, so reads through it miss or invent rows (the file was edited below SQL)")
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlitestore: integrity check: %w", err)
	}
	return out, nil
}
