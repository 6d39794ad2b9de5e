package sqlitestore

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/model"
	"github.com/airlock-dev/airlock/internal/store/storetest"
)

// TestSessionsStartSeq: migration 8 gives the sessions a database already
// holds the sequence of their session.started entries (0 for a row
// without one); SessionsInLogOrder pages a grant's sessions in that order
// (not by StartedAt) through its index; InsertSessionFrom stores it;
// IndexDiffs finds a start_seq changed behind the store's back; and a
// database from before, opened read-only (audit verify), is checked
// without the column.
func TestSessionsStartSeq(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "airlock.db")
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	// The database as schema version 7 left it, with sessions and entries.
	start := time.Unix(1700000000, 0).UTC()
	old := []model.Session{
		{ID: "s_b", GrantID: "g_1", StartedAt: start, EndedAt: start.Add(time.Hour)},
		{ID: "s_a", GrantID: "g_1", StartedAt: start.Add(time.Minute), EndedAt: start.Add(time.Hour)}, // stored first, started later
		{ID: "s_none", GrantID: "g_1", StartedAt: start, EndedAt: start.Add(time.Hour)},               // no entry
	}
	for _, q := range []string{
		`DROP INDEX sessions_grant_seq`,
		`ALTER TABLE sessions DROP COLUMN start_seq`,
		`DROP INDEX log_entries_refused`,
		`DROP INDEX log_entries_grant_own`,
		`DELETE FROM schema_migrations WHERE version >= 8`,
	} {
		if _, err := s.w.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	for _, ss := range old {
		r, err := encodeSession(ss)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.w.ExecContext(ctx, "INSERT INTO sessions (id, grant_id, started_at, record) VALUES (?, ?, ?, ?)", r.ID, r.GrantID, r.startedAt, r.Record); err != nil {
			t.Fatal(err)
		}
	}
	for seq, e := range []struct{ typ, session string }{{"grant.requested", ""}, {"session.started", "s_a"}, {"session.started", "s_b"}, {"session.ended", "s_a"}} {
		if _, err := s.w.ExecContext(ctx, `INSERT INTO log_entries (seq, type, grant_id, session_id) VALUES (?, ?, 'g_1', NULLIF(?, ''))`, seq+1, e.typ, e.session); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()

	// Read-only, as it is: no order to page by, and nothing to check.
	ro, cleanup, err := OpenReadOnly(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := ro.SessionsInLogOrder(ctx, "g_1", 0, "", 0); err == nil || !strings.Contains(err.Error(), "schema version 8") {
		t.Errorf("read-only before migration 8: SessionsInLogOrder %v, want an error naming the schema", err)
	}
	if diffs := storetest.SessionDiffs(t, ro); len(diffs) != 0 {
		t.Errorf("read-only before migration 8: IndexDiffs %v", diffs)
	}
	ro.Close()
	cleanup()

	s, err = Open(ctx, path)
	if err != nil {
		t.Fatalf("Open (migration 8): %v", err)
	}
	defer s.Close()
	storetest.CheckLogOrderPages(t, s, start, "g_1", []string{"s_none", "s_a", "s_b", "s_c"}, []int64{0, 2, 3, 7})

	// The index answers the page's condition and order: no scan of the
	// sessions, no sort.
	p := queryPlan(t, s, "SELECT record, start_seq FROM sessions WHERE grant_id = ? AND (start_seq, id) > (?, ?) ORDER BY start_seq, id LIMIT ?", "g_1", 2, "s_a", 101)
	if !strings.Contains(p, "USING INDEX sessions_grant_seq") || strings.Contains(p, "TEMP B-TREE") || strings.Contains(p, "SCAN sessions") {
		t.Errorf("the page's plan does not read sessions_grant_seq in order:\n%s", p)
	}

	// s_c's entry is not in this log: IndexDiffs says so, and of s_b once
	// its column is changed.
	storetest.CheckStartSeqDiffs(t, s, func(q string) error {
		_, err := s.w.ExecContext(ctx, q)
		return err
	})
}
