package testenv

import (
	"context"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// grantRole creates a role as pgroles does (LOGIN, the marker comment for
// database db) and drops it when t ends, should the code under test not.
func grantRole(t *testing.T, admin, db string, privs ...string) string {
	t.Helper()
	ctx := context.Background()
	name := "airlock_g_testenv" + randHex(6)
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	id := pgx.Identifier{name}.Sanitize()
	for _, q := range append([]string{
		"CREATE ROLE " + id + " LOGIN",
		"COMMENT ON ROLE " + id + " IS 'airlock grant role; database=" + db + "; installation=airlock/testenv'",
	}, privs...) {
		if _, err := conn.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	t.Cleanup(func() {
		if !roleExists(t, admin, name) {
			return
		}
		c, err := pgx.Connect(context.Background(), admin)
		if err != nil {
			return
		}
		defer c.Close(context.Background())
		c.Exec(context.Background(), "DROP OWNED BY "+id)
		c.Exec(context.Background(), "DROP ROLE IF EXISTS "+id)
	})
	return name
}

func roleExists(t *testing.T, admin, name string) bool {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), admin)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var n int
	if err := conn.QueryRow(context.Background(), "SELECT count(*) FROM pg_roles WHERE rolname = $1", name).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n == 1
}

// TestPostgresDatabaseDropsItsGrantRoles: the grant roles made for a test's
// database go with it (t.Cleanup: also when the test fails), and a grant
// role of another database (another test's, alive or gone) stays.
func TestPostgresDatabaseDropsItsGrantRoles(t *testing.T) {
	admin := PostgresDSN(t)
	other := grantRole(t, admin, "testenv_other_"+randHex(4))
	var mine, prefixed string
	outer := t // the roles' own cleanups must run after the inner test's
	t.Run("inner", func(t *testing.T) {
		u, err := url.Parse(PostgresDatabase(t, admin, "testenv_roles"))
		if err != nil {
			t.Fatal(err)
		}
		db := strings.TrimPrefix(u.Path, "/")
		mine = grantRole(outer, admin, db)
		// A privilege in the database, as pgroles grants: gone with it.
		conn, err := pgx.Connect(context.Background(), admin)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(context.Background())
		if _, err := conn.Exec(context.Background(), "GRANT CONNECT ON DATABASE "+db+" TO "+mine); err != nil {
			t.Fatal(err)
		}
		// A database whose name merely starts with ours is not ours.
		prefixed = grantRole(outer, admin, db+"x")
	})
	if roleExists(t, admin, mine) {
		t.Errorf("grant role %s of the test's database outlived it", mine)
	}
	if !roleExists(t, admin, other) || !roleExists(t, admin, prefixed) {
		t.Errorf("a grant role of another database was dropped (%s, %s)", other, prefixed)
	}
}

// TestDropGrantRolesAtEnd: the roles of the test's grant ids go when it
// ends, with the privileges they hold in the admin's database (which would
// otherwise stop DROP ROLE); a role not in the list stays.
func TestDropGrantRolesAtEnd(t *testing.T) {
	admin := PostgresDSN(t)
	var mine, other string
	outer := t
	t.Run("inner", func(t *testing.T) {
		var ids []string
		DropGrantRolesAtEnd(t, admin, func() []string { return ids })
		mine = grantRole(outer, admin, "postgres")
		other = grantRole(outer, admin, "postgres")
		conn, err := pgx.Connect(context.Background(), admin)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(context.Background())
		if _, err := conn.Exec(context.Background(), "GRANT CONNECT ON DATABASE postgres TO "+mine); err != nil {
			t.Fatal(err)
		}
		// Ids as the control plane issues them, known only after the
		// cleanup was registered.
		ids = append(ids, strings.TrimPrefix(mine, "airlock_"), "g_"+randHex(6))
	})
	if roleExists(t, admin, mine) {
		t.Errorf("grant role %s outlived the test", mine)
	}
	if !roleExists(t, admin, other) {
		t.Errorf("grant role %s, not the test's, was dropped", other)
	}
}

