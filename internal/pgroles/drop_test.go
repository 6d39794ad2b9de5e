package pgroles

import (
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// TestDropEndsLiveSession: an open session as the role gets an error on
// its next statement, the role is gone, and a second Drop is fine.
func TestDropEndsLiveSession(t *testing.T) {
	m := newManager(t)
	g := newGrant(t, "drop", time.Hour, "pg:select %s.public.customers")
	r, err := m.Ensure(testCtx(t), g)
	if err != nil {
		t.Fatal(err)
	}
	c := connectAs(t, r)
	check(t, c, "SELECT * FROM customers", "")
	g.End("revoked")
	if _, err := m.Ensure(testCtx(t), g); err == nil {
		t.Fatal("Ensure handed out the cached role of an ended grant")
	}
	if err := m.Drop(testCtx(t), g.ID); err != nil {
		t.Fatal(err)
	}
	// 57P01 admin_shutdown is what pg_terminate_backend sends.
	if _, err := c.Exec(testCtx(t), "SELECT 1"); err == nil {
		t.Fatal("a session of the dropped role still runs statements")
	} else if code := sqlState(err); code != "57P01" && !c.IsClosed() {
		t.Fatalf("session error %v: want 57P01 or a closed connection", err)
	}
	if roleExists(t, r.Name) {
		t.Fatal("role still exists after Drop")
	}
	if err := m.Drop(testCtx(t), g.ID); err != nil {
		t.Fatalf("second Drop: %v", err)
	}
	if _, err := m.Ensure(testCtx(t), g); err == nil {
		t.Fatal("Ensure after the grant ended returned a role")
	}
}

func TestTerminateKeepsRole(t *testing.T) {
	m := newManager(t)
	g := newGrant(t, "term", time.Hour, "pg:select %s.public.customers")
	r, err := m.Ensure(testCtx(t), g)
	if err != nil {
		t.Fatal(err)
	}
	c1, c2 := connectAs(t, r), connectAs(t, r)
	n, err := m.Terminate(testCtx(t), g.ID)
	if err != nil || n != 2 {
		t.Fatalf("Terminate = %d, %v; want 2", n, err)
	}
	if _, err := c1.Exec(testCtx(t), "SELECT 1"); err == nil {
		t.Error("first session survived Terminate")
	}
	if _, err := c2.Exec(testCtx(t), "SELECT 1"); err == nil {
		t.Error("second session survived Terminate")
	}
	check(t, connectAs(t, r), "SELECT * FROM customers", "")
	if n, err := m.Terminate(testCtx(t), "g_"+env.run+"_nosuchgrant"); err != nil || n != 0 {
		t.Fatalf("Terminate of a missing role = %d, %v", n, err)
	}
}

// TestReconcile drops orphans, keeps the listed grants and the live ones
// this Manager made, and never touches a role that is not an Airlock grant
// role of this database, whatever its name.
func TestReconcile(t *testing.T) {
	e := need(t)
	var names []string
	dropRolesAtEnd(t, func() []string {
		return append(names, "airlock_pgroles_bystander_"+e.run, RoleName(grantID("rec_fake")), RoleName(grantID("rec_foreign")))
	})
	m := newManager(t)
	for _, n := range []string{"keep", "orphan1", "orphan2", "live"} {
		r, err := m.Ensure(testCtx(t), newGrant(t, "rec_"+n, time.Hour, "pg:select %s.public.customers"))
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, r.Name)
	}
	orphanConn := connectAs(t, Role{Name: names[1], Password: "unused under trust"})
	// Roles a Manager must never touch: a real role, a role in our name
	// space without our comment, one made for another database.
	bystander := "airlock_pgroles_bystander_" + e.run
	fake := RoleName(grantID("rec_fake"))
	foreign := RoleName(grantID("rec_foreign"))
	su := superConn(t, "")
	for _, s := range []string{
		"CREATE ROLE " + bystander + " LOGIN",
		"CREATE ROLE " + fake + " LOGIN",
		"CREATE ROLE " + foreign + " LOGIN",
		"COMMENT ON ROLE " + foreign + " IS '" + marker("some_other_db", "") + "'",
	} {
		if _, err := su.Exec(testCtx(t), s); err != nil {
			t.Fatal(err)
		}
	}

	// The restarted process knows only "keep"; the first Manager, which
	// still holds "live", runs a second Reconcile that must keep it.
	m2 := newManager(t)
	if err := m2.Reconcile(testCtx(t), []string{grantID("rec_keep"), grantID("rec_live")}); err != nil {
		t.Fatal(err)
	}
	if err := m.Reconcile(testCtx(t), []string{grantID("rec_keep")}); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]bool{
		names[0]: true, names[1]: false, names[2]: false, names[3]: true,
		bystander: true, fake: true, foreign: true,
	} {
		if got := roleExists(t, name); got != want {
			t.Errorf("role %s exists = %v, want %v", name, got, want)
		}
	}
	if _, err := orphanConn.Exec(testCtx(t), "SELECT 1"); err == nil {
		t.Error("a session of a reconciled orphan survived")
	}
	for _, id := range []string{grantID("rec_fake"), grantID("rec_foreign")} {
		if err := m.Drop(testCtx(t), id); !errors.Is(err, errNotOurs) {
			t.Errorf("Drop(%s) = %v, want errNotOurs", id, err)
		}
		if _, err := m.Terminate(testCtx(t), id); !errors.Is(err, errNotOurs) {
			t.Errorf("Terminate(%s) = %v, want errNotOurs", id, err)
		}
		g := newGrant(t, id[len("g_"+e.run+"_"):], time.Hour, "pg:select %s.public.customers")
		if _, err := m.Ensure(testCtx(t), g); !errors.Is(err, errNotOurs) {
			t.Errorf("Ensure(%s) = %v, want errNotOurs", id, err)
		}
	}
}

