package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/airlock-dev/airlock/internal/store"
	"github.com/airlock-dev/airlock/internal/store/pgstore"
	"github.com/airlock-dev/airlock/internal/testenv"
)

// pgOwnedDatabase is pgDatabase, owned by a role of its own that is not a
// superuser (a superuser bypasses row security), and a DSN that connects
// as that role: what a database owner can do, it can.
func pgOwnedDatabase(t *testing.T) string {
	t.Helper()
	dsn := pgDatabase(t)
	admin := testenv.PostgresDSN(t)
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	name := strings.TrimPrefix(u.Path, "/")
	b := make([]byte, 6)
	rand.Read(b)
	role := "airlock_owner_" + hex.EncodeToString(b)
	adminExec(t, admin, "CREATE ROLE "+role+" LOGIN", "ALTER DATABASE "+name+" OWNER TO "+role)
	// Runs before pgDatabase's cleanup: the role owns the database.
	t.Cleanup(func() {
		adminExec(t, admin, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)", "DROP ROLE IF EXISTS "+role)
	})
	u.User = url.User(role)
	return u.String()
}

// TestForgedCatalogCaughtPostgres: the database's owner, who cannot forge
// the log, can change what the names in the store's statements answer
// without changing a row. Each change below hid the grant from `airlock
// grants --account` (the review statement names its account: current_query()
// tells it from verification's whole scans), while `audit verify` said OK.
func TestForgedCatalogCaughtPostgres(t *testing.T) {
	// hide is true except in the review statement of a grant's account.
	const hide = `pg_catalog.current_query() NOT LIKE '%account = %'`
	views := func(schema string) string {
		var b strings.Builder
		fmt.Fprintf(&b, "CREATE SCHEMA %s;", schema)
		for _, tb := range []string{"airlock_schema_migrations", "identities", "sessions", "log_entries", "log_checkpoints", "meta", "replica_listeners", "integration_actions"} {
			fmt.Fprintf(&b, "CREATE VIEW %s.%s AS SELECT * FROM public.%s;", schema, tb, tb)
		}
		fmt.Fprintf(&b, "CREATE VIEW %s.grants AS SELECT * FROM public.grants WHERE %s;", schema, hide)
		return b.String()
	}
	for _, c := range []struct {
		name, sql, want string
	}{
		// Row security: the owner is subject to it when forced.
		{"row security", `ALTER TABLE grants ENABLE ROW LEVEL SECURITY; ALTER TABLE grants FORCE ROW LEVEL SECURITY;
			CREATE POLICY hide ON grants USING (` + hide + `)`,
			"catalog: policy grants.hide: using"},
		// The table renamed, and a view that hides the grant in its
		// place (simple views take the store's writes too).
		{"view in its place", `ALTER TABLE grants RENAME TO grants_kept; ALTER INDEX grants_pkey RENAME TO grants_kept_pkey;
			CREATE VIEW grants AS SELECT * FROM grants_kept WHERE ` + hide,
			"catalog: grants names public.grants (relation kind v), not the store's table public.grants"},
		// A schema put first on the database's search_path, with a view
		// of each table: the store's statements (and its migrations, which
		// find every version recorded) go through them.
		{"search path", views("shadow") + `ALTER DATABASE DBNAME SET search_path = shadow, public`,
			"catalog: grants names shadow.grants (relation kind v), not the store's table shadow.grants"},
		// An operator = on text in a schema searched before pg_catalog
		// answers for the built-in one in `account = $1`.
		{"operator", `CREATE SCHEMA evil;
			CREATE FUNCTION evil.eq(a text, b text) RETURNS boolean LANGUAGE sql IMMUTABLE AS 'SELECT a OPERATOR(pg_catalog.=) b AND ` + strings.ReplaceAll(hide, "'", "''") + `';
			CREATE OPERATOR evil.= (LEFTARG = text, RIGHTARG = text, FUNCTION = evil.eq);
			ALTER DATABASE DBNAME SET search_path = public, evil, pg_catalog`,
			"catalog: operator evil.= answers for pg_catalog's in the store's statements: the search_path puts public, evil before pg_catalog"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dsn := pgOwnedDatabase(t)
			e := newAuditEnvWith(t, fmt.Sprintf("store: %q\n", dsn))
			ctx := context.Background()
			u, _ := url.Parse(dsn)
			conn, err := pgx.Connect(ctx, dsn)
			if err != nil {
				t.Fatal(err)
			}
			sql := strings.ReplaceAll(c.sql, "DBNAME", strings.TrimPrefix(u.Path, "/"))
			_, err = conn.Exec(ctx, sql)
			conn.Close(ctx)
			if err != nil {
				t.Fatalf("%s: %v", sql, err)
			}

			st, err := pgstore.Open(ctx, dsn)
			if err != nil {
				t.Fatal(err)
			}
			if all, err := st.Grants(ctx, store.GrantFilter{}); err != nil || len(all) != 1 {
				st.Close()
				t.Fatalf("all grants: %d, %v", len(all), err)
			}
			wantAccountHidden(t, st)

			verifyWants(t, e, c.want)
		})
	}
}

// adminExec runs stmts as the superuser DSN admin, each on its own.
func adminExec(t *testing.T, admin string, stmts ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	for _, q := range stmts {
		if _, err := conn.Exec(ctx, q); err != nil {
			t.Errorf("%s: %v", q, err)
		}
	}
}

// verifyWants opens e's server and checks that its verification reports
// a problem containing each of want.
func verifyWants(t *testing.T, e *auditEnv, want ...string) {
	t.Helper()
	s := openServer(t, e.cfg)
	defer s.Close()
	rep, err := s.Verify(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	wantProblems(t, "postgres", rep, want...)
}

// TestForgedPostgresIndexCaught: whoever can edit the catalog (a
// superuser; editing the index's pages does the same) can make an index
// disagree with its table without changing a row or the index's
// definition: here an empty partial index declared whole. `airlock grants
// --account` reads through grants_account_time (once the planner prefers
// indexes, which the owner can ask of the database) and missed the grant,
// while `audit verify`, which reads the tables, said OK.
func TestForgedPostgresIndexCaught(t *testing.T) {
	dsn := pgDatabase(t)
	e := newAuditEnvWith(t, fmt.Sprintf("store: %q\n", dsn))
	ctx := context.Background()
	u, _ := url.Parse(dsn)
	adminExec(t, dsn,
		`DROP INDEX grants_account_time`,
		`CREATE INDEX grants_account_time ON grants (account, requested_at, span_end) WHERE account = 'none'`,
		`UPDATE pg_index SET indpred = NULL WHERE indexrelid = 'grants_account_time'::regclass`,
		`ALTER DATABASE `+strings.TrimPrefix(u.Path, "/")+` SET enable_seqscan = off`,
	)
	if t.Failed() {
		t.FailNow()
	}
	st, err := pgstore.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	wantAccountHidden(t, st)
	verifyWants(t, e, "index grants_account_time: holds 0 entries, its table 1 rows")
}

// wantAccountHidden checks that st's review of the test grant's account
// misses it (the change under test makes the attack), and closes st.
func wantAccountHidden(t *testing.T, st store.Store) {
	t.Helper()
	gs, err := st.Grants(context.Background(), store.GrantFilter{Account: "111122223333"})
	st.Close()
	if err != nil || len(gs) != 0 {
		t.Fatalf("the change does not hide the grant from its account's review (%d grants, %v): the test does not make the attack", len(gs), err)
	}
}
