package sqlitestore

import (
	"bytes"
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/model"
	"github.com/airlock-dev/airlock/internal/store"
	"github.com/airlock-dev/airlock/internal/store/storetest"
)

func openTemp(t testing.TB) (*Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "airlock.db")
	s, err := Open(context.Background(), path)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return s, path
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s, _ := openTemp(t)
		return s
	})
}

// rawDB opens the file with no Airlock logic in between, as an operator (or
// an attacker) with sqlite3 would.
func rawDB(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", path+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestMigrationsAppliedOnce(t *testing.T) {
	ctx := t.Context()
	s, path := openTemp(t)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	readMigrations := func() []string {
		db := rawDB(t, path)
		defer db.Close()
		rows, err := db.QueryContext(ctx, "SELECT version, applied_at FROM schema_migrations ORDER BY version")
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var out []string
		for rows.Next() {
			var v int
			var at string
			if err := rows.Scan(&v, &at); err != nil {
				t.Fatal(err)
			}
			out = append(out, at)
			if v != len(out) {
				t.Fatalf("schema_migrations has version %d at position %d", v, len(out))
			}
		}
		return out
	}
	first := readMigrations()
	if len(first) != SchemaVersion() {
		t.Fatalf("%d migrations recorded, want %d", len(first), SchemaVersion())
	}
	for range 2 {
		s, err := Open(ctx, path)
		if err != nil {
			t.Fatalf("reopen: %v", err)
		}
		s.Close()
	}
	again := readMigrations()
	if strings.Join(again, ",") != strings.Join(first, ",") {
		t.Fatalf("migrations re-applied on reopen: %v then %v", first, again)
	}
}

func TestReopenKeepsData(t *testing.T) {
	ctx := t.Context()
	s, path := openTemp(t)
	g := model.Grant{ID: "g_1", Identity: "bot", Target: "aws", Account: "A", Status: model.Active,
		RequestedAt: time.Date(2025, 1, 2, 3, 4, 5, 6, time.UTC), ExpiresAt: time.Date(2025, 1, 2, 4, 4, 5, 6, time.UTC)}
	tx, err := s.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.CreateGrant(ctx, g); err != nil {
		t.Fatal(err)
	}
	if err := tx.AppendLog(ctx, []store.LogEntry{{Seq: 0, Type: "x", Data: []byte("d")}}); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s, err = Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got, err := s.Grant(ctx, "g_1")
	if err != nil {
		t.Fatalf("Grant after reopen: %v", err)
	}
	if !got.RequestedAt.Equal(g.RequestedAt) || !got.ExpiresAt.Equal(g.ExpiresAt) {
		t.Fatalf("times after reopen: %v %v", got.RequestedAt, got.ExpiresAt)
	}
	if n, err := s.LogSize(ctx); err != nil || n != 1 {
		t.Fatalf("LogSize after reopen = %d, %v", n, err)
	}
	// The span bookkeeping survived too.
	gs, err := s.Grants(ctx, store.GrantFilter{Account: "A", Since: g.ExpiresAt, Until: g.ExpiresAt.Add(time.Hour)})
	if err != nil || len(gs) != 1 {
		t.Fatalf("review query after reopen: %v, %v", gs, err)
	}
}

func TestWALAndPragmas(t *testing.T) {
	ctx := t.Context()
	s, path := openTemp(t)
	defer s.Close()

	var mode string
	if err := rawDB(t, path).QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		t.Fatal(err)
	}
	if mode != "wal" {
		t.Fatalf("journal_mode = %q, want wal", mode)
	}
	for name, db := range map[string]*sql.DB{"writer": s.w, "reader": s.r} {
		var sync, fk, busy int
		if err := db.QueryRowContext(ctx, "PRAGMA synchronous").Scan(&sync); err != nil {
			t.Fatal(err)
		}
		if err := db.QueryRowContext(ctx, "PRAGMA foreign_keys").Scan(&fk); err != nil {
			t.Fatal(err)
		}
		if err := db.QueryRowContext(ctx, "PRAGMA busy_timeout").Scan(&busy); err != nil {
			t.Fatal(err)
		}
		if sync != 2 || fk != 1 || busy <= 0 {
			t.Errorf("%s: synchronous=%d foreign_keys=%d busy_timeout=%d, want 2 (FULL), 1, >0", name, sync, fk, busy)
		}
	}
	// Readers cannot write.
	if _, err := s.r.ExecContext(ctx, "INSERT INTO meta(key, value) VALUES ('x', 'y')"); err == nil {
		t.Error("the read pool accepted a write")
	}
	var appID int64
	if err := s.w.QueryRowContext(ctx, "PRAGMA application_id").Scan(&appID); err != nil || appID != applicationID {
		t.Errorf("application_id = %#x, %v", appID, err)
	}
}