// TestDropGrantRolesWhileAnotherGrants: dropping a role's privileges
// rewrites the database's catalog row, which another transaction (a grant
// of another test, on the same shared server) may be rewriting too;
// PostgreSQL fails the loser with "tuple concurrently updated" instead of
// waiting, which used to fail whichever test was cleaning up. Here the
// other transaction holds the row while the drop waits on it, then
// commits: the drop must still succeed.
func TestDropGrantRolesWhileAnotherGrants(t *testing.T) {
	admin := PostgresDSN(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var db string
	if err := conn.QueryRow(ctx, "SELECT current_database()").Scan(&db); err != nil {
		t.Fatal(err)
	}
	dbID := pgx.Identifier{db}.Sanitize()
	mine := grantRole(t, admin, db)
	if _, err := conn.Exec(ctx, "GRANT CONNECT ON DATABASE "+dbID+" TO "+pgx.Identifier{mine}.Sanitize()); err != nil {
		t.Fatal(err)
	}
	other := grantRole(t, admin, db)

	// Another writer, which takes no lock of pgroles': it rewrites the
	// database's row and holds it until it commits.
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(context.Background())
	if _, err := tx.Exec(ctx, "GRANT CONNECT ON DATABASE "+dbID+" TO "+pgx.Identifier{other}.Sanitize()); err != nil {
		t.Fatal(err)
	}

	done := make(chan error, 1)
	go func() {
		done <- dropGrantRoles(ctx, admin, `SELECT rolname FROM pg_roles WHERE rolname = $1`, mine)
	}()
	// Wait (bounded) until the drop waits on the other writer's row.
	watch, err := pgx.Connect(ctx, admin)
	if err != nil {
		t.Fatal(err)
	}
	defer watch.Close(context.Background())
	for deadline := time.Now().Add(20 * time.Second); ; {
		var n int
		if err := watch.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
			WHERE wait_event_type = 'Lock' AND query LIKE 'DROP OWNED BY %' || $1 || '%'`, mine).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the drop never waited on the other writer's catalog row")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("dropping a role while another transaction granted on the database: %v", err)
	}
	if roleExists(t, admin, mine) {
		t.Errorf("grant role %s outlived its drop", mine)
	}
}

// TestDropGrantRolesWhileServerRevokes: the server's own revoke (pgroles,
// when a grant ends) may drop the role between the cleanup's listing and
// its ALTER ROLE. That ALTER then waits on the dropping transaction and
// PostgreSQL fails it with "tuple concurrently deleted" (XX000), not
// "role does not exist", which failed TestMetricsCountCutStatements in CI.
// A role dropped meanwhile is what the cleanup wanted: no error.
func TestDropGrantRolesWhileServerRevokes(t *testing.T) {
	admin := PostgresDSN(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	mine := grantRole(t, admin, "postgres")

	// The revoke: it drops the role and holds the row until it commits.
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(context.Background())
	if _, err := tx.Exec(ctx, "DROP ROLE "+pgx.Identifier{mine}.Sanitize()); err != nil {
		t.Fatal(err)
	}

	done := make(chan error, 1)
	go func() {
		done <- dropGrantRoles(ctx, admin, `SELECT rolname FROM pg_roles WHERE rolname = $1`, mine)
	}()
	watch, err := pgx.Connect(ctx, admin)
	if err != nil {
		t.Fatal(err)
	}
	defer watch.Close(context.Background())
	for deadline := time.Now().Add(20 * time.Second); ; {
		var n int
		if err := watch.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
			WHERE wait_event_type = 'Lock' AND query LIKE 'ALTER ROLE %' || $1 || '%'`, mine).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the cleanup's ALTER ROLE never waited on the revoke's drop")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("dropping a role the server dropped meanwhile: %v", err)
	}
	if roleExists(t, admin, mine) {
		t.Errorf("grant role %s still exists", mine)
	}
}
