package pggw

import (
	"encoding/binary"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/clock"
	"github.com/airlock-dev/airlock/internal/gateway"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// activeBackend waits until the grant's role has a backend running query,
// and returns its pid.
func (e *env) activeBackend(adm *pgx.Conn, role, query string) uint32 {
	e.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var pid int32
		err := adm.QueryRow(ctxT(e.t, 10*time.Second), "select pid from pg_stat_activity where usename = $1 and state = 'active' and query = $2",
			role, query).Scan(&pid)
		if err == nil {
			return uint32(pid)
		}
		if err != pgx.ErrNoRows {
			e.t.Fatal(err)
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("no backend of %s runs %q", role, query)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// sendBare logs in to a session of g and sends sql as a simple Query on
// the bare socket, returned for the test to hang up: a driver such as pgx
// sends a CancelRequest of its own when its connection breaks; an agent
// need not.
func (e *env) sendBare(g *gateway.Grant, sql string) *pgconn.HijackedConn {
	e.t.Helper()
	hc := e.hijacked(g)
	msg := binary.BigEndian.AppendUint32([]byte{'Q'}, uint32(4+len(sql)+1))
	if _, err := hc.Conn.Write(append(append(msg, sql...), 0)); err != nil {
		e.t.Fatal(err)
	}
	return hc
}

// A session that ends while its statement runs (its client hangs up, or
// sends Terminate behind the statement) leaves no backend running it: the
// gateway cancels the statement, the backend exits. Else the agent held,
// session after session, more backends than max_sessions_per_grant (each
// hang-up gave its slot back while its backend ran on), and its
// statements ran past their sessions' end.
func TestSessionEndCancelsItsRunningStatement(t *testing.T) {
	e := capEnv(t, 1)
	g := e.grant(time.Hour, "pg:select %s.public.customers")
	adm := e.admin()
	const sleep = "select pg_sleep(300)"
	for _, how := range []string{"hang-up", "terminate"} {
		hc := e.sendBare(g, sleep)
		pid := e.activeBackend(adm, "airlock_"+g.ID, sleep)
		if how == "terminate" {
			// Terminate behind the running statement.
			if _, err := hc.Conn.Write([]byte{'X', 0, 0, 0, 4}); err != nil {
				t.Fatal(err)
			}
		}
		hc.Conn.Close()
		e.backendGone(adm, pid)
		e.waitSessionsEnded(g)
	}
	// The bound holds: one backend for the one session allowed.
	c := e.connect(g, "")
	backendPID(t, c)
	if n := backends(t, adm, g); n != 1 {
		t.Errorf("a grant allowed 1 session has %d backends", n)
	}
}

// A statement that catches the cancel the gateway sends at its session's
// end (a DO block's loop with EXCEPTION WHEN query_canceled) stops all
// the same: the gateway's logins set client_connection_check_interval, so
// the backend notices its closed connection while the statement runs and
// exits. Else it ran on until the grant's end, outside the session's slot
// under max_sessions_per_grant, which was given back.
func TestSessionEndStopsAStatementThatCatchesTheCancel(t *testing.T) {
	e := capEnv(t, 1)
	g := e.grant(time.Hour, "pg:select %s.public.customers")
	adm := e.admin()
	var version int
	if err := adm.QueryRow(ctxT(t, 10*time.Second), "select current_setting('server_version_num')::int").Scan(&version); err != nil {
		t.Fatal(err)
	}
	if version < checkIntervalSince {
		t.Skipf("server_version_num %d: no client_connection_check_interval before PostgreSQL 14", version)
	}
	// About a minute of sleeps, each cancel caught; the grant's end
	// stops it at the test's end should the gateway not.
	const loop = "DO $$BEGIN FOR i IN 1..600 LOOP BEGIN PERFORM pg_sleep(0.1); " +
		"EXCEPTION WHEN query_canceled THEN NULL; END; END LOOP; END$$"
	hc := e.sendBare(g, loop)
	pid := e.activeBackend(adm, "airlock_"+g.ID, loop)
	hc.Conn.Close()
	e.backendGone(adm, pid)
	e.waitSessionsEnded(g)
}

// orphan has a session of g run a statement that catches its cancel, with
// client_connection_check_interval off, and hang up; it returns once the
// session has ended and the termination of its backend (whose pid it
// returns) is scheduled.
func (e *env) orphan(g *gateway.Grant, adm *pgx.Conn) uint32 {
	e.t.Helper()
	reaping := make(chan struct{}, 1)
	e.setHook(func(stage string, _ []byte) {
		if stage == "reap" {
			reaping <- struct{}{}
		}
	})
	const loop = "SET client_connection_check_interval = 0; DO $$BEGIN FOR i IN 1..600 LOOP BEGIN PERFORM pg_sleep(0.1); " +
		"EXCEPTION WHEN query_canceled THEN NULL; END; END LOOP; END$$"
	hc := e.sendBare(g, loop)
	pid := e.activeBackend(adm, "airlock_"+g.ID, loop)
	hc.Conn.Close()
	select {
	case <-reaping:
	case <-time.After(10 * time.Second):
		e.t.Fatal("no termination was scheduled for the closed session's backend")
	}
	e.waitSessionsEnded(g)
	return pid
}

// A session that turns client_connection_check_interval off and then
// runs a statement that catches the cancel still leaves no backend behind
// it for long: orphanGrace after the cancel (on the gateway's clock), the
// target's admin terminates the backend. Else it ran until its statement
// or the grant ended, outside the session's slot.
func TestOrphanedBackendTerminated(t *testing.T) {
	fake := clock.NewFake(time.Now())
	e := newEnv(t, func(o *Options) {
		o.Clock = fake
		o.Targets[0].MaxSessionsPerGrant = 1
	})
	g := e.grant(time.Hour, "pg:select %s.public.customers")
	adm := e.admin()
	pid := e.orphan(g, adm)
	var n int
	if err := adm.QueryRow(ctxT(t, 10*time.Second), "select count(*) from pg_stat_activity where pid = $1", int32(pid)).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Fatal("the backend ended before orphanGrace: the test shows nothing of the termination")
	}
	fake.Advance(orphanGrace)
	e.backendGone(adm, pid)
}

// The orphan's pid, orphanGrace after its session ended, may be another
// backend's: the orphan exited (its cancel, the check interval) and the
// server gave the pid to a backend it started since, of the same role
// when the grant's next session logged in. That backend is spared: only
// one that started before the session ended is terminated. The server is
// made to reuse the pid by forging it: the termination is asked for the
// next session's backend.
func TestOrphanReapSparesAReusedPID(t *testing.T) {
	fake := clock.NewFake(time.Now())
	e := newEnv(t, func(o *Options) { o.Clock = fake })
	g := e.grant(time.Hour, "pg:select %s.public.customers")
	e.orphan(g, e.admin())
	next := e.connect(g, "")
	pid := backendPID(t, next)
	e.roles.mu.Lock()
	e.roles.forgePID = pid
	e.roles.mu.Unlock()
	fake.Advance(orphanGrace)
	deadline := time.Now().Add(10 * time.Second)
	for {
		e.roles.mu.Lock()
		done := e.roles.terminated
		e.roles.mu.Unlock()
		if len(done) == 1 {
			if done[0] {
				t.Fatalf("backend %d, started after the orphan's session ended, was terminated", pid)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no termination was tried")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := next.Exec(ctxT(t, 10*time.Second), "select 1"); err != nil {
		t.Fatalf("the next session's backend: %v", err)
	}
}

// A CancelRequest that names a session which ends before it is forwarded
// reaches no backend: not the one that session used, kept and now
// running the grant's next session's statement.
func TestCancelOfEndedSessionSparesTheNextSession(t *testing.T) {
	e := newEnv(t, nil)
	g := e.grant(time.Hour, "pg:select %s.public.customers")
	ctx := ctxT(t, 60*time.Second)
	adm := e.admin()
	a, err := pgconn.Connect(ctx, e.url(g, ""))
	if err != nil {
		t.Fatal(err)
	}
	rr, err := a.Exec(ctx, "select pg_backend_pid()").ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	pidA := string(rr[0].Rows[0][0])

	// The cancel is recorded, then waits until the next session runs.
	held, resume := make(chan struct{}), make(chan struct{})
	var once sync.Once
	e.setHook(func(stage string, _ []byte) {
		if stage == "cancel" {
			once.Do(func() { close(held) })
			<-resume
		}
	})
	cancelled := make(chan error, 1)
	go func() { cancelled <- a.CancelRequest(ctx) }()
	<-held
	if err := a.Close(ctx); err != nil {
		t.Fatal(err)
	}
	e.waitIdle(g, 1)
	b := e.connect(g, "")
	if pid := backendPID(t, b); fmt.Sprint(pid) != pidA {
		t.Fatalf("the next session got backend %d, not the kept %s", pid, pidA)
	}
	const sleep = "select pg_sleep(3)"
	errc := make(chan error, 1)
	go func() {
		_, err := b.Exec(ctx, sleep, pgxSimple)
		errc <- err
	}()
	e.activeBackend(adm, "airlock_"+g.ID, sleep)
	close(resume)
	if err := <-cancelled; err != nil {
		t.Fatalf("CancelRequest: %v", err)
	}
	if err := <-errc; err != nil {
		t.Fatalf("the next session's statement: %v (cancelled by the ended session's key)", err)
	}
}

// A grant's expiry (on the gateway's clock, the control plane's end of it
// late) ends its sessions and closes its kept connections, as its revoke
// does (TestKeptUpstreamClosed); so does the gateway's shutdown, which
// leaves the grant live.
func TestKeptUpstreamsClosedAtExpiryAndShutdown(t *testing.T) {
	fake := clock.NewFake(time.Now())
	e := newEnv(t, func(o *Options) {
		o.Clock = fake
		// Their time in the pool does not end before the grant does.
		o.IdleUpstreamTTL = 3 * time.Hour
	})
	adm := e.admin()
	ctx := ctxT(t, 60*time.Second)
	g := e.grant(time.Hour, "pg:select %s.public.customers")
	kept := e.connect(g, "")
	pidKept := backendPID(t, kept)
	if err := kept.Close(ctx); err != nil {
		t.Fatal(err)
	}
	e.waitIdle(g, 1)
	open := e.connect(g, "&application_name=other")
	pidOpen := backendPID(t, open)
	fake.Advance(g.ExpiresAt.Sub(fake.Now()) + time.Second)
	e.backendGone(adm, pidKept)
	e.backendGone(adm, pidOpen)
	if _, err := open.Exec(ctx, "select 1", pgxSimple); pgCode(err) != codeAdminShutdown {
		t.Errorf("a statement after the grant's expiry: %v, want FATAL %s", err, codeAdminShutdown)
	}

	live := e.grant(2*time.Hour, "pg:select %s.public.customers")
	c := e.connect(live, "")
	pid := backendPID(t, c)
	if err := c.Close(ctx); err != nil {
		t.Fatal(err)
	}
	e.waitIdle(live, 1)
	e.gw.Close()
	e.backendGone(adm, pid)
}

// A grant that expires (on the gateway's clock) while the termination of
// an orphaned backend is pending ends that wait: the expiry's role drop
// ends every backend of the grant's role, and the wait held a goroutine
// and a timer, then a needless admin round-trip, until orphanGrace later.
// The grant's end by the control plane did so already; its expiry,
// which never closes the grant's Done, did not.
func TestOrphanReapEndsWithTheGrantsExpiry(t *testing.T) {
	fake := clock.NewFake(time.Now())
	e := newEnv(t, func(o *Options) { o.Clock = fake })
	g := e.grant(time.Hour, "pg:select %s.public.customers")
	adm := e.admin()
	// The termination falls due after the expiry: its wait ends for
	// the expiry or not at all.
	fake.Set(g.ExpiresAt.Add(-orphanGrace / 2))
	pid := e.orphan(g, adm)
	if n := reapers(); n != 1 {
		t.Fatalf("%d termination waits, want the orphan's 1", n)
	}
	fake.Set(g.ExpiresAt)
	e.backendGone(adm, pid)
	deadline := time.Now().Add(10 * time.Second)
	for reapers() != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the orphan's termination still waits after its grant expired and its role was dropped")
		}
		time.Sleep(10 * time.Millisecond)
	}
	e.roles.mu.Lock()
	defer e.roles.mu.Unlock()
	if len(e.roles.terminated) != 0 {
		t.Errorf("terminations tried after the grant expired: %v", e.roles.terminated)
	}
}

// reapers counts the goroutines waiting to terminate an orphaned backend
// (reapOrphan's).
func reapers() int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			return strings.Count(string(buf[:n]), "pggw.(*Gateway).reapOrphan.func")
		}
		buf = make([]byte, 2*len(buf))
	}
}
