package pgroles

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// holdDatabaseRow rewrites this run's database's catalog row (its ACL) in a
// superuser transaction that takes none of the Managers' locks, as a DBA's
// GRANT would, and keeps it open; commit ends it.
func holdDatabaseRow(t *testing.T) (commit func()) {
	t.Helper()
	tx, err := superConn(t, "").Begin(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tx.Rollback(context.Background()) })
	if _, err := tx.Exec(testCtx(t), "GRANT CONNECT ON DATABASE "+pgx.Identifier{env.db}.Sanitize()+" TO PUBLIC"); err != nil {
		t.Fatal(err)
	}
	return func() {
		if err := tx.Commit(testCtx(t)); err != nil {
			t.Fatal(err)
		}
	}
}

// waitForStatement waits (bounded) until a backend runs a statement
// starting with prefix and waits on a lock: the Manager's transaction has
// reached the held row.
func waitForStatement(t *testing.T, prefix string) {
	t.Helper()
	su := superConn(t, "")
	for deadline := time.Now().Add(20 * time.Second); ; {
		var n int
		if err := su.QueryRow(testCtx(t), `SELECT count(*) FROM pg_stat_activity
			WHERE wait_event_type = 'Lock' AND starts_with(query, $1)`, prefix).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no statement %q ever waited on the held row", prefix)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestDropSurvivesAnOutsideGrant: DROP OWNED rewrites the database's
// catalog row; a transaction outside Airlock's locks that rewrote it
// meanwhile made PostgreSQL fail the drop ("tuple concurrently updated"),
// which left the role (without LOGIN) and its privileges until the next
// start. Drop must try again and drop it.
func TestDropSurvivesAnOutsideGrant(t *testing.T) {
	need(t)
	m := newManager(t)
	r, err := m.Ensure(testCtx(t), newGrant(t, "racedrop", time.Hour, "pg:select %s.public.customers"))
	if err != nil {
		t.Fatal(err)
	}
	commit := holdDatabaseRow(t)
	done := make(chan error, 1)
	go func() { done <- m.Drop(testCtx(t), grantID("racedrop")) }()
	waitForStatement(t, "DROP OWNED BY")
	commit()
	if err := <-done; err != nil {
		t.Fatalf("Drop while another transaction granted on the database: %v", err)
	}
	if roleExists(t, r.Name) {
		t.Error("the role survived Drop")
	}
}

// TestEnsureSurvivesAnOutsideGrant: the same race on a grant's GRANTs
// refused the grant its role, so its agent could not log in.
func TestEnsureSurvivesAnOutsideGrant(t *testing.T) {
	need(t)
	m := newManager(t)
	commit := holdDatabaseRow(t)
	type result struct {
		r   Role
		err error
	}
	done := make(chan result, 1)
	go func() {
		r, err := m.Ensure(testCtx(t), newGrant(t, "raceensure", time.Hour, "pg:select %s.public.customers"))
		done <- result{r, err}
	}()
	t.Cleanup(func() { m.Drop(context.Background(), grantID("raceensure")) })
	waitForStatement(t, "GRANT")
	commit()
	res := <-done
	if res.err != nil {
		t.Fatalf("Ensure while another transaction granted on the database: %v", res.err)
	}
	check(t, connectAs(t, res.r), "SELECT name FROM customers", "")
}