// TerminateBackend ends the one backend of the grant's role it names, and
// leaves alone a pid that is not the role's (another grant's backend), the
// role's other backends, and a backend of the role started after the time
// given (a pid the server gave to another of the role's backends after the
// one meant exited).
func TestTerminateBackendEndsOnlyThatBackend(t *testing.T) {
	m := newManager(t)
	g := newGrant(t, "termpid", time.Hour, "pg:select %s.public.customers")
	other := newGrant(t, "termpid2", time.Hour, "pg:select %s.public.customers")
	r, err := m.Ensure(testCtx(t), g)
	if err != nil {
		t.Fatal(err)
	}
	ro, err := m.Ensure(testCtx(t), other)
	if err != nil {
		t.Fatal(err)
	}
	target, sibling, foreign := connectAs(t, r), connectAs(t, r), connectAs(t, ro)
	// The session the caller means ended here: a backend of the role
	// started after it holds a pid the server gave it since.
	sessionEnd := time.Now()
	later := connectAs(t, r)
	pid := func(c *pgx.Conn) uint32 { return c.PgConn().PID() }
	if ended, err := m.TerminateBackend(testCtx(t), g.ID, pid(foreign), sessionEnd); err != nil || ended {
		t.Fatalf("TerminateBackend of another grant's backend = %v, %v; want false", ended, err)
	}
	if ended, err := m.TerminateBackend(testCtx(t), g.ID, pid(later), sessionEnd); err != nil || ended {
		t.Fatalf("TerminateBackend of a backend started after the session's end = %v, %v; want false", ended, err)
	}
	if ended, err := m.TerminateBackend(testCtx(t), g.ID, pid(target), sessionEnd); err != nil || !ended {
		t.Fatalf("TerminateBackend = %v, %v; want true", ended, err)
	}
	if _, err := target.Exec(testCtx(t), "SELECT 1"); err == nil {
		t.Error("the backend survived TerminateBackend")
	}
	for name, c := range map[string]*pgx.Conn{"the role's other backend": sibling, "another grant's backend": foreign,
		"the role's backend started after the session's end": later} {
		if _, err := c.Exec(testCtx(t), "SELECT 1"); err != nil {
			t.Errorf("%s was ended: %v", name, err)
		}
	}
}
