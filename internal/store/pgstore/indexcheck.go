package pgstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/airlock-dev/airlock/internal/store"
	"github.com/airlock-dev/airlock/internal/store/storerow"
)

// maxIndexDiffs bounds the differences IndexDiffs lists per kind.
const maxIndexDiffs = 100

// IndexDiffs implements review.IndexChecker. Lists and per-grant reads do
// not read the records and entries that verification checks against the
// log, but columns copied from them: a grant's identity, target, account,
// status, time span and long_lived mark (`airlock grants
// --account/--status/--day`, the evidence export's selection), a session's
// grant, start and start_seq (the sequence of its session.started entry:
// its place in the grant's pages), and an entry's type, grant and session
// (a grant's or session's entries). It returns one description per column that does not
// say what its record or entry says, so that a copy changed behind the
// store's back is found by `audit verify` instead of silently changing those
// answers. All of it is read from one snapshot. First, that the names
// those reads use are the tables the migrations created (catalogDiffs).
func (s *Store) IndexDiffs(ctx context.Context) ([]string, error) {
	tx, err := s.readTx(ctx)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback(context.Background())
	out, err := s.catalogDiffs(ctx, tx)
	if err != nil {
		return nil, err
	}
	if len(out) == 0 {
		// With the catalog changed, the indexes may not be the ones
		// this compares; that change is reported already.
		if out, err = indexContentDiffs(ctx, tx); err != nil {
			return nil, fmt.Errorf("pgstore: check the indexes against their tables: %w", err)
		}
	}
	var longest int64
	if out, longest, err = grantColumnDiffs(ctx, tx, out); err != nil {
		return nil, err
	}
	if out, err = maxSpanDiff(ctx, tx, out, longest); err != nil {
		return nil, err
	}
	if out, err = sessionColumnDiffs(ctx, tx, out); err != nil {
		return nil, err
	}
	return entryColumnDiffs(ctx, tx, out)
}

func grantColumnDiffs(ctx context.Context, tx pgx.Tx, out []string) ([]string, int64, error) {
	rows, err := tx.Query(ctx, "SELECT id, identity, target, account, status, requested_at, span_end, long_lived, credential_id, record FROM grants ORDER BY id")
	if err != nil {
		return nil, 0, fmt.Errorf("pgstore: check grant columns: %w", err)
	}
	defer rows.Close()
	n := 0
	var longest int64 // the longest lifetime max_span_nanos must cover
	for rows.Next() {
		var r grantRow
		var long bool
		if err := rows.Scan(&r.ID, &r.Identity, &r.Target, &r.Account, &r.Status, &r.RequestedAt, &r.SpanEnd, &long, &r.credentialID, &r.Record); err != nil {
			return nil, 0, fmt.Errorf("pgstore: check grant columns: %w", err)
		}
		g, err := storerow.DecodeGrant(r.Record)
		if err != nil {
			return nil, 0, fmt.Errorf("pgstore: grant %q: %w", r.ID, err)
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
			storerow.Column{Name: "long_lived", Got: long, Want: w.LongLived()},
			storerow.Column{Name: "credential_id", Got: deref(r.credentialID), Want: deref(w.credentialID)})
	}
	if err := rows.Err(); err != nil {
		return nil, 0, fmt.Errorf("pgstore: check grant columns: %w", err)
	}
	return out, longest, nil
}

