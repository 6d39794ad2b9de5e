package pgstore

import (
	"context"
	"net/url"
	"regexp"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// TestIndexMigrationDoesNotBlockWriters: migration 12 builds its index of
// the log while the replicas still running append to it. A writer's
// transaction open when the migration starts (kept open here, which holds
// the build at a known point: it waits for that writer) does not make
// the next writers wait for the build; the version is not recorded while
// the index is not valid; a second replica starting meanwhile waits for
// the first instead of building it too, without the two waiting for each
// other; and the index holds every entry, those written meanwhile too.
func TestIndexMigrationDoesNotBlockWriters(t *testing.T) {
	dsn := freshDB(t)
	ctx := t.Context()
	conn := atVersion(t, dsn, 11)
	defer conn.Close(context.Background())
	insertOwn(t, conn, 0, 1000)

	inFlight := connect(t, dsn)
	if _, err := inFlight.Exec(ctx, "BEGIN"); err != nil {
		t.Fatal(err)
	}
	insertOwn(t, inFlight, 1000, 1001)

	first := openAsync(t, withAppName(t, dsn, "airlock-migrate-first"))
	waitActivity(t, conn, "the first replica's build waiting for the writer in flight",
		`application_name = 'airlock-migrate-first' AND wait_event_type = 'Lock' AND query LIKE '%log_entries_grant_own%'`)
	second := openAsync(t, withAppName(t, dsn, "airlock-migrate-second"))
	waitActivity(t, conn, "the second replica trying the migration lock",
		`application_name = 'airlock-migrate-second' AND query LIKE '%advisory%lock%'`)

	var version int
	if err := conn.QueryRow(ctx, "SELECT max(version) FROM "+migrationsTable).Scan(&version); err != nil {
		t.Fatal(err)
	}
	if version != 11 {
		t.Errorf("schema version %d recorded while the index builds, want 11", version)
	}
	var builds int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
		WHERE datname = current_database() AND pid <> pg_backend_pid() AND query LIKE '%INDEX%log_entries_grant_own%' AND state = 'active'`).Scan(&builds); err != nil {
		t.Fatal(err)
	}
	if builds != 1 {
		t.Errorf("%d builds of the index at once, want 1", builds)
	}

	// The next writer: a lock wait longer than lock_timeout fails it,
	// and the build it would wait for cannot end before inFlight does.
	w := connect(t, dsn)
	if _, err := w.Exec(ctx, "SET lock_timeout = '5s'"); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Exec(ctx, "INSERT INTO log_entries (seq, type, grant_id, data, leaf_hash) VALUES (1001, 'command', 'g_1', '\\x7b7d', '\\x00')"); err != nil {
		t.Errorf("a writer while the index builds: %v", err)
	}
	if _, err := inFlight.Exec(ctx, "COMMIT"); err != nil {
		t.Fatal(err)
	}
	for name, ch := range map[string]chan error{"first": first, "second": second} {
		if err := <-ch; err != nil {
			t.Errorf("the %s replica's Open: %v", name, err)
		}
	}
	checkIndexes(t, dsn, 1002)
}

// TestIndexMigrationResumes: a replica that stopped in the middle of
// migration 12 left its index INVALID (its build was cut), or built but
// its version not recorded; the next start drops an invalid index and
// builds it again, records a valid one, and either way the index is the
// one the migrations define and holds every entry.
func TestIndexMigrationResumes(t *testing.T) {
	const build = "CREATE INDEX CONCURRENTLY log_entries_grant_own ON log_entries (grant_id, seq) WHERE session_id IS NULL AND grant_id IS NOT NULL"
	for _, tc := range []struct {
		name  string
		valid bool
	}{{"invalid", false}, {"valid", true}} {
		t.Run(tc.name, func(t *testing.T) {
			dsn := freshDB(t)
			ctx := t.Context()
			conn := atVersion(t, dsn, 11)
			defer conn.Close(context.Background())
			insertOwn(t, conn, 0, 1000)
			if tc.valid {
				if _, err := conn.Exec(ctx, build); err != nil {
					t.Fatal(err)
				}
			} else {
				// A build waiting for a writer, its server process
				// ended, as when a replica's host dies mid-build.
				inFlight := connect(t, dsn)
				if _, err := inFlight.Exec(ctx, "BEGIN"); err != nil {
					t.Fatal(err)
				}
				insertOwn(t, inFlight, 1000, 1001)
				builder := connect(t, withAppName(t, dsn, "airlock-cut-build"))
				done := make(chan error, 1)
				go func() {
					_, err := builder.Exec(context.Background(), build)
					done <- err
				}()
				waitActivity(t, conn, "the build waiting for the writer",
					`application_name = 'airlock-cut-build' AND wait_event_type = 'Lock'`)
				if _, err := conn.Exec(ctx, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'airlock-cut-build'"); err != nil {
					t.Fatal(err)
				}
				if err := <-done; err == nil {
					t.Fatal("the cut build succeeded")
				}
				if _, err := inFlight.Exec(ctx, "COMMIT"); err != nil {
					t.Fatal(err)
				}
			}
			var valid bool
			if err := conn.QueryRow(ctx, "SELECT indisvalid FROM pg_index WHERE indexrelid = 'log_entries_grant_own'::regclass").Scan(&valid); err != nil {
				t.Fatal(err)
			}
			if valid != tc.valid {
				t.Fatalf("the index left behind: valid %v, want %v", valid, tc.valid)
			}
			if err := <-openAsync(t, dsn); err != nil {
				t.Fatalf("Open after the interrupted migration: %v", err)
			}
			n := int64(1000)
			if !tc.valid {
				n = 1001
			}
			checkIndexes(t, dsn, n)
		})
	}
}

// insertOwn appends entries [from, to) of grant g_1's own to the log.
func insertOwn(t *testing.T, conn *pgx.Conn, from, to int64) {
	t.Helper()
	if _, err := conn.Exec(t.Context(), `INSERT INTO log_entries (seq, type, grant_id, data, leaf_hash)
		SELECT i, 'command', 'g_1', '\x7b7d', '\x00' FROM generate_series($1::bigint, $2::bigint - 1) AS i`, from, to); err != nil {
		t.Fatal(err)
	}
}

func connect(t *testing.T, dsn string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func withAppName(t *testing.T, dsn, name string) string {
	t.Helper()
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("application_name", name)
	u.RawQuery = q.Encode()
	return u.String()
}

// openAsync opens a store on dsn in the background, closes it, and sends
// Open's error.
func openAsync(t *testing.T, dsn string) chan error {
	ch := make(chan error, 1)
	go func() {
		s, err := Open(context.Background(), dsn)
		if err == nil {
			s.Close()
		}
		ch <- err
	}()
	return ch
}

// waitActivity waits until a server process of the test's database matches
// cond (on pg_stat_activity), failing the test after a minute.
func waitActivity(t *testing.T, conn *pgx.Conn, what, cond string) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); ; {
		var n int
		if err := conn.QueryRow(t.Context(), "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND "+cond).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s after a minute", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// checkIndexes checks that the schema is at this build's version, and that
// its tables and indexes are the ones the migrations define (valid ones)
// and hold the same: the log's n entries are in log_entries_grant_own.
func checkIndexes(t *testing.T, dsn string, n int64) {
	t.Helper()
	ctx := t.Context()
	s, err := Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var version int
	if err := s.pool.QueryRow(ctx, "SELECT max(version) FROM "+migrationsTable).Scan(&version); err != nil {
		t.Fatal(err)
	}
	if version != SchemaVersion() {
		t.Errorf("schema version %d, want %d", version, SchemaVersion())
	}
	tx, err := s.readTx(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(context.Background())
	diffs, err := s.catalogDiffs(ctx, tx)
	if err != nil {
		t.Fatal(err)
	}
	more, err := indexContentDiffs(ctx, tx)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range append(diffs, more...) {
		t.Error(d)
	}
	var own int64
	if err := tx.QueryRow(ctx, "SELECT count(*) FROM log_entries WHERE session_id IS NULL AND grant_id = 'g_1'").Scan(&own); err != nil {
		t.Fatal(err)
	}
	if own != n {
		t.Errorf("%d own entries, want %d", own, n)
	}
}

// TestParseMigration: a migration that builds an index concurrently is
// that one statement (and comments) alone, since it runs outside the
// migration transaction and PostgreSQL runs a string of statements as one
// transaction; any other use of CONCURRENTLY does not load.
func TestParseMigration(t *testing.T) {
	for _, tc := range []struct {
		sql, index string
		bad        bool
	}{
		{sql: "-- a table\nCREATE TABLE t (a int);\nCREATE INDEX t_a ON t (a);\n"},
		{sql: "-- CONCURRENTLY in a comment only\nCREATE INDEX t_a ON t (a);\n"},
		{sql: "-- an index\nCREATE INDEX CONCURRENTLY t_a ON t (a) WHERE a IS NOT NULL;\n", index: "t_a"},
		{sql: "create unique index concurrently T_B on t (b)", index: "t_b"},
		{sql: "CREATE INDEX CONCURRENTLY t_a ON t (a);\nCREATE TABLE u (a int);\n", bad: true},
		{sql: "CREATE TABLE u (a int);\nCREATE INDEX CONCURRENTLY t_a ON t (a);\n", bad: true},
		{sql: "REINDEX INDEX CONCURRENTLY t_a;\n", bad: true},
		{sql: "CREATE INDEX CONCURRENTLY IF NOT EXISTS t_a ON t (a);\n", bad: true},
	} {
		m, err := parseMigration(tc.sql)
		switch {
		case tc.bad && err == nil:
			t.Errorf("%q loaded (index %q), want an error", tc.sql, m.index)
		case !tc.bad && err != nil:
			t.Errorf("%q: %v", tc.sql, err)
		case !tc.bad && (m.index != tc.index || m.sql != tc.sql):
			t.Errorf("%q: index %q, sql %q; want index %q", tc.sql, m.index, m.sql, tc.index)
		}
	}
}

// TestLogIndexesBuildConcurrently: every migration from schema 12 on that
// indexes the log builds the index concurrently, outside the migration
// transaction. A plain CREATE INDEX on log_entries holds every replica's
// appends while it reads the whole log (README, PostgreSQL store); the
// migrations before 12 are in every database that has a large log.
func TestLogIndexesBuildConcurrently(t *testing.T) {
	onLog := regexp.MustCompile(`(?is)\bCREATE\s+(UNIQUE\s+)?INDEX\b[^;]*\bON\s+(ONLY\s+)?log_entries\b`)
	n := 0
	for i, m := range migrations {
		version := i + 1
		if version < 12 || !onLog.MatchString(m.sql) {
			continue
		}
		n++
		if m.index == "" {
			t.Errorf("migration %d indexes log_entries in the migration transaction; build it with CREATE INDEX CONCURRENTLY", version)
		}
	}
	if n == 0 {
		t.Fatal("no migration from 12 on indexes log_entries: the check saw nothing")
	}
}
