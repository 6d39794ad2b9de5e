package pggw

import (
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/airlock-dev/airlock/internal/clock"
	"github.com/airlock-dev/airlock/internal/gateway"
)

// idleUpstreams returns the backend pids of the connections g's pool keeps.
func (e *env) idleUpstreams(g *gateway.Grant) []uint32 {
	e.gw.mu.Lock()
	st := e.gw.grants[g.ID]
	e.gw.mu.Unlock()
	if st == nil {
		return nil
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	var pids []uint32
	for _, u := range st.idle {
		pids = append(pids, u.pid)
	}
	return pids
}

// waitIdle waits until g's pool keeps n connections.
func (e *env) waitIdle(g *gateway.Grant, n int) []uint32 {
	e.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		pids := e.idleUpstreams(g)
		if len(pids) == n {
			return pids
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("the grant's pool keeps %d upstream connections (%v), want %d", len(pids), pids, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// backendGone waits until the server has no backend pid.
func (e *env) backendGone(admin *pgx.Conn, pid uint32) {
	e.t.Helper()
	ctx := ctxT(e.t, 15*time.Second)
	deadline := time.Now().Add(10 * time.Second)
	for {
		var n int
		if err := admin.QueryRow(ctx, "select count(*) from pg_stat_activity where pid = $1", int32(pid)).Scan(&n); err != nil {
			e.t.Fatal(err)
		}
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("backend %d is still connected", pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func backendPID(t *testing.T, c *pgx.Conn) uint32 {
	t.Helper()
	var pid int32
	if err := c.QueryRow(ctxT(t, 10*time.Second), "select pg_backend_pid()").Scan(&pid); err != nil {
		t.Fatal(err)
	}
	return uint32(pid)
}

// A session that ends cleanly leaves its upstream connection to the
// grant's next session, reset: nothing the first session set (settings,
// prepared statements, temporary tables, LISTENs, advisory locks) is
// there for the second, and each session is recorded as its own.
func TestUpstreamKeptForTheGrantsNextSession(t *testing.T) {
	e := newEnv(t, nil)
	g := e.grant(time.Hour, "pg:select %s.public.customers")
	ctx := ctxT(t, 30*time.Second)

	c1 := e.connect(g, "")
	pid1 := backendPID(t, c1)
	for _, q := range []string{
		"set statement_timeout = 12345",
		"set application_name = 'first'",
		"prepare airlock_p as select 1",
		"create temp table airlock_t (x int)",
		"listen airlock_chan",
		"select pg_advisory_lock(4242)",
	} {
		if _, err := c1.Exec(ctx, q, pgxSimple); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	if err := c1.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if got := e.waitIdle(g, 1); got[0] != pid1 {
		t.Fatalf("the pool keeps backend %d, want %d", got[0], pid1)
	}

	c2 := e.connect(g, "")
	if pid2 := backendPID(t, c2); pid2 != pid1 {
		t.Fatalf("the second session got backend %d, want the first's %d", pid2, pid1)
	}
	if n := len(e.idleUpstreams(g)); n != 0 {
		t.Errorf("the pool still keeps %d connections while the second session uses its one", n)
	}
	var timeout, app string
	var prepared, temp, listening, locks int
	err := c2.QueryRow(ctx, `select current_setting('statement_timeout'), current_setting('application_name'),
		(select count(*) from pg_prepared_statements where name = 'airlock_p'),
		(select count(*) from pg_class where relname = 'airlock_t' and relpersistence = 't'),
		(select count(*) from pg_listening_channels()),
		(select count(*) from pg_locks where locktype = 'advisory' and pid = pg_backend_pid())`, pgxSimple).
		Scan(&timeout, &app, &prepared, &temp, &listening, &locks)
	if err != nil {
		t.Fatal(err)
	}
	if timeout != "0" || app == "first" || prepared != 0 || temp != 0 || listening != 0 || locks != 0 {
		t.Errorf("the second session inherited the first's state: statement_timeout %q, application_name %q, "+
			"%d prepared, %d temporary tables, %d channels listened to, %d advisory locks", timeout, app, prepared, temp, listening, locks)
	}
	// The second session's client was told the settings of the login,
	// not the first session's last ones.
	if got := c2.PgConn().ParameterStatus("application_name"); got == "first" {
		t.Errorf("the second session's greeting reports application_name %q", got)
	}
	if err := c2.Close(ctx); err != nil {
		t.Fatal(err)
	}
	e.waitIdle(g, 1)

	var starts int
	for _, s := range e.auth.Sessions() {
		if s.Grant.ID == g.ID {
			starts++
			if !s.Ended() {
				t.Errorf("session %s was not ended", s.ID)
			}
		}
	}
	if starts != 2 {
		t.Errorf("%d sessions recorded for the grant, want 2", starts)
	}
	for _, s := range e.auth.Sessions() {
		if s.Grant.ID == g.ID && len(s.Calls()) < 2 {
			t.Errorf("session %s recorded %d calls", s.ID, len(s.Calls()))
		}
	}
}

// A session that seeds random() does not know the random() of the grant's
// next session on the same backend: DISCARD ALL leaves the generator's
// state as setseed left it, so the reset seeds it afresh.
func TestKeptUpstreamReseeded(t *testing.T) {
	e := newEnv(t, nil)
	g := e.grant(time.Hour, "pg:select %s.public.customers")
	ctx := ctxT(t, 30*time.Second)
	const draws = "select random(), random(), random()"

	// What random() gives after setseed(0.5), on a backend of its own.
	admin := e.admin()
	if _, err := admin.Exec(ctx, "select setseed(0.5)"); err != nil {
		t.Fatal(err)
	}
	var seeded [3]float64
	if err := admin.QueryRow(ctx, draws).Scan(&seeded[0], &seeded[1], &seeded[2]); err != nil {
		t.Fatal(err)
	}

	c1 := e.connect(g, "")
	pid1 := backendPID(t, c1)
	if _, err := c1.Exec(ctx, "select setseed(0.5)", pgxSimple); err != nil {
		t.Fatal(err)
	}
	if err := c1.Close(ctx); err != nil {
		t.Fatal(err)
	}
	e.waitIdle(g, 1)
	c2 := e.connect(g, "")
	if pid2 := backendPID(t, c2); pid2 != pid1 {
		t.Fatalf("the second session got backend %d, not the kept %d", pid2, pid1)
	}
	var got [3]float64
	if err := c2.QueryRow(ctx, draws, pgxSimple).Scan(&got[0], &got[1], &got[2]); err != nil {
		t.Fatal(err)
	}
	if got == seeded {
		t.Errorf("the grant's next session drew %v, what the first session's setseed(0.5) predicts", got)
	}
}

// A session that leaves inside a transaction block, or in the middle of a
// statement, or that asked for other startup parameters, does not leave
// its connection to another: the next session logs in afresh, and the
// backend is closed.
func TestUpstreamNotKeptUnlessClean(t *testing.T) {
	e := newEnv(t, nil)
	g := e.grant(time.Hour, "pg:select %s.public.customers")
	ctx := ctxT(t, 60*time.Second)
	admin := e.admin()

	c1 := e.connect(g, "")
	pid1 := backendPID(t, c1)
	if _, err := c1.Exec(ctx, "begin", pgxSimple); err != nil {
		t.Fatal(err)
	}
	if err := c1.Close(ctx); err != nil {
		t.Fatal(err)
	}
	e.backendGone(admin, pid1)
	if n := len(e.idleUpstreams(g)); n != 0 {
		t.Fatalf("the pool keeps %d connections after a session left inside a transaction", n)
	}

	// Other startup parameters: the kept connection is not theirs.
	ca := e.connect(g, "&application_name=alpha")
	pidA := backendPID(t, ca)
	if err := ca.Close(ctx); err != nil {
		t.Fatal(err)
	}
	e.waitIdle(g, 1)
	cb := e.connect(g, "&application_name=beta")
	if pid := backendPID(t, cb); pid == pidA {
		t.Fatalf("a session that asked for application_name beta got the backend logged in with alpha")
	}
	ca2 := e.connect(g, "&application_name=alpha")
	if pid := backendPID(t, ca2); pid != pidA {
		t.Fatalf("a session that asked for application_name alpha got backend %d, not the kept %d", pid, pidA)
	}

	// Another grant, even of the same target and scope, never gets it.
	if err := ca2.Close(ctx); err != nil {
		t.Fatal(err)
	}
	e.waitIdle(g, 1)
	other := e.grant(time.Hour, "pg:select %s.public.customers")
	co := e.connect(other, "&application_name=alpha")
	if pid := backendPID(t, co); pid == pidA {
		t.Fatalf("another grant's session got grant %s's backend", g.ID)
	}
}

// A kept connection is closed at the grant's end, and after its time in
// the pool (on the gateway's clock); one the server closed meanwhile is
// not handed out: the next session logs in afresh.
func TestKeptUpstreamClosed(t *testing.T) {
	fake := clock.NewFake(time.Now())
	e := newEnv(t, func(o *Options) { o.Clock = fake })
	ctx := ctxT(t, 60*time.Second)
	admin := e.admin()

	// Its time in the pool.
	g := e.grant(time.Hour, "pg:select %s.public.customers")
	c1 := e.connect(g, "")
	pid1 := backendPID(t, c1)
	if err := c1.Close(ctx); err != nil {
		t.Fatal(err)
	}
	e.waitIdle(g, 1)
	fake.Advance(defaultIdleUpstreamTTL - time.Second)
	if n := len(e.idleUpstreams(g)); n != 1 {
		t.Fatalf("the pool let its connection go before its time (%d kept)", n)
	}
	fake.Advance(2 * time.Second)
	e.waitIdle(g, 0)
	e.backendGone(admin, pid1)

	// Closed by the server while kept.
	c2 := e.connect(g, "")
	pid2 := backendPID(t, c2)
	if err := c2.Close(ctx); err != nil {
		t.Fatal(err)
	}
	e.waitIdle(g, 1)
	if _, err := admin.Exec(ctx, "select pg_terminate_backend($1)", int32(pid2)); err != nil {
		t.Fatal(err)
	}
	e.backendGone(admin, pid2)
	c3 := e.connect(g, "")
	if pid := backendPID(t, c3); pid == pid2 {
		t.Fatal("a backend the server terminated was handed out")
	}
	if err := c3.Close(ctx); err != nil {
		t.Fatal(err)
	}
	pids := e.waitIdle(g, 1)

	// The grant's end.
	e.auth.End(g, "revoked")
	e.backendGone(admin, pids[0])
	if n := len(e.idleUpstreams(g)); n != 0 {
		t.Fatalf("the pool keeps %d connections after the grant's end", n)
	}
}

// A kept connection's next session runs and records statements as any
// other, over many sessions in a row, and never more connections are kept
// than the bound.
func TestUpstreamReusedManyTimes(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.MaxIdleUpstreams = 2 })
	g := e.grant(time.Hour, "pg:select %s.public.customers")
	ctx := ctxT(t, 60*time.Second)
	seen := map[uint32]int{}
	for i := range 20 {
		c := e.connect(g, "")
		var n int
		if err := c.QueryRow(ctx, "select count(*) from customers", pgxSimple).Scan(&n); err != nil {
			t.Fatalf("session %d: %v", i, err)
		}
		seen[backendPID(t, c)]++
		if err := c.Close(ctx); err != nil {
			t.Fatal(err)
		}
		e.waitIdle(g, 1)
	}
	if len(seen) != 1 {
		t.Errorf("20 sessions one after another used %d backends, want 1: %v", len(seen), seen)
	}
	// Three at once, ended together: two are kept, the third closed.
	var cs []*pgx.Conn
	for range 3 {
		cs = append(cs, e.connect(g, ""))
	}
	for _, c := range cs {
		if err := c.Close(ctx); err != nil {
			t.Fatal(err)
		}
	}
	e.waitIdle(g, 2)
	var counted int
	for _, c := range e.requests(g) {
		if c.Action == "pg:select" {
			counted++
		}
	}
	if counted < 40 {
		t.Errorf("%d statements recorded for 20 sessions of two each", counted)
	}
}

// A session whose sockets were parked and shed while it idled keeps its
// upstream too: the reset's answer wakes the parked upstream loop, and
// the next session gets the reset connection; closing the grant's pool
// leaves no descriptor behind.
func TestParkedSessionsUpstreamKept(t *testing.T) {
	e := newParkEnv(t)
	g := e.grant(time.Hour, "pg:select %s.public.customers")
	adm := e.admin()
	base := openFDs(t)
	pc, ctx := e.rawSession(g, nil)
	var pid1 uint32
	rr, err := pc.Exec(ctx, "select pg_backend_pid()").ReadAll()
	if err != nil || len(rr) != 1 || len(rr[0].Rows) != 1 {
		t.Fatalf("pg_backend_pid: %v %v", rr, err)
	}
	if _, err := fmt.Sscan(string(rr[0].Rows[0][0]), &pid1); err != nil {
		t.Fatal(err)
	}
	e.waitParked(2)
	e.shed(2)
	if err := pc.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if got := e.waitIdle(g, 1); got[0] != pid1 {
		t.Fatalf("the pool keeps backend %d, want %d", got[0], pid1)
	}
	c2 := e.connect(g, "")
	if pid := backendPID(t, c2); pid != pid1 {
		t.Fatalf("the next session got backend %d, want the parked session's %d", pid, pid1)
	}
	if err := c2.Close(ctx); err != nil {
		t.Fatal(err)
	}
	e.waitIdle(g, 1)
	e.auth.End(g, "revoked")
	e.backendGone(adm, pid1)
	e.waitSessionsEnded(g)
	waitFDs(t, base)
}

// Kept connections count against max_sessions_per_grant with the grant's
// sessions: a grant never holds more backends than it allows, whether a
// session ends (its connection is kept only if there is room) or a login
// needs a backend of other startup parameters (a kept one makes way).
func TestKeptUpstreamsWithinTheGrantsBound(t *testing.T) {
	e := capEnv(t, 2)
	g := e.grant(time.Hour, "pg:select %s.public.customers")
	adm := e.admin()
	ctx := ctxT(t, 60*time.Second)
	waitBackends := func(want int) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for backends(t, adm, g) != want {
			if time.Now().After(deadline) {
				t.Fatalf("the grant's role has %d backends, want %d", backends(t, adm, g), want)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	s1 := e.connect(g, "&application_name=alpha")
	s2 := e.connect(g, "&application_name=alpha")
	backendPID(t, s1)
	backendPID(t, s2)
	if err := s1.Close(ctx); err != nil {
		t.Fatal(err)
	}
	e.waitIdle(g, 1)
	waitBackends(2)
	// Another application name: the kept alpha connection makes way.
	s3 := e.connect(g, "&application_name=beta")
	backendPID(t, s3)
	if n := len(e.idleUpstreams(g)); n != 0 {
		t.Errorf("the pool keeps %d connections beside 2 sessions of a grant allowed 2", n)
	}
	waitBackends(2)
	// Both end: one is kept, then the other too (no session is left).
	for _, c := range []*pgx.Conn{s2, s3} {
		if err := c.Close(ctx); err != nil {
			t.Fatal(err)
		}
	}
	e.waitIdle(g, 2)
	waitBackends(2)
}

// A reset that completed leaves no timer behind: each would hold its ended
// session for the reset's timeout.
func TestResetTimersStopped(t *testing.T) {
	fake := clock.NewFake(time.Now())
	e := newEnv(t, func(o *Options) { o.Clock = fake })
	g := e.grant(time.Hour, "pg:select %s.public.customers")
	ctx := ctxT(t, 60*time.Second)
	for range 6 {
		c := e.connect(g, "")
		backendPID(t, c)
		if err := c.Close(ctx); err != nil {
			t.Fatal(err)
		}
		e.waitIdle(g, 1)
		e.waitSessionsEnded(g)
	}
	// The grant's expiry timer and the kept connection's.
	if n := fake.Pending(); n > 2 {
		t.Errorf("%d timers pending after 6 sessions ended, want at most 2", n)
	}
}

// DISCARD ALL leaves dblink's connections open (and a LOADed library
// loaded): a session that may have made such state (leavesState) does not
// leave its upstream to the grant's next session, whatever protocol it
// used; one that only made state DISCARD ALL resets does.
func TestUpstreamNotKeptAfterStateDiscardMisses(t *testing.T) {
	e := newEnv(t, nil)
	g := e.grant(time.Hour, "pg:select %s.public.customers")
	ctx := ctxT(t, 60*time.Second)
	admin := e.admin()
	if _, err := admin.Exec(ctx, "create extension dblink"); err != nil {
		t.Logf("no dblink on this server (%v): its calls fail, and are still seen", err)
	} else {
		// What the rule is for: a named connection outlives DISCARD ALL.
		var conns []string
		if _, err := admin.Exec(ctx, "select dblink_connect('airlock_c', $1)", e.dbDSN); err != nil {
			t.Fatal(err)
		}
		if _, err := admin.Exec(ctx, "discard all"); err != nil {
			t.Fatal(err)
		}
		if err := admin.QueryRow(ctx, "select dblink_get_connections()").Scan(&conns); err != nil || len(conns) != 1 {
			t.Fatalf("dblink connections after DISCARD ALL: %v, %v; want airlock_c", conns, err)
		}
	}
	// A function of the database's may keep state of its own (a wrapper
	// of dblink, PL/Perl's %_SHARED): the statements that name one are
	// seen.
	if _, err := admin.Exec(ctx, "create function public.airlock_state() returns int language sql as 'select 1'"); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, sql string
		simple    bool
	}{
		{"a function of the database's", "select airlock_state()", false},
		{"dblink", "select dblink_get_connections()", true},
		{"dblink, extended protocol", "select public.dblink_get_connections()", false},
		{"LOAD", "load 'auto_explain'", true},
		{"DO", "do $$ begin perform 1; end $$", true},
		{"a temporary function", "create function pg_temp.airlock_f() returns int language sql as 'select 1'", true},
		{"query_to_xml", "select query_to_xml('select 1', false, false, '')", false},
	}
	// One after the other, not as subtests: backendGone fails e.t.
	for _, tc := range cases {
		func() {
			c := e.connect(g, "")
			pid := backendPID(t, c)
			var err error
			if tc.simple {
				_, err = c.Exec(ctx, tc.sql, pgxSimple)
			} else {
				_, err = c.Exec(ctx, tc.sql)
			}
			if err != nil {
				// LOAD is refused to a role that is not a superuser
				// outside $libdir/plugins, and dblink's calls fail
				// without it; the session ran them all the same.
				t.Logf("%s: %v", tc.sql, err)
			}
			if err := c.Close(ctx); err != nil {
				t.Fatal(err)
			}
			e.backendGone(admin, pid)
			if n := len(e.idleUpstreams(g)); n != 0 {
				t.Fatalf("%s: the pool keeps %d connections after a session ran %q", tc.name, n, tc.sql)
			}
		}()
	}
	// The rule closes only those: a session that made state DISCARD ALL
	// resets still leaves its backend.
	c := e.connect(g, "")
	pid := backendPID(t, c)
	for _, q := range []string{"create temp table airlock_t (x int default 1)", "select pg_advisory_lock(7), setseed(0.1)"} {
		if _, err := c.Exec(ctx, q, pgxSimple); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	if err := c.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if got := e.waitIdle(g, 1); got[0] != pid {
		t.Fatalf("the pool keeps %v, want %d", got, pid)
	}
}

// leavesState reads the statements that may leave state DISCARD ALL does
// not reset, and not those whose state it resets.
func TestLeavesState(t *testing.T) {
	for sql, want := range map[string]bool{
		"select 1":                                              false,
		"create temp table t (x int default 1)":                 false,
		"create temp table if not exists t (x int)":             false,
		"create or replace temp view v as select 1":             false,
		"create temp sequence s":                                false,
		"create schema s":                                       false,
		"create domain d as int":                                false,
		"create type t as (a int)":                              true,
		"select pg_advisory_lock(1); listen x":                  false,
		"select setseed(0.5), nextval('s'), lower(name) from t": false,
		"select pg_catalog.pg_get_keywords()":                   false,
		"insert into public.t (a, b) values (1, lower('x')) on conflict (a) do nothing": false,
		"copy t (a) from stdin; copy (select 1) to stdout":                              false,
		"select * from customers where name = 'dbl' || 'ink'":                           false,
		"select dblink_connect('h')":                                                    true,
		`select "DBLINK_exec"('x')`:                                                     true,
		"select 1 /* dblink */":                                                         true,
		"LOAD 'plugins/x'":                                                              true,
		"select 1; load 'x'":                                                            true,
		"/* c */ DO $$ begin end $$":                                                    true,
		"call p()":                                                                      true,
		"create function pg_temp.f() returns int language sql as 'select 1'":            true,
		"create or replace temporary function f() returns int":                          true,
		"create operator pg_temp.### (function = f, leftarg = int, rightarg = int)":     true,
		"create cast (text as pg_temp.t) with function f(text)":                         true,
		"select query_to_xml('select 1', false, false, '')":                             true,
		`select U&"\0064blink_connect"('x')`:                                            true,
		"select ts_stat('select v from t')":                                             true,
		"select orders_summary(1)":                                                      true,
		"select public.lower('x')":                                                      true,
		`select "Lower"('x')`:                                                           true,
		"insert into t (a) values (my_state(1))":                                        true,
		"create temp table t (x int default my_state())":                                true,
		"select 1 into t from f(1)":                                                     true,
	} {
		if got := leavesState(sql); got != want {
			t.Errorf("leavesState(%q) = %v, want %v", sql, got, want)
		}
	}
}
