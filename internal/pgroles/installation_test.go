package pgroles

import (
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"
)

// TestInstallationsLeaveEachOthersRoles: two Airlock installations in
// front of one database (each with its own grants) leave each other's
// grant roles alone. Before roles were marked with their installation,
// each one's Reconcile dropped the other's roles as orphans, cutting off
// its live grants. A role made before installations were named is taken
// over by the installation that ensures it next.
func TestInstallationsLeaveEachOthersRoles(t *testing.T) {
	e := need(t)
	dropRolesAtEnd(t, func() []string {
		return []string{RoleName(grantID("inst_a")), RoleName(grantID("inst_b")), RoleName(grantID("inst_legacy"))}
	})
	manager := func(inst string) *Manager {
		m, err := New(testCtx(t), e.adminDSN, slog.New(slog.NewTextHandler(io.Discard, nil)), WithInstallation(inst))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(m.Close)
		return m
	}
	a, b, legacy := manager("airlock/aaaa"), manager("airlock/bbbb"), newManager(t)
	gA := newGrant(t, "inst_a", time.Hour, "pg:select %s.public.customers")
	gB := newGrant(t, "inst_b", time.Hour, "pg:select %s.public.customers")
	gL := newGrant(t, "inst_legacy", time.Hour, "pg:select %s.public.customers")
	if _, err := a.Ensure(testCtx(t), gA); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Ensure(testCtx(t), gB); err != nil {
		t.Fatal(err)
	}
	if _, err := legacy.Ensure(testCtx(t), gL); err != nil {
		t.Fatal(err)
	}
	comment := func(grantID string) string {
		var c string
		if err := superConn(t, "").QueryRow(testCtx(t), `SELECT coalesce(pg_catalog.shobj_description(oid, 'pg_authid'), '')
			FROM pg_catalog.pg_roles WHERE rolname = $1`, RoleName(grantID)).Scan(&c); err != nil {
			t.Fatal(err)
		}
		return c
	}
	if got, want := comment(gA.ID), marker(e.db, "airlock/aaaa"); got != want {
		t.Fatalf("installation A's role is marked %q, want %q", got, want)
	}
	// A takes the legacy role over (as after an upgrade, when the grant's
	// role is ensured again).
	a2 := manager("airlock/aaaa")
	if _, err := a2.Ensure(testCtx(t), gL); err != nil {
		t.Fatal(err)
	}
	if got, want := comment(gL.ID), marker(e.db, "airlock/aaaa"); got != want {
		t.Fatalf("the legacy role after A's Ensure is marked %q, want %q", got, want)
	}

	// Each installation knows only its own grants.
	if err := b.Reconcile(testCtx(t), []string{gB.ID}); err != nil {
		t.Fatal(err)
	}
	if err := a.Reconcile(testCtx(t), []string{gA.ID, gL.ID}); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{gA.ID, gB.ID, gL.ID} {
		if !roleExists(t, RoleName(id)) {
			t.Errorf("role of %s was dropped by the other installation", id)
		}
	}
	if err := b.Drop(testCtx(t), gA.ID); !errors.Is(err, errNotOurs) {
		t.Errorf("B dropping A's role: %v, want errNotOurs", err)
	}
	if _, err := b.Ensure(testCtx(t), gA); !errors.Is(err, errNotOurs) {
		t.Errorf("B ensuring A's role: %v, want errNotOurs", err)
	}
	// Its own orphans an installation still drops (B restarted with none
	// of its grants live).
	if err := manager("airlock/bbbb").Reconcile(testCtx(t), nil); err != nil {
		t.Fatal(err)
	}
	if roleExists(t, RoleName(gB.ID)) || !roleExists(t, RoleName(gA.ID)) {
		t.Errorf("after B's Reconcile with nothing live: B's role exists %v, A's %v", roleExists(t, RoleName(gB.ID)), roleExists(t, RoleName(gA.ID)))
	}
}