func sessionColumnDiffs(ctx context.Context, tx pgx.Tx, out []string) ([]string, error) {
	// start_seq is the sequence of the session's session.started entry (0
	// if it has none: a row written from no entry): one probe of the
	// session's entries each, through log_entries_session.
	rows, err := tx.Query(ctx, `SELECT id, grant_id, started_at, open, record, start_seq,
		COALESCE((SELECT min(l.seq) FROM log_entries l WHERE l.session_id = s.id AND l.type = 'session.started'), 0)
		FROM sessions s ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("pgstore: check session columns: %w", err)
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		var id, grantID string
		var started *int64
		var open bool
		var rec []byte
		var startSeq, entrySeq int64
		if err := rows.Scan(&id, &grantID, &started, &open, &rec, &startSeq, &entrySeq); err != nil {
			return nil, fmt.Errorf("pgstore: check session columns: %w", err)
		}
		ss, err := storerow.DecodeSession(rec)
		if err != nil {
			return nil, fmt.Errorf("pgstore: session %q: %w", id, err)
		}
		w, err := encodeSession(ss)
		if err != nil {
			out = append(out, fmt.Sprintf("session %s: its record cannot be stored: %v", id, err))
			continue
		}
		if (id != w.ID || grantID != w.GrantID || derefInt(started) != derefInt(w.startedAt)) && n < maxIndexDiffs {
			n++
			out = append(out, fmt.Sprintf("session %s: its id, grant_id or started_at column (%s, %s, %d) is not its record's (%s, %s, %d): the column reads filter on was changed", id, id, grantID, derefInt(started), w.ID, w.GrantID, derefInt(w.startedAt)))
		}
		if open != w.open && n < maxIndexDiffs {
			n++
			out = append(out, fmt.Sprintf("session %s: its open column (%t) is not what its record says (%t): the sweep of dead replicas' sessions reads it", id, open, w.open))
		}
		if startSeq != entrySeq && n < maxIndexDiffs {
			n++
			out = append(out, fmt.Sprintf("session %s: its start_seq column (%d) is not the sequence of its session.started entry (%d): the grant's pages of sessions are read in its order", id, startSeq, entrySeq))
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("pgstore: check session columns: %w", err)
	}
	return out, nil
}

// entryColumnDiffs finds the entries whose type, grant or session column
// is not what the entry's bytes say, so that reading the grant's (session's)
// entries would miss them. The bytes are decoded here rather than by the
// database, so that an entry that is not valid JSON (verification's to
// report) cannot stop the check. The bytes themselves are verification's to
// check.
func entryColumnDiffs(ctx context.Context, tx pgx.Tx, out []string) ([]string, error) {
	rows, err := tx.Query(ctx, "SELECT seq, COALESCE(type, ''), COALESCE(grant_id, ''), COALESCE(session_id, ''), data FROM log_entries WHERE seq >= 0 ORDER BY seq")
	if err != nil {
		return nil, fmt.Errorf("pgstore: check the log's index: %w", err)
	}
	defer rows.Close()
	n := 0
	var seq int64
	var typ, grant, session string
	var data []byte
	for rows.Next() {
		if err := rows.Scan(&seq, &typ, &grant, &session, &data); err != nil {
			return nil, fmt.Errorf("pgstore: check the log's index: %w", err)
		}
		var e struct {
			Type    string `json:"type"`
			Grant   string `json:"grant"`
			Session string `json:"session"`
		}
		if json.Unmarshal(data, &e) != nil {
			continue // not an entry: verification reports it
		}
		if (e.Type != typ || e.Grant != grant || e.Session != session) && n < maxIndexDiffs {
			n++
			out = append(out, fmt.Sprintf("entry %d: its type, grant or session column does not say what the entry says: reads of its grant's or session's entries miss it", seq))
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("pgstore: check the log's index: %w", err)
	}
	return out, nil
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func derefInt(n *int64) int64 {
	if n == nil {
		return 0
	}
	return *n
}

// maxSpanDiff checks meta's max_span_nanos against longest, the longest
// lifetime (at most storerow.LongSpan) of any grant as its record says: a review of
// a time window relies on it (grantsQuery, store.MaxSpanDiff).
func maxSpanDiff(ctx context.Context, tx pgx.Tx, out []string, longest int64) ([]string, error) {
	var v *string
	err := tx.QueryRow(ctx, "SELECT value FROM meta WHERE key = 'max_span_nanos'").Scan(&v)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("pgstore: check max_span_nanos: %w", err)
	}
	if d := store.MaxSpanDiff(deref(v), v != nil, longest); d != "" {
		out = append(out, d)
	}
	return out, nil
}