func TestNewerSchemaFails(t *testing.T) {
	ctx := t.Context()
	s, path := openTemp(t)
	s.Close()
	db := rawDB(t, path)
	if _, err := db.ExecContext(ctx, "INSERT INTO schema_migrations(version, applied_at) VALUES (?, 'future')", SchemaVersion()+1); err != nil {
		t.Fatal(err)
	}
	db.Close()
	s, err := Open(ctx, path)
	if err == nil {
		s.Close()
		t.Fatal("Open succeeded on a database from a newer version")
	}
	if !errors.Is(err, ErrNewerSchema) || !strings.Contains(err.Error(), "upgrade airlock") {
		t.Fatalf("Open error %q does not say the schema is newer", err)
	}
}

func TestNotAnAirlockDatabase(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()

	other := filepath.Join(dir, "other.db")
	db := rawDB(t, other)
	if _, err := db.ExecContext(ctx, "CREATE TABLE customers(id INTEGER PRIMARY KEY)"); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if s, err := Open(ctx, other); !errors.Is(err, ErrNotAirlock) {
		if err == nil {
			s.Close()
		}
		t.Fatalf("Open(other SQLite database) = %v, want ErrNotAirlock", err)
	}
	var n int
	if err := rawDB(t, other).QueryRowContext(ctx, "SELECT count(*) FROM sqlite_schema").Scan(&n); err != nil || n != 1 {
		t.Fatalf("Open changed the foreign database: %d objects, %v", n, err)
	}

	text := filepath.Join(dir, "notes.txt")
	if err := os.WriteFile(text, []byte(strings.Repeat("not a database\n", 100)), 0o600); err != nil {
		t.Fatal(err)
	}
	if s, err := Open(ctx, text); err == nil {
		s.Close()
		t.Fatal("Open succeeded on a text file")
	}

	for _, bad := range []string{"", "a.db?mode=ro", ":memory:", "file:x.db"} {
		if s, err := Open(ctx, bad); err == nil {
			s.Close()
			t.Errorf("Open(%q) succeeded", bad)
		}
	}
}

