package pgstore

import (
	"strings"
	"testing"

	"github.com/airlock-dev/airlock/internal/store"
	"github.com/airlock-dev/airlock/internal/store/storetest"
)

// TestGrantOwnIndex: migration 12 indexes the entries a database already
// holds of a grant and no session (its own: lifecycle, commands,
// findings), and LogFilter.NoSession reads them through that index, also
// under the generic plan a cached prepared statement gets, not through
// log_entries_grant with every call of the grant between them; the entries
// appended after it are indexed too.
func TestGrantOwnIndex(t *testing.T) {
	dsn := freshDB(t)
	ctx := t.Context()
	conn := atVersion(t, dsn, 11)
	// A log of 100,000 entries: g_1's 20,000 (every 5th), a command
	// after every 9 calls, as an agent that records each command it
	// runs; among them the calls of 50 other grants, and a few of their
	// own entries.
	if _, err := conn.Exec(ctx, `INSERT INTO log_entries (seq, time, type, grant_id, session_id, data, leaf_hash)
		SELECT i, 0, CASE WHEN own THEN 'command' ELSE 'session.call' END, g, CASE WHEN own THEN NULL ELSE 's_' || g END, '\x7b7d', '\x00'
		FROM (SELECT i, CASE WHEN i % 5 = 0 THEN 'g_1' ELSE 'g_' || (2 + i % 50) END AS g,
			(i % 5 = 0 AND (i / 5) % 10 = 9) OR (i % 5 <> 0 AND i % 997 = 0) AS own
			FROM generate_series(0, 99999) AS i) AS e`); err != nil {
		t.Fatal(err)
	}
	conn.Close(ctx)
	s, err := Open(ctx, dsn)
	if err != nil {
		t.Fatalf("Open (migration 12): %v", err)
	}
	t.Cleanup(func() { s.Close() })
	var want []int64
	for i := int64(0); i < 100000; i += 5 {
		if (i/5)%10 == 9 {
			want = append(want, i)
		}
	}
	storetest.CheckOwnEntries(t, s, "after migration 12", "g_1", want, 700)
	tx, err := s.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	more := []store.LogEntry{
		{Seq: 100000, Type: "session.call", GrantID: "g_1", SessionID: "s_g_1", Data: []byte(`{}`), LeafHash: []byte{0}},
		{Seq: 100001, Type: "command", GrantID: "g_1", Data: []byte(`{}`), LeafHash: []byte{0}},
		{Seq: 100002, Type: "checkpoint", Data: []byte(`{}`), LeafHash: []byte{0}},
	}
	if err := tx.AppendLog(ctx, more); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	storetest.CheckOwnEntries(t, s, "appended after migration 12", "g_1", append(want, 100001), 700)

	if _, err := s.pool.Exec(ctx, "ANALYZE log_entries"); err != nil {
		t.Fatal(err)
	}
	pc := genericPlans(t, s)
	// All of them (a bitmap scan of the index and a sort of what it
	// found will do), and a batch after a cursor, as checkOwn reads
	// them: the index in order, not the whole index sorted for each
	// batch, nor the log from the cursor on.
	if plan := preparedPlan(t, pc, "own_all", store.LogFilter{GrantID: "g_1", NoSession: true}); !strings.Contains(plan, "log_entries_grant_own") {
		t.Errorf("own entries plan:\n%s", plan)
	}
	if plan := preparedPlan(t, pc, "own_batch", store.LogFilter{GrantID: "g_1", NoSession: true, After: 100, Limit: 1001}); !strings.Contains(plan, "Index Scan using log_entries_grant_own") || strings.Contains(plan, "Sort") {
		t.Errorf("own entries batch plan:\n%s", plan)
	}
}
