package testenv

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Grant login roles (internal/pgroles: airlock_g_<grant>) belong to the
// whole cluster, not to a database: dropping a test's database leaves them
// behind, and an active grant's role outlives the server that made it (by
// design: the next start's reconcile drops it). On the shared CI server
// they would pile up run after run, so tests drop the ones they caused.
// Only roles a test can prove are its own are dropped, since other test
// processes share the server: the roles whose marker comment names the
// test's own (randomly named) database, or the roles of grant ids the test
// itself was issued.

// grantRolePrefix is pgroles' name space (pgroles.rolePrefix); nothing
// outside it is ever dropped here.
const grantRolePrefix = "airlock_g_"

// DropGrantRolesOfDatabase drops, on the server the superuser DSN admin
// reaches, every grant role whose marker comment (pgroles: "airlock grant
// role; database=NAME[; installation=…]") names database db. Call it after
// db is dropped (its privileges in db are gone with it); db must be a name
// no other test uses.
func DropGrantRolesOfDatabase(ctx context.Context, admin, db string) error {
	return dropGrantRoles(ctx, admin, `
		SELECT r.rolname FROM pg_roles r
		WHERE starts_with(r.rolname, $1)
		  AND (shobj_description(r.oid, 'pg_authid') = 'airlock grant role; database=' || $2
		    OR starts_with(shobj_description(r.oid, 'pg_authid'), 'airlock grant role; database=' || $2 || ';'))`,
		grantRolePrefix, db)
}

// DropGrantRolesAtEnd drops, when t ends (passed or failed), the grant
// roles of the grant ids ids returns then, on the server the superuser DSN
// admin reaches. It is for tests whose grants target a database that
// outlives them (the admin's own): their roles still hold privileges
// there, which DROP OWNED BY (run in admin's database) revokes first.
func DropGrantRolesAtEnd(t testing.TB, admin string, ids func() []string) {
	t.Cleanup(func() {
		var names []string
		for _, id := range ids() {
			// pgroles.RoleName, for ids of pgroles' shape only.
			if name := "airlock_" + strings.ToLower(id); strings.HasPrefix(name, grantRolePrefix) {
				names = append(names, name)
			}
		}
		if len(names) == 0 {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := dropGrantRoles(ctx, admin, `SELECT rolname FROM pg_roles WHERE rolname = ANY($1)`, names); err != nil {
			t.Errorf("dropping the test's grant roles: %v", err)
		}
	})
}

// dropGrantRoles drops the roles query (with args) lists: their sessions
// are terminated (a role with a backend cannot be dropped), what they own
// or were granted in admin's database is dropped or revoked, then the role.
func dropGrantRoles(ctx context.Context, admin, query string, args ...any) error {
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		return fmt.Errorf("connecting to PostgreSQL: %w", err)
	}
	defer conn.Close(context.Background())
	rows, err := conn.Query(ctx, query, args...)
	if err != nil {
		return fmt.Errorf("listing grant roles: %w", err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fmt.Errorf("listing grant roles: %w", err)
	}
	var errs []string
	for _, name := range names {
		if !strings.HasPrefix(name, grantRolePrefix) {
			continue // never a real role
		}
		id := pgx.Identifier{name}.Sanitize()
		for _, st := range []struct {
			sql  string
			args []any
		}{
			{"ALTER ROLE " + id + " NOLOGIN", nil},
			{"SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE usename = $1", []any{name}},
			{"DROP OWNED BY " + id, nil},
			{"DROP ROLE IF EXISTS " + id, nil},
		} {
			exec := conn.Exec
			if strings.HasPrefix(st.sql, "DROP OWNED") {
				exec = func(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
					return dropOwned(ctx, conn, sql)
				}
			}
			if _, err := exec(ctx, st.sql, st.args...); err != nil {
				var pe *pgconn.PgError
				if errors.As(err, &pe) && pe.Code == "42704" {
					break // dropped meanwhile (by the server's own revoke)
				}
				if concurrentlyDeleted(err) {
					// The server's own revoke dropped the role while this
					// statement waited on its row: gone, as wanted, unless
					// it is somehow still there.
					var n int
					if qerr := conn.QueryRow(ctx, "SELECT count(*) FROM pg_roles WHERE rolname = $1", name).Scan(&n); qerr == nil && n == 0 {
						break
					}
				}
				errs = append(errs, fmt.Sprintf("%s: %v", st.sql, err))
				break
			}
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return nil
}

// aclLockKey is the advisory lock pgroles (Manager.lockACL) holds while it
// grants or revokes in a database, suffixed with the database's name.
const aclLockKey = "airlock-pgroles-acl:"

// dropOwned runs DROP OWNED BY (sql) on conn. It rewrites the privileges
// in the catalog rows of the database itself and of each object the role
// was granted, and PostgreSQL fails it ("tuple concurrently updated",
// XX000) rather than waiting when another transaction changed one of
// those rows meanwhile: a grant role's privileges share those rows with
// every other grant on the same database, which the tests of other
// packages, running at the same time on the shared server, keep granting
// and revoking. So it takes the lock pgroles' Managers take for the same
// work, and tries again (from a fresh snapshot) when a writer that does not
// take it (another test's own cleanup, or a plain GRANT) got there first.
func dropOwned(ctx context.Context, conn *pgx.Conn, sql string) (pgconn.CommandTag, error) {
	for attempt := 1; ; attempt++ {
		err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock(hashtext($1 || current_database()))", aclLockKey); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, sql)
			return err
		})
		if err == nil || !concurrentlyUpdated(err) || attempt == dropOwnedAttempts {
			return pgconn.CommandTag{}, err
		}
		select {
		case <-ctx.Done():
			return pgconn.CommandTag{}, ctx.Err()
		case <-time.After(time.Duration(attempt) * 10 * time.Millisecond):
		}
	}
}

// dropOwnedAttempts bounds dropOwned's tries: each lost race means another
// writer committed, so a handful is plenty short of a stuck server.
const dropOwnedAttempts = 20

// concurrentlyUpdated reports whether err is PostgreSQL's refusal to
// rewrite a catalog row another transaction changed meanwhile.
func concurrentlyUpdated(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "XX000" && strings.Contains(pe.Message, "tuple concurrently updated")
}

// concurrentlyDeleted reports whether err is PostgreSQL's refusal to
// change a catalog row another transaction deleted while this one waited
// on it (a role dropped under an ALTER ROLE).
func concurrentlyDeleted(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "XX000" && strings.Contains(pe.Message, "tuple concurrently deleted")
}

// WaitGrantQuery waits until grant id's role (pgroles: airlock_<id>) runs
// query upstream (an active server process of the cluster admin reaches
// with that query text), failing t after 20 s: a statement a test is about
// to cut off has started.
func WaitGrantQuery(t testing.TB, admin, id, query string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	for deadline := time.Now().Add(20 * time.Second); ; {
		var n int
		if err := conn.QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE usename = $1 AND query = $2 AND state = 'active'",
			"airlock_"+strings.ToLower(id), query).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never ran upstream as grant %s", query, id)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
