package pgroles

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"
)

// replicaKey is the password key the replicas of these tests share.
var replicaKey = []byte("pgroles-replica-test-key-32-bytes!")

func newReplicaManager(t *testing.T, key []byte) *Manager {
	t.Helper()
	m, err := New(testCtx(t), need(t).adminDSN, slog.New(slog.NewTextHandler(io.Discard, nil)), WithPasswordKey(key))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	return m
}

func roleOID(t *testing.T, name string) uint32 {
	t.Helper()
	var oid uint32
	if err := superConn(t, "").QueryRow(testCtx(t), "SELECT oid FROM pg_authid WHERE rolname = $1", name).Scan(&oid); err != nil {
		t.Fatal(err)
	}
	return oid
}

// TestReplicaManagersShareOneRole: two replicas' Managers with the same key
// prepare one grant's role at the same time. It is created once (its oid
// never changes), both get the same password, which is the one PostgreSQL
// stores, and a session opened through one replica survives the other's
// Ensure. The first Drop removes it and ends that session; the second is a
// no-op.
func TestReplicaManagersShareOneRole(t *testing.T) {
	need(t)
	a, b := newReplicaManager(t, replicaKey), newReplicaManager(t, replicaKey)
	g := newGrant(t, "repl_share", time.Hour, "pg:select %s.public.customers")
	const each = 4
	roles := make([]Role, 2*each)
	errs := make([]error, 2*each)
	var wg sync.WaitGroup
	for i := range roles {
		m := a
		if i%2 == 1 {
			m = b
		}
		wg.Go(func() { roles[i], errs[i] = m.Ensure(testCtx(t), g) })
	}
	wg.Wait()
	for i := range roles {
		if errs[i] != nil {
			t.Fatalf("Ensure %d: %v", i, errs[i])
		}
		if roles[i].Name != roles[0].Name || roles[i].Password != roles[0].Password {
			t.Fatalf("Ensure %d (replica %d) returned another role or password", i, i%2)
		}
	}
	oid := roleOID(t, roles[0].Name)
	var verifier string
	if err := superConn(t, "").QueryRow(testCtx(t), "SELECT rolpassword FROM pg_authid WHERE rolname = $1", roles[0].Name).Scan(&verifier); err != nil {
		t.Fatal(err)
	}
	pv := parseVerifier(t, verifier)
	if want, _ := scramVerifier(roles[0].Password, pv.salt, pv.iterations); want != verifier {
		t.Fatal("the stored verifier is not the replicas' shared password's")
	}
	c := connectAs(t, roles[0])
	check(t, c, "SELECT * FROM customers", "")

	// A third replica, started later, meets the role made by the others.
	late, err := newReplicaManager(t, replicaKey).Ensure(testCtx(t), g)
	if err != nil {
		t.Fatal(err)
	}
	if late.Password != roles[0].Password {
		t.Fatal("a replica started later derived another password")
	}
	if got := roleOID(t, roles[0].Name); got != oid {
		t.Fatalf("the role was made again (oid %d, then %d)", oid, got)
	}
	check(t, c, "SELECT * FROM customers", "")

	// Another key derives another password: a replica misconfigured so
	// must not be mistaken for one of the set.
	other, err := newReplicaManager(t, []byte("another-replica-key-of-32-bytes!!!")).password(g.ID)
	if err != nil || other == roles[0].Password {
		t.Fatalf("another key gave the same password (err %v)", err)
	}

	if err := a.Drop(testCtx(t), g.ID); err != nil {
		t.Fatal(err)
	}
	if roleExists(t, roles[0].Name) {
		t.Fatal("role survived the first Drop")
	}
	if _, err := c.Exec(testCtx(t), "SELECT 1"); err == nil {
		t.Error("a session of the dropped role survived")
	}
	if err := b.Drop(testCtx(t), g.ID); err != nil {
		t.Fatalf("the second replica's Drop: %v", err)
	}
}

// TestReconcileLiveKeepsOtherReplicasRoles: a replica starting up knows
// none of the grants; ReconcileLive asks the shared store (here a map) and
// drops only the roles of grants that ended, including those a dead
// replica made and never dropped, while the live ones another replica made
// survive with their sessions.
func TestReconcileLiveKeepsOtherReplicasRoles(t *testing.T) {
	need(t)
	dead := newReplicaManager(t, replicaKey)
	liveRole, err := dead.Ensure(testCtx(t), newGrant(t, "repl_live", time.Hour, "pg:select %s.public.customers"))
	if err != nil {
		t.Fatal(err)
	}
	endedRole, err := dead.Ensure(testCtx(t), newGrant(t, "repl_ended", time.Hour, "pg:select %s.public.customers"))
	if err != nil {
		t.Fatal(err)
	}
	c := connectAs(t, liveRole)
	dead.Close() // the replica dies without dropping anything

	fresh := newReplicaManager(t, replicaKey)
	var asked []string
	err = fresh.ReconcileLive(testCtx(t), func(_ context.Context, ids []string) (map[string]bool, error) {
		asked = ids
		return map[string]bool{grantID("repl_live"): true}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !roleExists(t, liveRole.Name) {
		t.Error("the live grant's role was dropped")
	}
	if roleExists(t, endedRole.Name) {
		t.Error("the ended grant's role survived")
	}
	found := map[string]bool{}
	for _, id := range asked {
		found[id] = true
	}
	if !found[grantID("repl_live")] || !found[grantID("repl_ended")] {
		t.Errorf("live was asked about %v, want both grants", asked)
	}
	check(t, c, "SELECT * FROM customers", "")
	if err := fresh.Drop(testCtx(t), grantID("repl_live")); err != nil {
		t.Fatal(err)
	}
}
