package pggw

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/gateway"
	"github.com/airlock-dev/airlock/internal/netpark"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
)

// newParkEnv is an env whose sessions park after 5ms idle, with a plain
// upstream connection (a TLS one is not parked).
func newParkEnv(t *testing.T, tweaks ...func(*Options)) *env {
	return newEnv(t, func(o *Options) {
		o.Targets[0].Upstream = withSSLMode(t, o.Targets[0].Upstream, "disable")
		o.ParkIdleAfter = 5 * time.Millisecond
		for _, f := range tweaks {
			f(o)
		}
	})
}

// withSSLMode returns dsn with its sslmode set to mode.
func withSSLMode(t testing.TB, dsn, mode string) string {
	t.Helper()
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("sslmode", mode)
	u.RawQuery = q.Encode()
	return u.String()
}

// parkedSockets counts the sockets of g's connections parked now.
func (g *Gateway) parkedSockets() int {
	g.mu.Lock()
	conns := make([]*conn, 0, len(g.conns))
	for c := range g.conns {
		conns = append(conns, c)
	}
	g.mu.Unlock()
	n := 0
	for _, c := range conns {
		socks := []net.Conn{c.raw}
		if up := c.upc.Load(); up != nil {
			socks = append(socks, *up)
		}
		for _, s := range socks {
			if pc, ok := s.(*netpark.Conn); ok && pc.Parked() {
				n++
			}
		}
	}
	return n
}

