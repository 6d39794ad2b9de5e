package server

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/airlock-dev/airlock/internal/evidence"
	"github.com/airlock-dev/airlock/internal/store/sqlitestore"
)

// TestForgedIndexColumnsCaught: the columns lists filter on (a grant's
// account and status, an entry's grant, the runs indexing a grant's
// entries) are copies of what the records and entries say. Changed behind
// Airlock's back, with every record and entry left intact, they hid a grant
// from `grants --account/--status` and from the evidence export, and entries
// from a grant's reads, while `audit verify` said OK.
func TestForgedIndexColumnsCaught(t *testing.T) {
	for _, c := range []struct {
		name, sql, want string
	}{
		{"account", `UPDATE grants SET account = '999999999999'`, `its account column is "999999999999", its record (and the log) says "111122223333"`},
		{"status", `UPDATE grants SET status = 'revoked'`, `its status column is "revoked", its record (and the log) says "active"`},
		{"span", `UPDATE grants SET requested_at = 0, span_end = 1`, `its requested_at column is "0"`},
		{"entry grant", `UPDATE log_entries SET grant_id = 'g_other' WHERE type = 'session.call'`, `its type, grant or session column, or the runs that index it`},
		{"grant runs", `DELETE FROM log_grant_runs`, `its type, grant or session column, or the runs that index it`},
		{"session grant", `UPDATE sessions SET grant_id = 'g_other'`, `its id, grant_id or started_at column`},
		{"session counters", `UPDATE sessions SET calls = 0, denied = 0, bytes_out = 0`, `calls is 0, log says 2`},
		// A window's review scans the grants requested at most
		// max_span_nanos before it: lowered, it hid the grant from
		// `grants --since` while it was live.
		{"max span", `UPDATE meta SET value = '1' WHERE key = 'max_span_nanos'`, `meta max_span_nanos is 1, but a grant lived`},
		{"max span gone", `DELETE FROM meta WHERE key = 'max_span_nanos'`, `meta max_span_nanos is "", not a number of nanoseconds`},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := newAuditEnv(t)
			e.exec(t, c.sql)
			rep, err := VerifyOffline(context.Background(), e.dataDir, OfflineInput{Key: pinnedKey(t, e.dataDir)})
			if err != nil {
				t.Fatal(err)
			}
			wantProblems(t, "offline", rep, c.want)
		})
	}
}

// TestExportIgnoresForgedIndex: the evidence bundle, which the log's key
// signs, holds every grant of the account live on the day and every entry
// of each, as the log says, whatever the database's index columns say.
func TestExportIgnoresForgedIndex(t *testing.T) {
	e := newAuditEnv(t)
	e.exec(t,
		`UPDATE log_entries SET grant_id = 'g_other' WHERE type IN ('session.call', 'session.results')`,
		`UPDATE grants SET account = '999999999999'`,
	)
	ctx := context.Background()
	s := openServer(t, e.cfg)
	defer s.Close()
	b, _, err := s.Export(ctx, "111122223333", time.Now().UTC().Format("2006-01-02"))
	if err != nil {
		t.Fatal(err)
	}
	res, err := evidence.Verify(b, pinnedKey(t, e.dataDir), LogOrigin(pinnedKey(t, e.dataDir)))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Rows) != 1 || res.Rows[0].Grant != e.grantID || res.Rows[0].Calls != 2 || res.Rows[0].DeniedCalls != 1 {
		t.Fatalf("the bundle does not hold the log's review of %s: %s", e.grantID, fmt.Sprintf("%+v", res.Rows))
	}
}

// TestForgedIndexColumnsCaughtPostgres: with `store: postgres://…` the
// same copies exist (pgstore.IndexDiffs): a grant's account, status, span
// and long_lived mark, a session's grant, an entry's grant and type. Before
// IndexDiffs, each change below left `audit verify` OK while it hid the
// grant from lists and the export, or entries from the grant's reads.
func TestForgedIndexColumnsCaughtPostgres(t *testing.T) {
	for _, c := range []struct {
		name, sql, want string
	}{
		{"account", `UPDATE grants SET account = '999999999999'`, `its account column is "999999999999", its record (and the log) says "111122223333"`},
		{"status", `UPDATE grants SET status = 'revoked'`, `its status column is "revoked", its record (and the log) says "active"`},
		{"span", `UPDATE grants SET requested_at = 0, span_end = 1`, `its requested_at column is "0"`},
		{"long lived", `UPDATE grants SET long_lived = true`, `its long_lived column is "true"`},
		{"credential", `UPDATE grants SET credential_id = 'c_other'`, `its credential_id column is "c_other"`},
		{"entry grant", `UPDATE log_entries SET grant_id = 'g_other' WHERE type = 'session.call'`, `its type, grant or session column does not say what the entry says`},
		{"entry type", `UPDATE log_entries SET type = 'test.other' WHERE type = 'grant.requested'`, `its type, grant or session column does not say what the entry says`},
		{"session grant", `UPDATE sessions SET grant_id = 'g_other'`, `its id, grant_id or started_at column`},
		{"session start", `UPDATE sessions SET started_at = 1`, `its id, grant_id or started_at column`},
		{"max span", `UPDATE meta SET value = '1' WHERE key = 'max_span_nanos'`, `meta max_span_nanos is 1, but a grant lived`},
	} {
		t.Run(c.name, func(t *testing.T) {
			dsn := pgDatabase(t)
			e := newAuditEnvWith(t, fmt.Sprintf("store: %q\n", dsn))
			ctx := context.Background()
			conn, err := pgx.Connect(ctx, dsn)
			if err != nil {
				t.Fatal(err)
			}
			tag, err := conn.Exec(ctx, c.sql)
			conn.Close(ctx)
			if err != nil || tag.RowsAffected() == 0 {
				t.Fatalf("%s: %v, %d rows", c.sql, err, tag.RowsAffected())
			}
			verifyWants(t, e, c.want)
		})
	}
}

// TestForgedSQLiteIndexCaught: whoever can write the SQLite file can make
// an index disagree with its table without touching a row (here through
// writable_schema: an empty index declared as the whole one; editing the
// file's pages does the same). `airlock grants --account` reads through
// that index and missed the grant, while `audit verify`, which reads the
// tables, said OK.
func TestForgedSQLiteIndexCaught(t *testing.T) {
	e := newAuditEnv(t)
	ctx := context.Background()
	db, err := sql.Open("sqlite", filepath.Join(e.dataDir, DatabaseFile))
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`DROP INDEX grants_account_time`,
		`CREATE INDEX grants_account_time ON grants(account, requested_at, span_end) WHERE account = 'none'`,
		`PRAGMA writable_schema = ON`,
		`UPDATE sqlite_schema SET sql = 'CREATE INDEX grants_account_time ON grants(account, requested_at, span_end)' WHERE name = 'grants_account_time'`,
		`PRAGMA writable_schema = OFF`,
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	db.Close()

	st, err := sqlitestore.Open(ctx, filepath.Join(e.dataDir, DatabaseFile))
	if err != nil {
		t.Fatal(err)
	}
	wantAccountHidden(t, st)
	rep, err := VerifyOffline(ctx, e.dataDir, OfflineInput{Key: pinnedKey(t, e.dataDir)})
	if err != nil {
		t.Fatal(err)
	}
	wantProblems(t, "offline", rep, "grants_account_time")
}
