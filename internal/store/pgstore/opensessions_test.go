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
		SELECT 's_old_' || i, 'g_2', 0, $1::bytea FROM generate_series(1, 20000) AS i`, ended.record); err != nil {
		t.Fatal(err)
	}
	conn.Close(ctx)

	s, err := Open(ctx, dsn)
	if err != nil {
		t.Fatalf("Open (migration 7): %v", err)
	}
	t.Cleanup(func() { s.Close() })
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
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`, r.id, r.grantID, r.startedAt, r.calls, r.denied, r.bytesIn, r.bytesOut, r.usedJSON, r.record); err != nil {
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
		if _, err := conn.Exec(ctx, migrations[i-1]); err != nil {
			t.Fatalf("migration %d: %v", i, err)
		}
		if _, err := conn.Exec(ctx, "INSERT INTO "+migrationsTable+" (version) VALUES ($1)", i); err != nil {
			t.Fatal(err)
		}
	}
	return conn
}
