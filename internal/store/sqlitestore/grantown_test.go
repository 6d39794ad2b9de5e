package sqlitestore

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/airlock-dev/airlock/internal/store"
	"github.com/airlock-dev/airlock/internal/store/storetest"
)

// TestGrantOwnIndex: migration 9 indexes the entries a database already
// holds of a grant and no session (its own: lifecycle, commands,
// findings), and LogFilter.NoSession reads them through that index alone,
// not through the grant's runs with its sessions' entries between them;
// the entries appended after it are indexed too. A database from before,
// opened read-only (audit verify), answers the same through the grant's
// runs.
func TestGrantOwnIndex(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "airlock.db")
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	// The database as schema version 8 left it, with a log.
	for _, q := range []string{
		`DROP INDEX log_entries_refused`,
		`DROP INDEX log_entries_grant_own`,
		`DELETE FROM schema_migrations WHERE version >= 9`,
	} {
		if _, err := s.w.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	all := runsLog(t, s, 3000)
	s.Close()
	own := func(es []store.LogEntry) []int64 {
		var out []int64
		for _, e := range es {
			if e.GrantID == "g_1" && e.SessionID == "" {
				out = append(out, e.Seq)
			}
		}
		return out
	}
	want := own(all)
	if len(want) < 50 || len(want) > len(all)/10 {
		t.Fatalf("%d own entries of %d: the log is not the one meant", len(want), len(all))
	}

	// Read-only, as it is: through the grant's runs.
	ro, cleanup, err := OpenReadOnly(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if !ro.noOwnIndex {
		t.Error("read-only before migration 9: the own entries' index is taken to be there")
	}
	storetest.CheckOwnEntries(t, ro, "read-only before migration 9", "g_1", want, 7)
	ro.Close()
	cleanup()

	s, err = Open(ctx, path)
	if err != nil {
		t.Fatalf("Open (migration 9): %v", err)
	}
	defer s.Close()
	storetest.CheckOwnEntries(t, s, "after migration 9", "g_1", want, 7)
	all = runsLogFrom(t, s, all, 100)
	seq := int64(len(all))
	appendLog(t, s, []store.LogEntry{
		{Seq: seq, Type: "command", GrantID: "g_1", Data: []byte(`{}`), LeafHash: make([]byte, 32)},
		{Seq: seq + 1, Type: "command", GrantID: "g_2", Data: []byte(`{}`), LeafHash: make([]byte, 32)},
		{Seq: seq + 2, Type: "checkpoint", Data: []byte(`{}`), LeafHash: make([]byte, 32)},
	})
	storetest.CheckOwnEntries(t, s, "appended after migration 9", "g_1", append(want, seq), 7)

	// The index alone, in order: no scan, no sort, not the grant's runs.
	for _, f := range []store.LogFilter{{GrantID: "g_1", NoSession: true}, {GrantID: "g_1", NoSession: true, After: 100, Limit: 1001}} {
		p := plan(t, s, f)
		if !strings.Contains(p, "USING INDEX log_entries_grant_own (grant_id=?") || strings.Contains(p, "TEMP B-TREE") ||
			strings.Contains(p, "SCAN") || strings.Contains(p, "log_grant_runs") {
			t.Errorf("own entries plan (%+v):\n%s", f, p)
		}
	}
	// SQLite's integrity check (IndexDiffs, audit verify) holds the
	// index to its table.
	checkIntegrity(t, s)
}
