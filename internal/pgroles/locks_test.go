package pgroles

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// holdManagerLocks makes a grant's role with m and takes, from the role's
// own session, the advisory locks the Managers serialise on: its role's
// and the database's ACL lock. Advisory locks need no privilege and their
// keys are derived from public names, so any grant role can take them and
// keep them for as long as its session lives. It returns the role and the
// 5-second deadline the Manager gets to work past the locks.
func holdManagerLocks(t *testing.T, m *Manager, name string) (Role, *pgx.Conn, context.Context) {
	t.Helper()
	r, err := m.Ensure(testCtx(t), newGrant(t, name, time.Hour, "pg:select %s.public.customers"))
	if err != nil {
		t.Fatal(err)
	}
	c := connectAs(t, r)
	check(t, c, `SELECT pg_advisory_lock(hashtext('airlock-pgroles:' || current_user)),
		pg_advisory_lock(hashtext('airlock-pgroles-acl:' || current_database()))`, "")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	t.Cleanup(cancel)
	return r, c, ctx
}

// TestDropNotBlockedByAgentLock: a grant role holding the Managers' locks
// kept Drop waiting until its deadline, so the role kept LOGIN and its
// session outlived the grant. Drop must end such a session and proceed.
func TestDropNotBlockedByAgentLock(t *testing.T) {
	need(t)
	m := newManager(t)
	r, _, ctx := holdManagerLocks(t, m, "lockdrop")
	if err := m.Drop(ctx, grantID("lockdrop")); err != nil {
		t.Fatalf("Drop: %v", err)
	}
	if roleExists(t, r.Name) {
		t.Error("the role survived Drop")
	}
}

// TestEnsureNotBlockedByAgentLock: one agent's session holding the
// database's ACL lock kept every other grant on the target from getting
// its role.
func TestEnsureNotBlockedByAgentLock(t *testing.T) {
	need(t)
	m := newManager(t)
	_, holder, ctx := holdManagerLocks(t, m, "lockhold")
	t.Cleanup(func() {
		// Bounded: without eviction, the held lock would stall it forever.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		m.Drop(ctx, grantID("lockhold"))
	})
	other, err := m.Ensure(ctx, newGrant(t, "lockother", time.Hour, "pg:select %s.public.orders"))
	if err != nil {
		t.Fatalf("Ensure of another grant: %v", err)
	}
	t.Cleanup(func() { m.Drop(context.Background(), grantID("lockother")) })
	check(t, connectAs(t, other), "SELECT * FROM orders", "")
	if _, err := holder.Exec(testCtx(t), "SELECT 1"); err == nil {
		t.Error("the session holding the lock survived")
	}
}

// TestDropNotBlockedByOpenRoleChange: a grant role may change its own
// password (the gateway refuses the statements it can read, not SQL built
// at run time). Left uncommitted in an open transaction, the change holds
// the role's catalog row, and Drop's ALTER ROLE … NOLOGIN waited for it
// until its deadline: the role kept LOGIN and its session outlived the
// grant.
func TestDropNotBlockedByOpenRoleChange(t *testing.T) {
	need(t)
	m := newManager(t)
	r, err := m.Ensure(testCtx(t), newGrant(t, "rowlock", time.Hour, "pg:select %s.public.customers"))
	if err != nil {
		t.Fatal(err)
	}
	c := connectAs(t, r)
	check(t, c, "BEGIN", "")
	check(t, c, "ALTER ROLE CURRENT_USER PASSWORD NULL", "")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := m.Drop(ctx, grantID("rowlock")); err != nil {
		t.Fatalf("Drop: %v", err)
	}
	if roleExists(t, r.Name) {
		t.Error("the role survived Drop")
	}
}

// TestEnsureNotBlockedByOpenRoleChange: the same held row made a second
// Manager's Ensure of the role (a replica, or Airlock after a restart)
// wait in ALTER ROLE until its deadline, holding the database's ACL lock
// all along, so no other grant on the target got its role either.
func TestEnsureNotBlockedByOpenRoleChange(t *testing.T) {
	need(t)
	g := newGrant(t, "rowlock_ensure", time.Hour, "pg:select %s.public.customers")
	r, err := newManager(t).Ensure(testCtx(t), g)
	if err != nil {
		t.Fatal(err)
	}
	c := connectAs(t, r)
	check(t, c, "BEGIN", "")
	check(t, c, "ALTER ROLE CURRENT_USER PASSWORD NULL", "")
	m := newManager(t)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		m.Drop(ctx, g.ID)
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r2, err := m.Ensure(ctx, g)
	if err != nil {
		t.Fatalf("Ensure by a second Manager: %v", err)
	}
	check(t, connectAs(t, r2), "SELECT * FROM customers", "")
}