// waitParked waits until n sockets of the gateway are parked.
func (e *env) waitParked(n int) {
	e.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for e.gw.parkedSockets() != n {
		if time.Now().After(deadline) {
			e.t.Fatalf("%d sockets parked, want %d", e.gw.parkedSockets(), n)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// rawSession opens a session with pgconn and takes over its socket, so
// that the test reads what the gateway sends while the client is idle.
func (e *env) rawSession(g *gateway.Grant, notes chan<- string) (*pgconn.PgConn, context.Context) {
	e.t.Helper()
	ctx := ctxT(e.t, 20*time.Second)
	cfg, err := pgconn.ParseConfig(e.url(g, ""))
	if err != nil {
		e.t.Fatal(err)
	}
	if notes != nil {
		cfg.OnNotification = func(_ *pgconn.PgConn, n *pgconn.Notification) { notes <- n.Payload }
	}
	pc, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { pc.Close(context.Background()) })
	if _, err := pc.Exec(ctx, "select 1").ReadAll(); err != nil {
		e.t.Fatal(err)
	}
	return pc, ctx
}

// parkedSession opens one session with a select grant in a newParkEnv and
// waits for both its sockets to park.
func parkedSession(t *testing.T) (*env, *gateway.Grant, *pgconn.PgConn, context.Context) {
	e := newParkEnv(t)
	g := e.grant(time.Hour, "pg:select %s.public.customers")
	pc, ctx := e.rawSession(g, nil)
	e.waitParked(2)
	return e, g, pc, ctx
}

// waitSessionsEnded waits for every recorded session of g to end.
func (e *env) waitSessionsEnded(g *gateway.Grant) {
	e.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for _, s := range e.auth.Sessions() {
		for s.Grant.ID == g.ID && !s.Ended() {
			if time.Now().After(deadline) {
				e.t.Fatal("session not ended")
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
}

// An idle session parks both sockets, holds no goroutine, and wakes for
// the client's next statement and for what the upstream sends unasked.
func TestParkedSessionWakes(t *testing.T) {
	e := newParkEnv(t)
	g := e.grant(time.Hour, "pg:select %s.public.customers")
	notes := make(chan string, 1)
	pc, ctx := e.rawSession(g, notes)
	e.waitParked(2)
	for i := range 3 {
		rr, err := pc.Exec(ctx, "select count(*) from customers").ReadAll()
		if err != nil || len(rr) != 1 || len(rr[0].Rows) != 1 {
			t.Fatalf("statement %d after parking: %v %v", i, rr, err)
		}
		e.waitParked(2)
	}
	// The upstream speaks while the session is parked: a notification
	// wakes the upstream loop, which relays it to the client.
	notifyIdle(t, pc, ctx, notes, e.admin(), func() { e.waitParked(2) })
	e.waitParked(2)
}

// notifyIdle has the upstream speak while the session idles: the client
// listens, idle() waits for the session to idle (parked, shed), adm
// notifies, and the client must get the notification.
func notifyIdle(t *testing.T, pc *pgconn.PgConn, ctx context.Context, notes <-chan string, adm *pgx.Conn, idle func()) {
	t.Helper()
	if _, err := pc.Exec(ctx, "listen airlock_idle").ReadAll(); err != nil {
		t.Fatal(err)
	}
	idle()
	if _, err := adm.Exec(ctx, "notify airlock_idle, 'hello'"); err != nil {
		t.Fatal(err)
	}
	if err := pc.WaitForNotification(ctx); err != nil {
		t.Fatal(err)
	}
	if got := <-notes; got != "hello" {
		t.Fatalf("notification %q", got)
	}
}

// A grant that ends cuts a parked session at once: the client, idle, reads
// the FATAL; the upstream backend goes; the session's recording ends.
// Without the wake-up on close, the parked loops would never run again and
// the session would never end.
func TestParkedSessionCutWhenGrantEnds(t *testing.T) {
	e, g, pc, _ := parkedSession(t)
	hc, err := pc.Hijack()
	if err != nil {
		t.Fatal(err)
	}
	defer hc.Conn.Close()
	e.auth.End(g, "revoked")
	_ = hc.Conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	msg, err := hc.Frontend.Receive()
	if err != nil {
		t.Fatalf("the idle client read %v, want the FATAL", err)
	}
	er, ok := msg.(*pgproto3.ErrorResponse)
	if !ok || er.Severity != "FATAL" || er.Code != "57P01" || !strings.Contains(er.Message, "revoked") {
		t.Fatalf("the idle client read %#v, want FATAL 57P01 (revoked)", msg)
	}
	if _, err := hc.Frontend.Receive(); err == nil {
		t.Fatal("the connection stayed open after the FATAL")
	}
	e.waitSessionsEnded(g)
	deadline := time.Now().Add(5 * time.Second)
	for e.backendsOf(g.ID) != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the upstream backend survived the grant")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if n := e.gw.parkedSockets(); n != 0 {
		t.Fatalf("%d sockets still parked", n)
	}
}

// Either side hanging up while parked ends the session.
func TestParkedSessionHangUps(t *testing.T) {
	t.Run("client", func(t *testing.T) {
		e, g, pc, _ := parkedSession(t)
		hc, err := pc.Hijack()
		if err != nil {
			t.Fatal(err)
		}
		hc.Conn.Close()
		e.waitSessionsEnded(g)
	})
	t.Run("upstream", func(t *testing.T) {
		e, g, pc, ctx := parkedSession(t)
		if _, err := e.admin().Exec(ctx, "select pg_terminate_backend(pid) from pg_stat_activity where usename = $1", "airlock_"+g.ID); err != nil {
			t.Fatal(err)
		}
		e.waitSessionsEnded(g)
		// The client hears of it: PostgreSQL's FATAL, relayed, or the close.
		if _, err := pc.Exec(ctx, "select 1").ReadAll(); err == nil {
			t.Fatal("a statement ran on a session whose upstream is gone")
		}
	})
}

// A panic in a loop resumed after parking is contained to its connection.
func TestParkedSessionPanicContained(t *testing.T) {
	e, g, pc, ctx := parkedSession(t)
	e.setHook(func(stage string, arg []byte) {
		if stage == "query" && strings.Contains(string(arg), "boom") {
			panic("boom")
		}
	})
	_, err := pc.Exec(ctx, "select 'boom'").ReadAll()
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != codeInternalError {
		t.Fatalf("err = %v, want the internal error", err)
	}
	e.waitSessionsEnded(g)
	// Ended with the internal error recorded before the end: no wait
	// for it once the session has ended.
	if e.gw.panics.Load() != 1 || e.panickedSessions(g) != 1 {
		t.Fatalf("panics %d, sessions with the internal error %d", e.gw.panics.Load(), e.panickedSessions(g))
	}
	for _, s := range e.auth.Sessions() {
		if n := s.Late(); n != 0 {
			t.Errorf("session %s: %d records after its end", s.ID, n)
		}
	}
	// The gateway still serves.
	c := e.connect(g, "")
	if _, err := c.Exec(ctx, "select 1"); err != nil {
		t.Fatal(err)
	}
}

// Closing the gateway ends parked sessions, shed or not, and returns.
func TestParkedSessionsGatewayClose(t *testing.T) {
	for _, shed := range []bool{false, true} {
		t.Run(fmt.Sprintf("shed=%v", shed), func(t *testing.T) {
			e := newParkEnv(t)
			g := e.grant(time.Hour, "pg:select %s.public.customers")
			for range 3 {
				e.rawSession(g, nil)
			}
			e.waitParked(6)
			if shed {
				e.shed(6) // shed_test.go
			}
			done := make(chan struct{})
			go func() { e.gw.Close(); close(done) }()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				t.Fatal("Close did not return with parked sessions")
			}
			e.waitSessionsEnded(g)
		})
	}
}

// TestServeContextEndsItsSessions: when the context given to Serve ends,
// the sessions that Serve accepted end with an administrator-shutdown
// FATAL, parked or not (one hook per Serve call, not per connection), and
// sessions accepted by another Serve call go on.
func TestServeContextEndsItsSessions(t *testing.T) {
	e := newParkEnv(t)
	g := e.grant(time.Hour, "pg:select %s.public.customers")
	dsn, cancel, served := e.serveAgain(g)
	cctx := ctxT(t, 20*time.Second)
	var ended []*pgconn.PgConn
	for range 2 {
		pc, err := pgconn.Connect(cctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { pc.Close(context.Background()) })
		ended = append(ended, pc)
	}
	stays := e.connect(g, "")
	e.waitParked(6) // the three sessions idle, both sockets each
	cancel()
	select {
	case err := <-served:
		if err != nil {
			t.Fatalf("Serve: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return after its context ended")
	}
	for i, pc := range ended {
		err := pc.Exec(cctx, "select 1").Close()
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != codeAdminShutdown {
			t.Errorf("session %d after its Serve's context ended: %v, want FATAL %s", i, err, codeAdminShutdown)
		}
	}
	var one int
	if err := stays.QueryRow(cctx, "select 1").Scan(&one); err != nil || one != 1 {
		t.Fatalf("a session of the other Serve call: %v (%d)", err, one)
	}
}

// TestParkedOpenSyncGroup: what a session knows of its open sync group
// outlives a parking (the batch state its client loop gives back does
// not hold it): a Query after extended messages ended by Flush, sent once
// both loops parked, still ends the session instead of waiting for an
// answer the server, skipping to Sync after the Bind's error, never sends.
func TestParkedOpenSyncGroup(t *testing.T) {
	e := newParkEnv(t)
	g := e.grant(time.Hour, "pg:select %s.public.customers")
	pc := e.connect(g, "").PgConn()
	fe := pc.Frontend()
	fe.Send(&pgproto3.Bind{PreparedStatement: "nosuch"})
	fe.Send(&pgproto3.Flush{})
	if err := fe.Flush(); err != nil {
		t.Fatal(err)
	}
	for {
		m, err := fe.Receive()
		if err != nil {
			t.Fatal(err)
		}
		if er, ok := m.(*pgproto3.ErrorResponse); ok {
			if er.Code != "26000" {
				t.Fatalf("Bind of an unknown statement: %s %s", er.Code, er.Message)
			}
			break
		}
	}
	e.waitParked(2)
	fe.Send(&pgproto3.Query{String: "SELECT 1"})
	if err := fe.Flush(); err != nil {
		t.Fatal(err)
	}
	// Without the flag the Query waits for an answer that never comes.
	_ = pc.Conn().SetReadDeadline(time.Now().Add(10 * time.Second))
	var got []string
	for range 10 {
		m, err := fe.Receive()
		if err != nil {
			break
		}
		if er, ok := m.(*pgproto3.ErrorResponse); ok {
			got = append(got, er.Severity+" "+er.Code)
		}
	}
	if len(got) == 0 || got[len(got)-1] != "FATAL 08P01" {
		t.Fatalf("errors after the Query: %q, want FATAL 08P01 last", got)
	}
}
