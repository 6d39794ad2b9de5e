package pgstore

import (
	"strings"
	"testing"

	"github.com/airlock-dev/airlock/internal/store"
	"github.com/airlock-dev/airlock/internal/store/storetest"
)

// TestRefusedIndex: migration 13 indexes the log.refused entries a
// database already holds, and those appended after it; reading them by
// type (review.LoadVoid, which every derivation of a grant's or session's
// record calls first) is a scan of that index, also under the generic
// plan a cached prepared statement gets, not of the log's calls.
func TestRefusedIndex(t *testing.T) {
	dsn := freshDB(t)
	ctx := t.Context()
	conn := atVersion(t, dsn, 12)
	// 100,000 entries, 3 of them log.refused.
	if _, err := conn.Exec(ctx, `INSERT INTO log_entries (seq, time, type, grant_id, session_id, data, leaf_hash)
		SELECT i, 0, CASE WHEN i % 40000 = 39999 THEN 'log.refused' ELSE 'session.call' END, 'g_1', 's_1', '\x7b7d', '\x00'
		FROM generate_series(0, 99999) AS i`); err != nil {
		t.Fatal(err)
	}
	conn.Close(ctx)
	s, err := Open(ctx, dsn)
	if err != nil {
		t.Fatalf("Open (migration 13): %v", err)
	}
	t.Cleanup(func() { s.Close() })
	storetest.CheckTypeEntries(t, s, "after migration 13", "log.refused", []int64{39999, 79999})
	tx, err := s.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.AppendLog(ctx, []store.LogEntry{
		{Seq: 100000, Type: "session.call", GrantID: "g_1", SessionID: "s_1", Data: []byte(`{}`), LeafHash: []byte{0}},
		{Seq: 100001, Type: "log.refused", Data: []byte(`{}`), LeafHash: []byte{0}},
	}); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	storetest.CheckTypeEntries(t, s, "appended after migration 13", "log.refused", []int64{39999, 79999, 100001})

	if _, err := s.pool.Exec(ctx, "ANALYZE log_entries"); err != nil {
		t.Fatal(err)
	}
	pc := genericPlans(t, s)
	for i, f := range []store.LogFilter{{Type: "log.refused"}, {Type: "log.refused", After: 50000, Limit: 1000}} {
		if plan := preparedPlan(t, pc, "refused_"+string(rune('a'+i)), f); !strings.Contains(plan, "log_entries_refused") || strings.Contains(plan, "Seq Scan") {
			t.Errorf("log.refused plan (%+v):\n%s", f, plan)
		}
	}
}
