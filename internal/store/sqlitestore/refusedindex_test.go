package sqlitestore

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/store"
	"github.com/airlock-dev/airlock/internal/store/storetest"
)

// TestRefusedIndex: migration 10 indexes the log.refused entries a
// database already holds, and those appended after it, and reading them
// by type (review.LoadVoid: every derivation of a grant's or session's
// record reads them first) is a search of that index alone, not a scan
// of the log's calls; a database from before, opened read-only (audit
// verify), answers the same by a scan.
func TestRefusedIndex(t *testing.T) {
	ctx := t.Context()
	path := t.TempDir() + "/airlock.db"
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	// The database as schema version 9 left it, with a log of 3,000
	// entries, three of them log.refused.
	for _, q := range []string{
		`DROP INDEX log_entries_refused`,
		`DELETE FROM schema_migrations WHERE version >= 10`,
	} {
		if _, err := s.w.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	var es []store.LogEntry
	var want []int64
	for seq := int64(0); seq < 3000; seq++ {
		e := store.LogEntry{Seq: seq, Time: time.Unix(0, seq).UTC(), Type: "session.call", GrantID: "g_1", SessionID: "s_1",
			Data: fmt.Appendf(nil, `{"seq":%d}`, seq), LeafHash: make([]byte, 32)}
		if seq%1000 == 999 {
			e.Type, e.GrantID, e.SessionID = "log.refused", "", ""
			want = append(want, seq)
		}
		es = append(es, e)
	}
	appendLog(t, s, es)
	s.Close()
	ro, cleanup, err := OpenReadOnly(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	storetest.CheckTypeEntries(t, ro, "read-only before migration 10", "log.refused", want)
	ro.Close()
	cleanup()

	s, err = Open(ctx, path)
	if err != nil {
		t.Fatalf("Open (migration 10): %v", err)
	}
	defer s.Close()
	storetest.CheckTypeEntries(t, s, "after migration 10", "log.refused", want)
	appendLog(t, s, []store.LogEntry{
		{Seq: 3000, Type: "session.call", GrantID: "g_1", SessionID: "s_1", Data: []byte(`{}`), LeafHash: make([]byte, 32)},
		{Seq: 3001, Type: "log.refused", Data: []byte(`{}`), LeafHash: make([]byte, 32)},
	})
	storetest.CheckTypeEntries(t, s, "appended after migration 10", "log.refused", append(want, 3001))

	// The index alone, in order: no scan of the log, no sort.
	for _, f := range []store.LogFilter{{Type: "log.refused"}, {Type: "log.refused", After: 1500, Limit: 1000}} {
		p := plan(t, s, f)
		bad := !strings.Contains(p, "USING INDEX log_entries_refused") || strings.Contains(p, "TEMP B-TREE")
		for _, l := range strings.Split(p, "\n") {
			bad = bad || (strings.Contains(l, "SCAN") && !strings.Contains(l, "USING INDEX log_entries_refused"))
		}
		if bad {
			t.Errorf("log.refused plan (%+v):\n%s", f, p)
		}
	}
	checkIntegrity(t, s)
}

// appendLog appends es to s's log in one transaction.
func appendLog(t *testing.T, s *Store, es []store.LogEntry) {
	t.Helper()
	tx, err := s.Begin(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.AppendLog(t.Context(), es); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
}

// checkIntegrity runs SQLite's integrity check (IndexDiffs, audit
// verify), which holds each index to its table.
func checkIntegrity(t *testing.T, s *Store) {
	t.Helper()
	tx, err := s.readTx(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if diffs, err := integrityDiffs(t.Context(), tx); err != nil || len(diffs) != 0 {
		t.Errorf("integrity check %q, %v", diffs, err)
	}
}
