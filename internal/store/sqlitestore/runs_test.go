package sqlitestore

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/store"
)

// runsLog appends n entries in batches of varied sizes, sessions
// interleaved (some busy, some rare, some entries without one), and
// returns them.
func runsLog(t *testing.T, s *Store, n int) []store.LogEntry {
	t.Helper()
	ctx := t.Context()
	rnd := rand.New(rand.NewPCG(1, 2))
	sessions := []string{"s_busy1", "s_busy2", "s_rare", "s_other"}
	var all []store.LogEntry
	for len(all) < n {
		k := min(1+rnd.IntN(150), n-len(all))
		batch := make([]store.LogEntry, k)
		for i := range batch {
			seq := int64(len(all) + i)
			e := store.LogEntry{Seq: seq, Time: time.Unix(0, seq).UTC(), Type: "session.call", GrantID: "g_1",
				Data: []byte(fmt.Sprintf(`{"seq":%d}`, seq)), LeafHash: make([]byte, 32)}
			switch r := rnd.IntN(100); {
			case r < 45:
				e.SessionID = sessions[0]
			case r < 85:
				e.SessionID = sessions[1]
			case r < 87:
				e.SessionID = sessions[2]
			case r < 95:
				e.SessionID = sessions[3]
				e.GrantID = "g_2"
			default:
				e.Type = "grant.approved"
			}
			batch[i] = e
		}
		tx, err := s.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := tx.AppendLog(ctx, batch); err != nil {
			t.Fatal(err)
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
		all = append(all, batch...)
	}
	return all
}

func wantEntries(all []store.LogEntry, f store.LogFilter) []int64 {
	var out []int64
	for _, e := range all {
		if (f.SessionID == "" || e.SessionID == f.SessionID) && (f.GrantID == "" || e.GrantID == f.GrantID) &&
			(f.Type == "" || e.Type == f.Type) && (f.After <= 0 || e.Seq > f.After) && (f.Limit == 0 || len(out) < f.Limit) {
			out = append(out, e.Seq)
		}
	}
	return out
}

func checkSessionQueries(t *testing.T, s *Store, all []store.LogEntry) {
	t.Helper()
	for _, f := range []store.LogFilter{
		{SessionID: "s_busy1"}, {SessionID: "s_busy2"}, {SessionID: "s_rare"}, {SessionID: "s_other"},
		{SessionID: "s_none"}, {SessionID: "s_busy1", Limit: 7}, {SessionID: "s_other", GrantID: "g_2"},
		{SessionID: "s_other", GrantID: "g_1"}, {SessionID: "s_rare", Type: "session.call"},
		{GrantID: "g_1", Limit: 100}, {Type: "grant.approved"}, {GrantID: "g_1"}, {GrantID: "g_2"},
		{GrantID: "g_2", Type: "session.call", Limit: 3}, {GrantID: "g_none"},
		// Pages after a cursor (a session's events, a grant's derivation).
		{SessionID: "s_busy1", After: 1000, Limit: 50}, {SessionID: "s_rare", After: 1500},
		{SessionID: "s_busy2", After: 1, Limit: 1}, {GrantID: "g_2", After: 2000, Limit: 10}, {SessionID: "s_busy2", After: 1 << 40},
	} {
		got, err := s.LogEntries(t.Context(), f)
		if err != nil {
			t.Fatal(err)
		}
		var seqs []int64
		for _, e := range got {
			seqs = append(seqs, e.Seq)
			if want := all[e.Seq]; e.SessionID != want.SessionID || string(e.Data) != string(want.Data) {
				t.Fatalf("%+v: entry %d is %+v, want %+v", f, e.Seq, e, want)
			}
		}
		if want := wantEntries(all, f); !slices.Equal(seqs, want) {
			t.Errorf("LogEntries(%+v): %d entries %v..., want %d %v...", f, len(seqs), head(seqs), len(want), head(want))
		}
	}
}

func head(s []int64) []int64 { return s[:min(len(s), 10)] }

// TestSessionRuns: a session's (and a grant's) entries, appended in
// batches among others' entries, are found through its runs, in order,
// and each batch stores a run per session and grant (split at gaps over
// runGap), not an index entry per log entry.
func TestSessionRuns(t *testing.T) {
	s, _ := openTemp(t)
	defer s.Close()
	all := runsLog(t, s, 3000)
	checkSessionQueries(t, s, all)

	var indexes []string
	rows, err := s.r.QueryContext(t.Context(), `SELECT name FROM sqlite_schema WHERE type = 'index' AND tbl_name = 'log_entries' AND sql IS NOT NULL`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var n string
		rows.Scan(&n)
		indexes = append(indexes, n)
	}
	rows.Close()
	// The partial indexes hold an entry per finding, per log.refused
	// entry, and per entry of a grant and no session (its lifecycle,
	// commands), only.
	if !slices.Equal(indexes, []string{"log_entries_findings", "log_entries_grant_own", "log_entries_refused"}) {
		t.Errorf("indexes on log_entries: %v, want only the findings', the grants' own entries' and the log.refused entries' (no index entry per log entry for its session or grant)", indexes)
	}
	var runs, maxSpan int
	if err := s.r.QueryRowContext(t.Context(), `SELECT count(*), max(last_seq - first_seq) FROM log_session_runs`).Scan(&runs, &maxSpan); err != nil {
		t.Fatal(err)
	}
	if runs == 0 || runs > len(all)/4 {
		t.Errorf("%d runs for %d entries", runs, len(all))
	}
	t.Logf("%d entries, %d runs, longest %d", len(all), runs, maxSpan+1)
}

// TestSessionRunsMigration: a database written before the runs existed
// gets them for its entries when it is opened, and loses the indexes.
func TestSessionRunsMigration(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "airlock.db")
	// The database as schema version 1 left it, written by this store.
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	all := runsLog(t, s, 2000)
	for _, q := range []string{
		`DROP TABLE log_session_runs`,
		`DROP TABLE log_grant_runs`,
		`DROP INDEX log_entries_findings`,
		`DROP INDEX log_entries_refused`,
		`DROP INDEX log_entries_grant_own`,
		`DROP INDEX sessions_open`,
		`DROP TABLE integration_actions`,
		`ALTER TABLE identities DROP COLUMN bindings_json`,
		`DROP INDEX sessions_grant_seq`,
		`ALTER TABLE sessions DROP COLUMN start_seq`,
		`CREATE INDEX log_entries_grant ON log_entries(grant_id)`,
		`CREATE INDEX log_entries_session ON log_entries(session_id)`,
		`DELETE FROM schema_migrations WHERE version >= 2`,
	} {
		if _, err := s.w.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	// Read-only (audit verify), it is read as it is.
	ro, cleanup, err := OpenReadOnly(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	checkSessionQueries(t, ro, all)
	ro.Close()
	cleanup()
	s, err = Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	checkSessionQueries(t, s, all)
	var findingsIndex int
	if err := s.r.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_schema WHERE type = 'index' AND name = 'log_entries_findings'`).Scan(&findingsIndex); err != nil || findingsIndex != 1 {
		t.Errorf("the findings' index after the migrations: %d (%v)", findingsIndex, err)
	}
	// The log goes on from there.
	more := runsLogFrom(t, s, all, 500)
	checkSessionQueries(t, s, more)
	var maxSpan int
	if err := s.r.QueryRowContext(ctx, `SELECT max(last_seq - first_seq) FROM log_session_runs WHERE session_id = 's_rare'`).Scan(&maxSpan); err != nil {
		t.Fatal(err)
	}
	if maxSpan > len(all)/4 {
		t.Errorf("the rare session's longest run spans %d entries: runs are not split at gaps", maxSpan+1)
	}
}

// runsLogFrom appends n more entries after all, like runsLog.
func runsLogFrom(t *testing.T, s *Store, all []store.LogEntry, n int) []store.LogEntry {
	t.Helper()
	ctx := t.Context()
	out := slices.Clone(all)
	for i := range n {
		seq := int64(len(all) + i)
		sid := []string{"s_busy1", "s_rare", "s_new"}[i%3]
		out = append(out, store.LogEntry{Seq: seq, Time: time.Unix(0, seq).UTC(), Type: "session.call", GrantID: "g_1", SessionID: sid,
			Data: []byte(fmt.Sprintf(`{"seq":%d}`, seq)), LeafHash: make([]byte, 32)})
	}
	tx, err := s.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.AppendLog(ctx, out[len(all):]); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestSessionQueryPlan pins the plan of a session's entries: its runs by
// the runs' key, each a range of the log's rowid, without a sort.
func TestSessionQueryPlan(t *testing.T) {
	s, _ := openTemp(t)
	defer s.Close()
	q, args := logEntriesQuery(store.LogFilter{SessionID: "s_1", Type: "session.call", Limit: 5}, false, false, false)
	rows, err := s.r.QueryContext(context.Background(), "EXPLAIN QUERY PLAN "+q, args...)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var lines []string
	for rows.Next() {
		var id, parent, notused int
		var detail string
		if err := rows.Scan(&id, &parent, &notused, &detail); err != nil {
			t.Fatal(err)
		}
		lines = append(lines, detail)
	}
	p := strings.Join(lines, "\n")
	if !strings.Contains(p, "SEARCH r USING PRIMARY KEY (session_id=?)") || !strings.Contains(p, "SEARCH e USING INTEGER PRIMARY KEY (rowid>? AND rowid<?)") ||
		strings.Contains(p, "TEMP B-TREE") || strings.Contains(p, "SCAN") {
		t.Errorf("session entries plan:\n%s", p)
	}
	// A page of a session's events after a cursor (GET
	// /v1/sessions/{id}?after=) is read alike.
	p = plan(t, s, store.LogFilter{SessionID: "s_1", After: 100, Limit: 1001})
	if !strings.Contains(p, "SEARCH r USING PRIMARY KEY (session_id=?)") || !strings.Contains(p, "SEARCH e USING INTEGER PRIMARY KEY (rowid>? AND rowid<?)") ||
		strings.Contains(p, "TEMP B-TREE") || strings.Contains(p, "SCAN") {
		t.Errorf("session page plan:\n%s", p)
	}
	p = plan(t, s, store.LogFilter{GrantID: "g_1"})
	if !strings.Contains(p, "SEARCH r USING PRIMARY KEY (grant_id=?)") || !strings.Contains(p, "SEARCH e USING INTEGER PRIMARY KEY (rowid>? AND rowid<?)") ||
		strings.Contains(p, "TEMP B-TREE") || strings.Contains(p, "SCAN") {
		t.Errorf("grant entries plan:\n%s", p)
	}
}

// TestFindingsQueryPlan: the findings are read through their partial
// index, not a scan of the log (the table's rows are not read at all
// for rows that are not findings).
func TestFindingsQueryPlan(t *testing.T) {
	s, _ := openTemp(t)
	defer s.Close()
	for _, f := range []store.LogFilter{{Type: "finding"}, {Type: "finding", Limit: 10}} {
		p := plan(t, s, f)
		if !strings.Contains(p, "USING INDEX log_entries_findings") || strings.Contains(p, "TEMP B-TREE") {
			t.Errorf("findings plan (%+v):\n%s", f, p)
		}
	}
	// Another type has no index of its own: a scan, as before.
	if p := plan(t, s, store.LogFilter{Type: "session.call"}); strings.Contains(p, "log_entries_findings") {
		t.Errorf("session.call plan uses the findings index:\n%s", p)
	}
}

func plan(t *testing.T, s *Store, f store.LogFilter) string {
	t.Helper()
	q, args := logEntriesQuery(f, false, false, false)
	return queryPlan(t, s, q, args...)
}

// TestOpenSessionsPlan: the open sessions are read through their partial
// index, not by a scan of every session ever recorded.
func TestOpenSessionsPlan(t *testing.T) {
	s, _ := openTemp(t)
	defer s.Close()
	p := queryPlan(t, s, openSessionsQuery)
	t.Log(p)
	if !strings.Contains(p, "USING INDEX sessions_open") || strings.Contains(p, "SCAN sessions\n") {
		t.Errorf("open sessions plan:\n%s", p)
	}
}

func queryPlan(t *testing.T, s *Store, q string, args ...any) string {
	t.Helper()
	rows, err := s.r.QueryContext(t.Context(), "EXPLAIN QUERY PLAN "+q, args...)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var lines []string
	for rows.Next() {
		var id, parent, notused int
		var detail string
		if err := rows.Scan(&id, &parent, &notused, &detail); err != nil {
			t.Fatal(err)
		}
		lines = append(lines, detail)
	}
	return strings.Join(lines, "\n")
}

// TestPageSize: a new database has pageSize pages, and its WAL is copied
// into it every 4 MiB; one created with another size keeps it.
func TestPageSize(t *testing.T) {
	ctx := t.Context()
	s, path := openTemp(t)
	var ps int
	if err := s.r.QueryRowContext(ctx, "PRAGMA page_size").Scan(&ps); err != nil {
		t.Fatal(err)
	}
	if ps != pageSize {
		t.Errorf("new database: page size %d, want %d", ps, pageSize)
	}
	// Checkpoints of the WAL every 4 MiB, as with SQLite's default 1,000
	// pages of 4 KiB.
	var ckpt int
	if err := s.w.QueryRowContext(ctx, "PRAGMA wal_autocheckpoint").Scan(&ckpt); err != nil {
		t.Fatal(err)
	}
	if ckpt*ps != 4<<20 {
		t.Errorf("wal_autocheckpoint %d pages of %d bytes, want 4 MiB", ckpt, ps)
	}
	s.Close()

	old := filepath.Join(t.TempDir(), "old.db")
	db := rawDB(t, old)
	if _, err := db.ExecContext(ctx, "PRAGMA page_size = 4096"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, "PRAGMA journal_mode = WAL"); err != nil {
		t.Fatal(err)
	}
	db.Close()
	for _, p := range []string{old, path} {
		s, err := Open(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		runsLog(t, s, 500)
		if err := s.r.QueryRowContext(ctx, "PRAGMA page_size").Scan(&ps); err != nil {
			t.Fatal(err)
		}
		if want := map[string]int{old: 4096, path: pageSize}[p]; ps != want {
			t.Errorf("%s reopened: page size %d, want %d", filepath.Base(p), ps, want)
		}
		if err := s.w.QueryRowContext(ctx, "PRAGMA wal_autocheckpoint").Scan(&ckpt); err != nil {
			t.Fatal(err)
		}
		if ckpt*ps != 4<<20 {
			t.Errorf("%s reopened: wal_autocheckpoint %d pages of %d bytes, want 4 MiB", filepath.Base(p), ckpt, ps)
		}
		s.Close()
	}
}
