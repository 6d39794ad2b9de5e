package pggw

import (
	"context"
	"errors"
	"net"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/clock"
	"github.com/airlock-dev/airlock/internal/gateway"
	"github.com/airlock-dev/airlock/internal/netpark"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
)

// sockets returns the parkable sockets of g's connections.
func (g *Gateway) sockets() []*netpark.Conn {
	g.mu.Lock()
	defer g.mu.Unlock()
	var socks []*netpark.Conn
	for c := range g.conns {
		if pc, ok := c.raw.(*netpark.Conn); ok {
			socks = append(socks, pc)
		}
		if up := c.upc.Load(); up != nil {
			if pc, ok := (*up).(*netpark.Conn); ok {
				socks = append(socks, pc)
			}
		}
	}
	return socks
}

// shed sheds every parked socket of the gateway now, as the poller's
// sweep does after shedParkedAfter, and fails unless n sockets are shed
// then.
func (e *env) shed(n int) {
	e.t.Helper()
	got := 0
	for _, pc := range e.gw.sockets() {
		pc.Shed()
		if pc.Bare() {
			got++
		}
	}
	if got != n {
		e.t.Fatalf("%d sockets shed, want %d", got, n)
	}
}

// waitNoConns waits until the gateway holds no connection: a closed
// session's goroutines remove it as they end.
func (e *env) waitNoConns() {
	e.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		e.gw.mu.Lock()
		n := len(e.gw.conns)
		e.gw.mu.Unlock()
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("%d connections still in the gateway", n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// bare counts the gateway's shed sockets.
func (e *env) bare() int {
	n := 0
	for _, pc := range e.gw.sockets() {
		if pc.Bare() {
			n++
		}
	}
	return n
}

// openFDs counts the process's open descriptors.
func openFDs(t *testing.T) int {
	t.Helper()
	if runtime.GOOS != "linux" {
		t.Skip("shedding is Linux only")
	}
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents) - 1
}

// shedSession opens one session, waits for both its sockets to park and
// sheds them. base is the process's descriptors before the session; adm
// an admin connection opened before (e.admin opens one more each call).
func shedSession(t *testing.T, ttl time.Duration, tweaks ...func(*Options)) (e *env, g *gateway.Grant, adm *pgx.Conn, pc *pgconn.PgConn, ctx context.Context, base int) {
	e = newParkEnv(t, tweaks...)
	g = e.grant(ttl, "pg:select %s.public.customers")
	adm = e.admin()
	base = openFDs(t)
	pc, ctx = e.rawSession(g, nil)
	e.waitParked(2)
	before := openFDs(t)
	e.shed(2)
	if n := openFDs(t); n != before {
		t.Fatalf("%d descriptors open after shedding, %d before", n, before)
	}
	return e, g, adm, pc, ctx, base
}

// backends counts the upstream backends of g's role.
func backends(t *testing.T, adm *pgx.Conn, g *gateway.Grant) int {
	t.Helper()
	var n int
	if err := adm.QueryRow(ctxT(t, 10*time.Second), "select count(*) from pg_stat_activity where usename = $1", "airlock_"+g.ID).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// waitFDs waits until the process has n descriptors open: the session's
// goroutines close theirs as it ends.
func waitFDs(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for openFDs(t) != n {
		if time.Now().After(deadline) {
			t.Fatalf("%d descriptors open, want %d", openFDs(t), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A shed session wakes for the client's statements and for what the
// upstream sends unasked, its sockets rebuilt, and is shed again; no
// descriptor is gained or lost on the way.
func TestShedSessionWakes(t *testing.T) {
	// The first session's upstream is closed with it, not kept for the
	// second (reuse.go), so that the descriptors count as before.
	e, g, adm, pc, ctx, base := shedSession(t, time.Hour, func(o *Options) { o.IdleUpstreamTTL = -1 })
	notes := make(chan string, 1)
	pc.Close(ctx)
	// The first session's connection leaves the gateway before the second
	// comes: until then its shed sockets would count as the second's (bare)
	// and its descriptors as open during it.
	e.waitNoConns()
	pc, ctx = e.rawSession(g, notes)
	e.waitParked(2)
	during := openFDs(t)
	e.shed(2)
	for i := range 3 {
		rr, err := pc.Exec(ctx, "select count(*) from customers").ReadAll()
		if err != nil || len(rr) != 1 || len(rr[0].Rows) != 1 {
			t.Fatalf("statement %d after shedding: %v %v", i, rr, err)
		}
		if n := e.bare(); n != 0 {
			t.Fatalf("%d sockets still bare after a statement", n)
		}
		e.waitParked(2)
		e.shed(2)
	}
	// Only the upstream speaks: the notification wakes its loop, which
	// writes to the client's shed socket (rebuilt for the write).
	notifyIdle(t, pc, ctx, notes, adm, func() { e.waitParked(2); e.shed(2) })
	e.waitParked(2)
	if n := openFDs(t); n != during {
		t.Fatalf("%d descriptors open with the session idle again, %d before", n, during)
	}
	pc.Close(ctx)
	e.waitSessionsEnded(g)
	waitFDs(t, base)
}

// A grant that ends, revoked or expired, cuts a shed session at once: the
// idle client reads the FATAL (kill rebuilds its socket to write it), the
// upstream backend goes, the session ends, and its descriptors close.
func TestShedSessionCutWhenGrantEnds(t *testing.T) {
	for _, why := range []string{"revoked", "expired"} {
		t.Run(why, func(t *testing.T) {
			// The grant's own timer (watch) cuts the expired one: the
			// gateway's clock passes the expiry, the control plane's end
			// of the grant never comes.
			fake := clock.NewFake(time.Now())
			e, g, adm, pc, _, base := shedSession(t, time.Hour, func(o *Options) { o.Clock = fake })
			hc, err := pc.Hijack()
			if err != nil {
				t.Fatal(err)
			}
			defer hc.Conn.Close()
			if why == "revoked" {
				e.auth.End(g, "revoked")
			} else {
				fake.Set(g.ExpiresAt)
			}
			_ = hc.Conn.SetReadDeadline(time.Now().Add(20 * time.Second))
			msg, err := hc.Frontend.Receive()
			if err != nil {
				t.Fatalf("the idle client read %v, want the FATAL", err)
			}
			er, ok := msg.(*pgproto3.ErrorResponse)
			if !ok || er.Severity != "FATAL" || er.Code != codeAdminShutdown || !strings.Contains(er.Message, why) {
				t.Fatalf("the idle client read %#v, want FATAL %s (%s)", msg, codeAdminShutdown, why)
			}
			if _, err := hc.Frontend.Receive(); err == nil {
				t.Fatal("the connection stayed open after the FATAL")
			}
			e.waitSessionsEnded(g)
			deadline := time.Now().Add(10 * time.Second)
			for backends(t, adm, g) != 0 {
				if time.Now().After(deadline) {
					t.Fatal("the upstream backend survived the grant")
				}
				time.Sleep(20 * time.Millisecond)
			}
			hc.Conn.Close()
			waitFDs(t, base)
			if n := e.gw.parkedSockets(); n != 0 {
				t.Fatalf("%d sockets still parked", n)
			}
		})
	}
}

// Either side hanging up while shed ends the session and closes its
// descriptors.
func TestShedSessionHangUps(t *testing.T) {
	t.Run("client", func(t *testing.T) {
		e, g, _, pc, _, base := shedSession(t, time.Hour)
		hc, err := pc.Hijack()
		if err != nil {
			t.Fatal(err)
		}
		hc.Conn.Close()
		e.waitSessionsEnded(g)
		waitFDs(t, base)
	})
	t.Run("upstream", func(t *testing.T) {
		e, g, adm, pc, ctx, base := shedSession(t, time.Hour)
		if _, err := adm.Exec(ctx, "select pg_terminate_backend(pid) from pg_stat_activity where usename = $1", "airlock_"+g.ID); err != nil {
			t.Fatal(err)
		}
		e.waitSessionsEnded(g)
		if _, err := pc.Exec(ctx, "select 1").ReadAll(); err == nil {
			t.Fatal("a statement ran on a session whose upstream is gone")
		}
		pc.Close(ctx)
		waitFDs(t, base)
	})
}

// A cancel request for a shed session goes to the upstream's address, read
// from its bare socket; once the session's upstream connection is closed
// there is none, and the cancel fails instead of panicking.
func TestShedSessionCancel(t *testing.T) {
	e, g, _, pc, ctx, _ := shedSession(t, time.Hour)
	var k *cancelKey
	e.gw.keys.mu.Lock()
	for _, key := range e.gw.keys.m {
		k = key
	}
	e.gw.keys.mu.Unlock()
	up := k.c.up.(*netpark.Conn)
	if !up.Bare() {
		t.Fatal("the upstream socket is not shed")
	}
	if err := sendCancel(ctx, k); err != nil {
		t.Fatalf("cancel for a shed session: %v", err)
	}
	if !up.Bare() {
		t.Fatal("reading the address rebuilt the socket")
	}
	// The cancel reached PostgreSQL (nothing to cancel) and the session
	// goes on.
	if _, err := pc.Exec(ctx, "select 1").ReadAll(); err != nil {
		t.Fatal(err)
	}
	e.waitParked(2)
	e.shed(2)
	if err := up.Close(); err != nil {
		t.Fatal(err)
	}
	if err := sendCancel(ctx, k); !errors.Is(err, errSessionClosed) {
		t.Fatalf("cancel after the upstream closed: %v, want %v", err, errSessionClosed)
	}
	e.waitSessionsEnded(g)
}

// The addresses a shed socket reports are its own.
func TestShedSessionAddrs(t *testing.T) {
	e, _, _, pc, _, _ := shedSession(t, time.Hour)
	local := pc.Conn().LocalAddr().String()
	for _, s := range e.gw.sockets() {
		if !s.Bare() {
			continue
		}
		if ra := s.RemoteAddr(); ra == nil {
			t.Fatal("a shed socket has no remote address")
		}
		if _, ok := s.RemoteAddr().(*net.TCPAddr); !ok {
			t.Fatalf("remote address %T", s.RemoteAddr())
		}
	}
	found := false
	for _, s := range e.gw.sockets() {
		if s.RemoteAddr().String() == local {
			found = true
		}
	}
	if !found {
		t.Fatalf("no shed socket reports the client's address %s", local)
	}
}

// A shed idle session's relay state, cancel key and client wrapper are
// its conn's own fields (one allocation: bench/HISTORY.md, "An idle session
// in fewer objects"), and still work as such: the cancel key the gateway
// registered is conn's, the client socket parked and shed is conn's, and
// the session wakes and answers through them.
func TestIdleSessionInOneObject(t *testing.T) {
	e, _, _, pc, ctx, _ := shedSession(t, time.Hour)
	var c *conn
	e.gw.keys.mu.Lock()
	for _, k := range e.gw.keys.m {
		if k != &k.c.ck {
			t.Error("the registered cancel key is not its conn's own")
		}
		c = k.c
	}
	e.gw.keys.mu.Unlock()
	if c == nil {
		t.Fatal("no session registered")
	}
	if c.raw != net.Conn(&c.client) || !c.client.Bare() {
		t.Fatalf("the client socket is %T, bare %v: not the conn's own shed wrapper", c.raw, c.client.Bare())
	}
	if c.rs.un == nil {
		t.Fatal("the conn's relay state was never set up")
	}
	if err := pc.Exec(ctx, "select 1").Close(); err != nil {
		t.Fatalf("the shed session did not wake and answer: %v", err)
	}
}