// TestQueryPlans pins the plans of the review query and the usage lookup:
// index range scans only, never a scan of the grants or sessions table.
func TestQueryPlans(t *testing.T) {
	ctx := t.Context()
	s, _ := openTemp(t)
	defer s.Close()
	day := time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)
	plan := func(q string, args ...any) string {
		rows, err := s.r.QueryContext(ctx, "EXPLAIN QUERY PLAN "+q, args...)
		if err != nil {
			t.Fatalf("EXPLAIN %s: %v", q, err)
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
	cases := []struct {
		f     store.GrantFilter
		index string
	}{
		{store.GrantFilter{Account: "A", Since: day, Until: day.Add(24 * time.Hour)}, "grants_account_time"},
		{store.GrantFilter{Target: "t", Account: "A", Since: day, Until: day.Add(24 * time.Hour)}, "grants_target_time"},
		{store.GrantFilter{Identity: "i", Account: "A", Since: day}, "grants_identity_time"},
		{store.GrantFilter{Status: []model.GrantStatus{model.Active, model.Pending}, Since: day, Until: day.Add(time.Hour)}, "grants_status_time"},
		{store.GrantFilter{Since: day, Until: day.Add(24 * time.Hour), Limit: 10}, "grants_time"},
		{store.GrantFilter{Until: day}, "grants_time"},
	}
	for _, c := range cases {
		q, args := grantsQuery(c.f, int64(2*time.Hour))
		p := plan(q, args...)
		if !strings.Contains(p, "USING INDEX "+c.index+" (") {
			t.Errorf("%+v: plan does not range-scan %s:\n%s", c.f, c.index, p)
		}
		if !c.f.Since.IsZero() && !strings.Contains(p, "USING INDEX grants_long (") {
			t.Errorf("%+v: plan does not use grants_long for long-lived grants:\n%s", c.f, p)
		}
		if strings.Contains(p, "SCAN grants") {
			t.Errorf("%+v: plan scans grants:\n%s", c.f, p)
		}
	}
	p := plan("SELECT grant_id, calls FROM sessions WHERE grant_id IN (SELECT value FROM json_each(?))", `["a","b"]`)
	if !strings.Contains(p, "USING INDEX sessions_grant") || strings.Contains(p, "SCAN sessions") {
		t.Errorf("usage lookup plan:\n%s", p)
	}
	q, args := logEntriesQuery(store.LogFilter{GrantID: "g"}, false, false, false)
	p = plan(q, args...)
	if !strings.Contains(p, "USING PRIMARY KEY (grant_id=?)") || strings.Contains(p, "TEMP B-TREE") {
		t.Errorf("log entries by grant plan:\n%s", p)
	}
}

func maxSpan(t *testing.T, s *Store) int64 {
	t.Helper()
	n, err := readMaxSpan(t.Context(), s.r)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestMaxSpanBookkeeping(t *testing.T) {
	ctx := t.Context()
	s, _ := openTemp(t)
	defer s.Close()
	at := time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)
	mk := func(id string, st model.GrantStatus, life time.Duration) model.Grant {
		g := model.Grant{ID: id, Identity: "i", Target: "t", Account: "A", Status: st, RequestedAt: at}
		switch {
		case life < 0:
		case st.Final():
			g.EndedAt = at.Add(life)
		case st == model.Active:
			g.ExpiresAt = at.Add(life)
		default:
			g.DecideBy = at.Add(life)
		}
		return g
	}
	step := func(fn func(tx store.Tx) error) {
		t.Helper()
		tx, err := s.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := fn(tx); err != nil {
			tx.Rollback()
			t.Fatal(err)
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	if n := maxSpan(t, s); n != 0 {
		t.Fatalf("initial max span %d", n)
	}
	step(func(tx store.Tx) error { return tx.CreateGrant(ctx, mk("g_1", model.Pending, time.Hour)) })
	if n := maxSpan(t, s); n != int64(time.Hour) {
		t.Fatalf("max span %v, want 1h", time.Duration(n))
	}
	step(func(tx store.Tx) error { return tx.CreateGrant(ctx, mk("g_2", model.Ended, 10*time.Minute)) })
	if n := maxSpan(t, s); n != int64(time.Hour) {
		t.Fatalf("max span shrank to %v", time.Duration(n))
	}
	step(func(tx store.Tx) error { return tx.UpdateGrant(ctx, mk("g_2", model.Active, 3*time.Hour)) })
	if n := maxSpan(t, s); n != int64(3*time.Hour) {
		t.Fatalf("max span after update %v, want 3h", time.Duration(n))
	}
	// Long-lived and open-ended grants are left to the grants_long index.
	step(func(tx store.Tx) error {
		if err := tx.CreateGrant(ctx, mk("g_3", model.Ended, longSpan+time.Nanosecond)); err != nil {
			return err
		}
		return tx.CreateGrant(ctx, mk("g_4", model.Pending, -1))
	})
	if n := maxSpan(t, s); n != int64(3*time.Hour) {
		t.Fatalf("max span counted a long-lived grant: %v", time.Duration(n))
	}
	step(func(tx store.Tx) error { return tx.CreateGrant(ctx, mk("g_5", model.Ended, longSpan)) })
	if n := maxSpan(t, s); n != int64(longSpan) {
		t.Fatalf("max span %v, want longSpan", time.Duration(n))
	}
	// A bump inside a rolled-back savepoint is rolled back with it.
	s2, _ := openTemp(t)
	defer s2.Close()
	tx, err := s2.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	tx.Savepoint(ctx, "a")
	if err := tx.CreateGrant(ctx, mk("g_1", model.Ended, 5*time.Hour)); err != nil {
		t.Fatal(err)
	}
	tx.RollbackTo(ctx, "a")
	tx.Release(ctx, "a")
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	if n := maxSpan(t, s2); n != 0 {
		t.Fatalf("max span after rolled-back create: %v", time.Duration(n))
	}
}

// TestTxAbortedBySQLite checks that a transaction SQLite ended on its own
// refuses further work instead of running it in autocommit mode.
func TestTxAbortedBySQLite(t *testing.T) {
	ctx := t.Context()
	s, _ := openTemp(t)
	defer s.Close()
	st, err := s.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	tx := st.(*Tx)
	if err := tx.CreateGrant(ctx, model.Grant{ID: "g_1", Status: model.Pending, RequestedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	// Simulate SQLite rolling the transaction back (as after SQLITE_FULL or
	// an interrupt), then a statement failing.
	if _, err := tx.tx.ExecContext(ctx, "ROLLBACK"); err != nil {
		t.Fatal(err)
	}
	if err := tx.RollbackTo(ctx, "nope"); err == nil {
		t.Fatal("RollbackTo an unknown savepoint succeeded")
	}
	err = tx.CreateGrant(ctx, model.Grant{ID: "g_2", Status: model.Pending, RequestedAt: time.Now()})
	if !errors.Is(err, ErrTxAborted) {
		t.Fatalf("CreateGrant after SQLite's rollback: %v, want ErrTxAborted", err)
	}
	if err := tx.Commit(); !errors.Is(err, ErrTxAborted) {
		t.Fatalf("Commit after SQLite's rollback: %v, want ErrTxAborted", err)
	}
	for _, id := range []string{"g_1", "g_2"} {
		if _, err := s.Grant(ctx, id); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("Grant %s: %v, want ErrNotFound", id, err)
		}
	}
	// The writer is free again.
	tx2, err := s.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	tx2.Rollback()
}

// TestLogStoredAsIs checks that the audit-log tables are plain rows that
// verification (not the store) must check: a direct edit shows in ScanLog.
func TestLogStoredAsIs(t *testing.T) {
	ctx := t.Context()
	s, path := openTemp(t)
	defer s.Close()
	tx, err := s.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.AppendLog(ctx, []store.LogEntry{
		{Seq: 0, Type: "a", Data: []byte("one"), LeafHash: []byte{1}},
		{Seq: 1, Type: "b", Data: []byte("two"), LeafHash: []byte{2}},
	}); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	if _, err := rawDB(t, path).ExecContext(ctx, "UPDATE log_entries SET data = ? WHERE seq = 1", []byte("TWO")); err != nil {
		t.Fatal(err)
	}
	var got []string
	if err := s.ScanLog(ctx, 0, 2, func(e store.LogEntry) error {
		got = append(got, string(e.Data))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if strings.Join(got, ",") != "one,TWO" {
		t.Fatalf("ScanLog after a direct edit: %q", got)
	}
}

func TestBadRecordsRejected(t *testing.T) {
	ctx := t.Context()
	s, _ := openTemp(t)
	defer s.Close()
	tx, err := s.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	now := time.Now()
	for name, g := range map[string]model.Grant{
		"no id":            {Status: model.Pending, RequestedAt: now},
		"no RequestedAt":   {ID: "g_1", Status: model.Pending},
		"invalid status":   {ID: "g_1", Status: "weird", RequestedAt: now},
		"time past 2262":   {ID: "g_1", Status: model.Pending, RequestedAt: now, DecideBy: time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC)},
		"time before 1678": {ID: "g_2", Status: model.Pending, RequestedAt: time.Date(1000, 1, 1, 0, 0, 0, 0, time.UTC)},
	} {
		err := tx.CreateGrant(ctx, g)
		if name == "time past 2262" || name == "time before 1678" {
			// Index columns clamp; the record keeps the exact time.
			if err != nil {
				t.Errorf("%s: %v", name, err)
			}
			continue
		}
		if err == nil {
			t.Errorf("CreateGrant with %s succeeded", name)
		}
	}
	if err := tx.PutIdentity(ctx, model.Identity{}); err == nil {
		t.Error("PutIdentity without a name succeeded")
	}
	if err := tx.PutSession(ctx, model.Session{}); err == nil {
		t.Error("PutSession without an id succeeded")
	}
	g, err := tx.Grant(ctx, "g_1")
	if err != nil || g.DecideBy.Year() != 3000 {
		t.Fatalf("far-future time did not round-trip: %v %v", g.DecideBy, err)
	}
}

// TestAppendLogSizes stores batches of every size around the INSERT
// statements' row counts (a full statement of logInsertRows, then one for
// each power of two left) and reads every entry back in order.
func TestAppendLogSizes(t *testing.T) {
	ctx := context.Background()
	s, _ := openTemp(t)
	defer s.Close()
	seq := int64(0)
	for _, n := range []int{1, 2, 3, 7, 31, 32, 33, 57, 63, 64, 65, 100, 127, 128, 129, 255, 300} {
		es := make([]store.LogEntry, n)
		for i := range es {
			es[i] = store.LogEntry{Seq: seq + int64(i), Type: "t", GrantID: "g" + strconv.Itoa(n),
				Data: []byte(strconv.FormatInt(seq+int64(i), 10)), LeafHash: []byte{byte(i)}}
		}
		tx, err := s.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := tx.AppendLog(ctx, es); err != nil {
			t.Fatalf("AppendLog(%d entries): %v", n, err)
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
		got, err := s.LogEntries(ctx, store.LogFilter{GrantID: "g" + strconv.Itoa(n)})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != n {
			t.Fatalf("batch of %d: read back %d entries", n, len(got))
		}
		for i, e := range got {
			if e.Seq != seq+int64(i) || string(e.Data) != strconv.FormatInt(e.Seq, 10) || !bytes.Equal(e.LeafHash, []byte{byte(i)}) {
				t.Fatalf("batch of %d: entry %d is seq %d data %q leaf %x", n, i, e.Seq, e.Data, e.LeafHash)
			}
		}
		seq += int64(n)
	}
	if size, err := s.LogSize(ctx); err != nil || size != seq {
		t.Fatalf("LogSize = %d, %v; want %d", size, err, seq)
	}
}

// TestAppendLogSeqFromRowid: the log's rows after its first take their seq
// from SQLite (the largest rowid plus one, see insertLogSQL), so a first
// batch of many entries, a batch after a rolled-back one and two batches
// in one transaction must each come back with the seqs they were given.
func TestAppendLogSeqFromRowid(t *testing.T) {
	ctx := context.Background()
	s, _ := openTemp(t)
	defer s.Close()
	batch := func(from int64, n int) []store.LogEntry {
		es := make([]store.LogEntry, n)
		for i := range es {
			seq := from + int64(i)
			es[i] = store.LogEntry{Seq: seq, Type: "t", Data: []byte(strconv.FormatInt(seq, 10)), LeafHash: []byte{byte(seq)}}
		}
		return es
	}
	appendTx := func(commit bool, batches ...[]store.LogEntry) {
		t.Helper()
		tx, err := s.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, es := range batches {
			if err := tx.AppendLog(ctx, es); err != nil {
				t.Fatalf("AppendLog(%d at %d): %v", len(es), es[0].Seq, err)
			}
		}
		if !commit {
			if err := tx.Rollback(); err != nil {
				t.Fatal(err)
			}
			return
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	appendTx(false, batch(0, 5))
	appendTx(true, batch(0, 40))
	appendTx(false, batch(40, 3))
	appendTx(true, batch(40, 33), batch(73, 2))
	var got []int64
	if err := s.ScanLog(ctx, 0, 1000, func(e store.LogEntry) error {
		if string(e.Data) != strconv.FormatInt(e.Seq, 10) || !bytes.Equal(e.LeafHash, []byte{byte(e.Seq)}) {
			t.Errorf("entry %d holds data %q leaf %x", e.Seq, e.Data, e.LeafHash)
		}
		got = append(got, e.Seq)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(got) != 75 || got[0] != 0 || got[74] != 74 {
		t.Fatalf("log holds seqs %v, want 0-74", got)
	}
	if size, err := s.LogSize(ctx); err != nil || size != 75 {
		t.Fatalf("LogSize = %d, %v; want 75", size, err)
	}
}

// TestIdentityBindingsMigration: migration 7 gives the identities a
// bindings column; a row written before it has none recorded (nil, as no
// entry then stated them). (The conformance tests round-trip bindings.)
func TestIdentityBindingsMigration(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "airlock.db")
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	// The database as schema version 6 left it, with one identity.
	for _, q := range []string{
		`ALTER TABLE identities DROP COLUMN bindings_json`,
		`DROP INDEX sessions_grant_seq`,
		`ALTER TABLE sessions DROP COLUMN start_seq`,
		`DROP INDEX log_entries_refused`,
		`DROP INDEX log_entries_grant_own`,
		`DELETE FROM schema_migrations WHERE version >= 7`,
		`INSERT INTO identities (name, kind, source) VALUES ('alice', 'human', 'config')`,
	} {
		if _, err := s.w.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	// Read-only (audit verify), it is read as it is: no bindings recorded.
	ro, cleanup, err := OpenReadOnly(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if ids, err := ro.Identities(ctx); err != nil || len(ids) != 1 || ids[0].Bindings != nil {
		t.Fatalf("read-only before migration 7: %+v (%v)", ids, err)
	}
	ro.Close()
	cleanup()
	s, err = Open(ctx, path)
	if err != nil {
		t.Fatalf("Open (migration 7): %v", err)
	}
	defer s.Close()
	id, err := s.Identity(ctx, "alice")
	if err != nil || id.Bindings != nil {
		t.Fatalf("alice after the migration: %+v (%v), want no bindings recorded", id, err)
	}
}

// TestAppendLogAllocs holds AppendLog's allocations per entry, for entries
// as the gateways log them (a time, a grant, a session): the indexer
// stores every call's entry, and each allocation is CPU it pays again.
// Passing sql.NullInt64 and sql.NullString values made database/sql
// convert each through reflection, three more allocations per entry, and
// boxing the type, grant and session of each row (not once per batch,
// argCache) three more. Its bytes are held too (Tx.execLog).
func TestAppendLogAllocs(t *testing.T) {
	if raceOn {
		t.Skip("the race detector allocates")
	}
	ctx := context.Background()
	s, _ := openTemp(t)
	defer s.Close()
	const rows = 64
	data, leaf := make([]byte, 400), make([]byte, 32)
	es := make([]store.LogEntry, rows)
	sids := make([]string, 8)
	for i := range sids {
		sids[i] = "s_" + strconv.Itoa(i)
	}
	seq := int64(0)
	next := func() {
		for i := range es {
			es[i] = store.LogEntry{Seq: seq + int64(i), Time: time.Unix(1, seq+int64(i)), Type: "session.call",
				GrantID: "g_1", SessionID: sids[i%len(sids)], Data: data, LeafHash: leaf}
		}
		seq += rows
	}
	next()
	tx, err := s.Begin(ctx) // the log's first entry goes in alone: not measured
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.AppendLog(ctx, es); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	// The bytes are read from MemStats, which counts every goroutine's
	// allocations (database/sql's, the runtime's): a run picks up a few
	// KiB of those now and then (one build measured 383-397 bytes an entry
	// over runs, its parent 401-410: a bound of 392 failed one CI-like
	// run). The least of three measurements is AppendLog's own.
	var (
		appendErr     error
		ms            runtime.MemStats
		allocs        float64
		perEntryBytes = math.Inf(1)
	)
	for range 3 {
		runtime.ReadMemStats(&ms)
		bytes0 := ms.TotalAlloc
		a := testing.AllocsPerRun(20, func() {
			next()
			tx, err := s.Begin(ctx)
			if err != nil {
				appendErr = err
				return
			}
			if err := tx.AppendLog(ctx, es); err != nil {
				appendErr = err
			}
			if err := tx.Commit(); err != nil && appendErr == nil {
				appendErr = err
			}
		})
		if appendErr != nil {
			t.Fatal(appendErr)
		}
		runtime.ReadMemStats(&ms)
		// AllocsPerRun runs the function once more to warm up.
		if b := float64(ms.TotalAlloc-bytes0) / (21 * rows); b < perEntryBytes {
			perEntryBytes, allocs = b, a
		}
	}
	t.Logf("%.1f allocations per transaction of %d entries, %.0f bytes per entry", allocs, rows, perEntryBytes)
	if perEntry := allocs / rows; perEntry > 7 {
		t.Errorf("AppendLog allocates %.2f times per entry, want at most 7", perEntry)
	}
	// database/sql copied every statement's arguments (192 of them) into
	// a new slice: 684 bytes per entry here then, 551 past it, 678 with
	// a new slice for each batch's arguments (up to 768 of them), 435
	// with the writer's own kept; 404 with a slice of the entries' times
	// made for each call (16 bytes an entry; each time is now converted
	// as its row's argument), 383 without (single measurements; the least
	// of three: 389-393 with, 371-372 without). What is left is the driver's
	// (its list of bound buffers, grown from nothing in every statement:
	// about 255 bytes an entry) and each row's time, data and leaf hash
	// boxed as arguments.
	if perEntryBytes > 380 {
		t.Errorf("AppendLog allocates %.0f bytes per entry, want at most 380", perEntryBytes)
	}
}

// TestIndexerStatementsPrepared: every statement of the audit log
// indexer's transaction (its entries with sessions and grants, the
// checkpoint) is one of the writer's statements prepared once at Open, so
// that SQLite parses none of them again for each transaction.
func TestIndexerStatementsPrepared(t *testing.T) {
	ctx := context.Background()
	s, _ := openTemp(t)
	defer s.Close()
	var logStmts []driver.StmtExecContext
	for seq := int64(0); seq < 80; seq += 40 { // the log's first transaction, then a later one
		es := make([]store.LogEntry, 40)
		for i := range es {
			es[i] = store.LogEntry{Seq: seq + int64(i), Time: time.Unix(1, 0), Type: "session.call",
				GrantID: "g_1", SessionID: "s_" + strconv.Itoa(i%3), Data: []byte("{}"), LeafHash: make([]byte, 32)}
		}
		st, err := s.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		tx := st.(*Tx)
		if err := tx.AppendLog(ctx, es); err != nil {
			t.Fatal(err)
		}
		if err := tx.PutCheckpoint(ctx, store.Checkpoint{Size: seq + 40, Root: make([]byte, 32), Note: []byte("n"), CreatedAt: time.Unix(2, 0)}); err != nil {
			t.Fatal(err)
		}
		for q := range tx.stmts {
			if _, ok := s.wstmts[q]; !ok {
				t.Errorf("transaction at %d prepared %q itself", seq, q)
			}
		}
		// The log's rows went in on the driver's connection (39 rows in
		// statements of 32, 4, 2 and 1 after the first alone, then 40 in
		// 32 and 8; those of several rows with their type and grant
		// bound once), each statement prepared once for the store; so
		// did the runs, the 3 sessions' in a statement of 2 and one of
		// 1, the grant's in one of 1.
		for k, st := range logStmts {
			if st != nil && s.logStmts[k] != st {
				t.Errorf("transaction at %d prepared the log's INSERT %d again", seq, k)
			}
		}
		logStmts = slices.Clone(s.logStmts)
		shared := shareType | shareGrant
		if len(logStmts) != len(rawSQL) || logStmts[logStmt(shared, 5)] == nil || (seq > 0 && logStmts[logStmt(shared, 3)] == nil) ||
			logStmts[rawSessionRuns+1] == nil || logStmts[rawSessionRuns] == nil || logStmts[rawGrantRuns] == nil {
			t.Errorf("transaction at %d: the log's INSERTs prepared: %v", seq, logStmts)
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestArgCache: every string comes back as itself, also past the cache's
// 16 places (40 sessions, each seen again after the others), and an empty
// one as NULL.
func TestArgCache(t *testing.T) {
	var c argCache
	for round := range 3 {
		for i := range 40 {
			s := "s_" + strconv.Itoa(i)
			if got := c.arg(s); got != s {
				t.Fatalf("round %d: arg(%q) = %v", round, s, got)
			}
			if got := c.arg(""); got != nil {
				t.Fatalf("arg(\"\") = %#v, want nil", got)
			}
		}
	}
}

// TestCloseWithLogTxOpen: Close returns while a write transaction that
// stored log rows (on the driver's connection, Tx.execLog) is still open,
// and the transaction's end afterwards fails without storing them.
func TestCloseWithLogTxOpen(t *testing.T) {
	ctx := context.Background()
	s, path := openTemp(t)
	tx, err := s.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	es := make([]store.LogEntry, 3)
	for i := range es {
		es[i] = store.LogEntry{Seq: int64(i), Type: "session.call", Data: []byte("{}"), LeafHash: make([]byte, 32)}
	}
	if err := tx.AppendLog(ctx, es); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Close() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Close: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close waited for the open transaction")
	}
	tx.Rollback()
	s2, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if n, err := s2.LogSize(ctx); err != nil || n != 0 {
		t.Fatalf("LogSize after the rolled-back transaction = %d, %v; want 0", n, err)
	}
}
