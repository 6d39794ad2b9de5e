package pgstore

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/airlock-dev/airlock/internal/model"
)

// TestOpenSessions: migration 7 marks the open sessions a database already
// holds (their records state no end), OpenSessions lists those alone,
// through their partial index, and writes keep the mark: a session whose
// end is written leaves the list, and IndexDiffs finds a mark changed
// behind the store's back.
func TestOpenSessions(t *testing.T) {
	dsn := freshDB(t)
	ctx := t.Context()
	// A database at schema version 6, with one open and one ended session
	// and 20,000 ended ones, as the rows an earlier Airlock wrote.
	conn := atVersion(t, dsn, 6)
	start := time.Unix(1700000000, 0).UTC()
	old := []model.Session{
		{ID: "s_open", GrantID: "g_1", Client: `"ended_at":"x"`, StartedAt: start, Calls: 2},
		{ID: "s_ended", GrantID: "g_1", StartedAt: start, EndedAt: start.Add(time.Minute), Calls: 1},
	}
	insertOldSessions(t, conn, old)
	ended, err := encodeSession(old[1])
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `INSERT INTO sessions (id, grant_id, started_at, record)
		SELECT 's_old_' || i, 'g_2', 0, $1::bytea FROM generate_series(1, 20000) AS i`, ended.Record); err != nil {
		t.Fatal(err)
	}
	conn.Close(ctx)

	holdSnapshot(t)
	s, err := Open(ctx, dsn)
	if err != nil {
		t.Fatalf("Open (migration 7): %v", err)
	}
	t.Cleanup(func() { s.Close() })
	checkIndexesUsable(t, s)
	openIDs := func() []string {
		t.Helper()
		ss, err := s.OpenSessions(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, x := range ss {
			ids = append(ids, x.ID)
		}
		return ids
	}
	if got := openIDs(); len(got) != 1 || got[0] != "s_open" {
		t.Fatalf("open sessions after the migration: %v, want [s_open]", got)
	}

	// The list is read through the index, not a scan of every session.
	if _, err := s.pool.Exec(ctx, "ANALYZE sessions"); err != nil {
		t.Fatal(err)
	}
	rows, err := s.pool.Query(ctx, "EXPLAIN (COSTS OFF) SELECT record FROM sessions WHERE open ORDER BY id")
	if err != nil {
		t.Fatal(err)
	}
	lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	if plan := strings.Join(lines, "\n"); !strings.Contains(plan, "sessions_open") {
		t.Errorf("open sessions plan:\n%s", plan)
	}

	// The filler's records are not its rows' (IndexDiffs would say so).
	if _, err := s.pool.Exec(ctx, "DELETE FROM sessions WHERE id LIKE 's_old_%'"); err != nil {
		t.Fatal(err)
	}

	write := func(f func(tx *Tx) error) {
		t.Helper()
		stx, err := s.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		tx := stx.(*Tx)
		if err := f(tx); err != nil {
			tx.Rollback()
			t.Fatal(err)
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	fresh := model.Session{ID: "s_new", GrantID: "g_3", StartedAt: start}
	write(func(tx *Tx) error { return tx.InsertSession(ctx, fresh) })
	if got := openIDs(); len(got) != 2 || got[1] != "s_open" {
		t.Fatalf("open sessions after a new one: %v", got)
	}
	write(func(tx *Tx) error {
		_, err := tx.EndSession(ctx, model.Session{ID: "s_open", EndedAt: start.Add(time.Hour), Calls: 3})
		return err
	})
	fresh.EndedAt = start.Add(time.Second)
	write(func(tx *Tx) error { return tx.PutSession(ctx, fresh) })
	if got := openIDs(); len(got) != 0 {
		t.Fatalf("open sessions after their ends were written: %v", got)
	}
	if diffs, err := s.IndexDiffs(ctx); err != nil || len(diffs) != 0 {
		t.Fatalf("IndexDiffs: %v %v", diffs, err)
	}
	if _, err := s.pool.Exec(context.WithoutCancel(ctx), "UPDATE sessions SET open = true WHERE id = 's_ended'"); err != nil {
		t.Fatal(err)
	}
	if diffs, err := s.IndexDiffs(ctx); err != nil || len(diffs) != 1 || !strings.Contains(diffs[0], "s_ended") {
		t.Fatalf("IndexDiffs after the open column was changed: %v %v", diffs, err)
	}
}

// insertOldSessions writes the rows of ss as an earlier Airlock did (the
// columns of schema version 6).
func insertOldSessions(t *testing.T, conn *pgx.Conn, ss []model.Session) {
	t.Helper()
	for _, ses := range ss {
		r, err := encodeSession(ses)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := conn.Exec(t.Context(), `INSERT INTO sessions (id, grant_id, started_at, calls, denied, bytes_in, bytes_out, used_json, record)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`, r.ID, r.GrantID, r.startedAt, r.Calls, r.Denied, r.BytesIn, r.BytesOut, r.usedJSON, r.Record); err != nil {
			t.Fatal(err)
		}
	}
}

// atVersion migrates the empty database dsn to schema version v, as an
// earlier Airlock left it, and returns a connection to it for the caller
// to add rows and close.
func atVersion(t *testing.T, dsn string, v int) *pgx.Conn {
	t.Helper()
	ctx := t.Context()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "CREATE TABLE "+migrationsTable+" (version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= v; i++ {
		if _, err := conn.Exec(ctx, migrations[i-1].sql); err != nil {
			t.Fatalf("migration %d: %v", i, err)
		}
		if _, err := conn.Exec(ctx, "INSERT INTO "+migrationsTable+" (version) VALUES ($1)", i); err != nil {
			t.Fatal(err)
		}
	}
	return conn
}

// holdSnapshot keeps a transaction with an ID open in the server's
// administrative database until the test ends, as another package's test
// (or an operator's psql) may while a migration runs: an index that
// PostgreSQL marks usable only by newer snapshots stays out of every plan
// while it is open.
func holdSnapshot(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, adminDSN)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(ctx) })
	if _, err := conn.Exec(ctx, "BEGIN"); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "SELECT txid_current()"); err != nil {
		t.Fatal(err)
	}
}

// checkIndexesUsable fails the test if an index of s's schema waits for
// older snapshots to end before plans may use it (pg_index.indcheckxmin).
func checkIndexesUsable(t *testing.T, s *Store) {
	t.Helper()
	rows, err := s.pool.Query(t.Context(), `SELECT c.relname FROM pg_index i
		JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE i.indcheckxmin AND n.nspname = current_schema() ORDER BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	if len(names) > 0 {
		t.Errorf("indexes usable only by snapshots newer than their own: %v", names)
	}
}
