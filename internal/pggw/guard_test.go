package pggw

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/gateway"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgproto3"
)

// setHook installs a panic hook for the test.
func (e *env) setHook(h panicHook) {
	e.gw.panicHook.Store(&h)
	e.t.Cleanup(func() { e.gw.panicHook.Store(nil) })
}

// panickedSessions counts g's sessions that ended with the internal error
// recorded.
func (e *env) panickedSessions(g *gateway.Grant) int {
	n := 0
	for _, s := range e.auth.Sessions() {
		if s.Grant.ID != g.ID || !s.Ended() {
			continue
		}
		for _, call := range s.Calls() {
			if call.Action == "pg:session" && strings.Contains(call.Error, "internal error") {
				n++
				break
			}
		}
	}
	return n
}

// waitFor polls cond (state another goroutine sets right after the client
// sees the connection close) for up to 5 seconds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A panic in a connection's goroutine (client side, upstream side, or in
// the startup) closes that connection, is recorded, and the gateway keeps
// serving.
func TestPanicContainedToConnection(t *testing.T) {
	e := newEnv(t, nil)
	g := e.grant(time.Hour, "pg:select %s.public.customers")
	var startupPanics atomic.Int32
	startupPanics.Store(1)
	e.setHook(func(stage string, arg []byte) {
		switch {
		case stage == "query" && string(arg) == "select 'boom'":
			panic("injected panic in the client relay")
		case stage == "upstream" && arg[0] == 'D' && bytes.Contains(arg, []byte("boom-up")):
			panic("injected panic in the upstream relay")
		case stage == "startup" && startupPanics.Add(-1) == 0:
			panic("injected panic in the startup")
		}
	})
	ctx := ctxT(t, 30*time.Second)

	// The startup: the attempt is recorded as refused.
	if c, err := net.Dial("tcp", e.addr.String()); err == nil {
		readErrors(t, c, 5*time.Second)
		c.Close()
	}
	waitFor(t, "the startup panic's rejection", func() bool {
		for _, r := range e.auth.Rejections() {
			if r.Reason == "internal error during startup" {
				return true
			}
		}
		return false
	})

	for i, q := range []string{"select 'boom'", "select 'boom-up'"} {
		c := e.connect(g, "")
		if _, err := c.Exec(ctx, "select 1", pgxSimple); err != nil {
			t.Fatal(err)
		}
		_, err := c.Exec(ctx, q, pgxSimple)
		if err == nil {
			t.Fatalf("%s: the statement succeeded despite the panic", q)
		}
		if !strings.Contains(err.Error(), "XX000") && !strings.Contains(err.Error(), "closed") && !strings.Contains(err.Error(), "EOF") {
			t.Errorf("%s: err = %v, want FATAL XX000 or a closed connection", q, err)
		}
		waitFor(t, "the session's end with the internal error recorded", func() bool { return e.panickedSessions(g) == i+1 })
		if got := e.gw.panics.Load(); got != int64(i+2) {
			t.Errorf("%d panics contained, want %d", got, i+2)
		}
		// The gateway still serves a new connection.
		c2 := e.connect(g, "")
		var n int
		if err := c2.QueryRow(ctx, "select count(*) from customers").Scan(&n); err != nil || n != 50 {
			t.Fatalf("after the panic: count %d, err %v", n, err)
		}
		c2.Close(ctx)
	}
	if n := e.panickedSessions(g); n != 2 {
		t.Errorf("%d sessions record an internal error, want 2", n)
	}
}

// A panic's value, which code may have built from the statement, is not
// logged; its type is, and a runtime error's message.
func TestPanicValueNotLogged(t *testing.T) {
	e := newEnv(t, nil)
	var buf syncBuffer
	e.gw.log = slog.New(slog.NewTextHandler(&buf, nil))
	g := e.grant(time.Hour, "pg:select %s.public.customers")
	e.setHook(func(stage string, arg []byte) {
		if stage == "query" && strings.Contains(string(arg), "boom") {
			panic(fmt.Errorf("cannot handle %s", arg))
		}
		if stage == "query" && strings.Contains(string(arg), "index") {
			var s []int
			_ = s[len(arg)]
		}
	})
	ctx := ctxT(t, 30*time.Second)
	for i, q := range []string{"select 'boom-hunter2'", "select 'index'"} {
		c := e.connect(g, "")
		if _, err := c.Exec(ctx, q, pgxSimple); err == nil {
			t.Fatalf("%s: the statement succeeded despite the panic", q)
		}
		waitFor(t, "the panic contained", func() bool { return e.gw.panics.Load() == int64(i+1) })
	}
	logs := buf.String()
	if strings.Contains(logs, "hunter2") {
		t.Errorf("the panic's value was logged:\n%s", logs)
	}
	if !strings.Contains(logs, "*fmt.wrapError") && !strings.Contains(logs, "*errors.errorString") {
		t.Errorf("the panic's type is not logged:\n%s", logs)
	}
	if !strings.Contains(logs, "index out of range") {
		t.Errorf("the runtime error's message is not logged:\n%s", logs)
	}
}

// syncBuffer is a bytes.Buffer safe for a logger's concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Connections beyond MaxStartups still authenticating are refused at once
// with 53300, counted (not logged one by one), and the slots come back.
func TestStartupCap(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.MaxStartups = 2 })
	clk := func() time.Time { return time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC) }
	agg := e.auth.AggregateRejections(gateway.RejectPolicy{PerKey: 1}, clk)
	g := e.grant(time.Hour, "pg:select %s.public.customers")
	var stalled []net.Conn
	for range 2 {
		c, err := net.Dial("tcp", e.addr.String())
		if err != nil {
			t.Fatal(err)
		}
		stalled = append(stalled, c)
		// Half a startup packet: the connection holds its slot.
		if _, err := c.Write([]byte{0, 0, 0, 40}); err != nil {
			t.Fatal(err)
		}
	}
	// The gateway takes a slot when it accepts: wait until it has both.
	waitFor(t, "two connections in startup", func() bool { return len(e.gw.startups) == 2 })
	for range 20 {
		c, err := net.Dial("tcp", e.addr.String())
		if err != nil {
			t.Fatal(err)
		}
		errs := readErrors(t, c, 5*time.Second)
		c.Close()
		if len(errs) != 1 || errs[0].Code != "53300" || errs[0].Severity != "FATAL" {
			t.Fatalf("over the cap: %+v, want one FATAL 53300", errs)
		}
	}
	for _, c := range stalled {
		c.Close()
	}
	waitFor(t, "the slots to come back", func() bool { return len(e.gw.startups) == 0 })
	c := e.connect(g, "")
	if _, err := c.Exec(ctxT(t, 10*time.Second), "select 1"); err != nil {
		t.Fatal(err)
	}
	if err := agg.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	var busy int
	for _, r := range e.auth.Rejections() {
		if r.Reason == "too many connections in startup" {
			busy++
		}
	}
	for _, s := range e.auth.RejectionSummaries() {
		if s.Reason == "too many connections in startup" {
			busy += s.Count
		}
	}
	if busy != 20 {
		t.Errorf("%d refusals over the cap recorded, want 20", busy)
	}
	if n := len(e.auth.Rejections()); n > 3 {
		t.Errorf("%d individual rejections, want at most 3 (one per source and reason)", n)
	}
}

// badSCRAM runs a startup with a wrong SCRAM proof for user: the client
// does no PBKDF2 work, and the gateway must not either.
func badSCRAM(addr, user, db string) error {
	_, err := badSCRAMSalt(addr, user, db)
	return err
}

// badSCRAMSalt is badSCRAM, returning the salt the gateway offered.
func badSCRAMSalt(addr, user, db string) (salt string, err error) {
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return "", err
	}
	defer nc.Close()
	_ = nc.SetDeadline(time.Now().Add(20 * time.Second))
	fe := pgproto3.NewFrontend(nc, nc)
	fe.Send(&pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersion30, Parameters: map[string]string{"user": user, "database": db}})
	if err := fe.Flush(); err != nil {
		return "", err
	}
	m, err := fe.Receive()
	if err != nil {
		return "", err
	}
	if _, ok := m.(*pgproto3.AuthenticationSASL); !ok {
		return "", fmt.Errorf("got %T, want AuthenticationSASL", m)
	}
	fe.Send(&pgproto3.SASLInitialResponse{AuthMechanism: "SCRAM-SHA-256", Data: []byte("n,,n=,r=floodnonce")})
	if err := fe.Flush(); err != nil {
		return "", err
	}
	m, err = fe.Receive()
	if err != nil {
		return "", err
	}
	cont, ok := m.(*pgproto3.AuthenticationSASLContinue)
	if !ok {
		return "", fmt.Errorf("got %T, want AuthenticationSASLContinue", m)
	}
	var nonce string
	for _, a := range strings.Split(string(cont.Data), ",") {
		if strings.HasPrefix(a, "r=") {
			nonce = a[2:]
		}
		if strings.HasPrefix(a, "s=") {
			salt = a[2:]
		}
	}
	proof := base64.StdEncoding.EncodeToString(make([]byte, 32))
	fe.Send(&pgproto3.SASLResponse{Data: []byte("c=biws,r=" + nonce + ",p=" + proof)})
	if err := fe.Flush(); err != nil {
		return "", err
	}
	m, err = fe.Receive()
	if err != nil {
		return "", err
	}
	if er, ok := m.(*pgproto3.ErrorResponse); !ok || er.Code != "28P01" {
		return "", fmt.Errorf("got %#v, want 28P01", m)
	}
	return salt, nil
}

// A flood of 1,000 bad startups (wrong passwords for a real credential and
// an unknown one, garbage bytes) leaves a handful of log entries that
// account for every attempt, and the gateway keeps serving good clients
// during and after it.
func TestFloodOfBadStartups(t *testing.T) {
	e := newEnv(t, nil)
	clk := func() time.Time { return time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC) }
	agg := e.auth.AggregateRejections(gateway.RejectPolicy{}, clk)
	g := e.grant(time.Hour, "pg:select %s.public.customers")
	ctx := ctxT(t, 60*time.Second)

	const total, workers = 1000, 8
	var next atomic.Int64
	var failures atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= total {
					return
				}
				var err error
				switch i % 3 {
				case 0:
					err = badSCRAM(e.addr.String(), g.CredentialID, e.db)
				case 1:
					err = badSCRAM(e.addr.String(), "AKALNOSUCHCREDENTIAL", e.db)
				default:
					var c net.Conn
					if c, err = net.DialTimeout("tcp", e.addr.String(), 5*time.Second); err == nil {
						_, _ = c.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
						readErrors(t, c, 10*time.Second)
						c.Close()
					}
				}
				if err != nil {
					failures.Add(1)
				}
			}
		}()
	}
	// A good client during the flood: it connects and queries within a
	// few seconds (a liveness bound, not a benchmark).
	during := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		c := e.connect(g, "")
		var n int
		during <- c.QueryRow(ctx, "select count(*) from customers").Scan(&n)
	}()
	if err := <-during; err != nil {
		t.Fatalf("a good client during the flood: %v", err)
	}
	wg.Wait()
	if n := failures.Load(); n != 0 {
		t.Errorf("%d flood clients did not see the expected refusal", n)
	}
	c := e.connect(g, "")
	if _, err := c.Exec(ctxT(t, 10*time.Second), "select 1"); err != nil {
		t.Fatalf("a good client after the flood: %v", err)
	}
	if err := agg.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	ones, sums := e.auth.Rejections(), e.auth.RejectionSummaries()
	if len(ones)+len(sums) > 20 {
		t.Errorf("%d individual entries and %d summaries for %d attempts, want a handful", len(ones), len(sums), total)
	}
	seen := len(ones)
	for _, s := range sums {
		seen += s.Count
	}
	if seen != total {
		t.Errorf("the log accounts for %d attempts, want %d: %+v %+v", seen, total, ones, sums)
	}
}

// One source that opens hundreds of connections and never finishes their
// startup holds at most MaxStartupsPerHost slots: a client from another
// address still gets in, instead of 53300 for as long as the flood lasts.
func TestStartupFloodFromOneSourceLeavesRoomForOthers(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.StartupTimeout = time.Minute })
	g := e.grant(time.Hour, "pg:select %s.public.customers")
	const flood = 300
	var stalled []net.Conn
	t.Cleanup(func() {
		for _, c := range stalled {
			c.Close()
		}
	})
	for range flood {
		c, err := net.DialTimeout("tcp", e.addr.String(), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		stalled = append(stalled, c)
		// Half a startup packet: an accepted connection holds its slot.
		_, _ = c.Write([]byte{0, 0, 0, 40})
	}
	// Accepted in order: the flood's connections are all in the gateway
	// before this one (from 127.0.0.2).
	cfg, err := pgx.ParseConfig(e.url(g, ""))
	if err != nil {
		t.Fatal(err)
	}
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}, Timeout: 5 * time.Second}
	cfg.DialFunc = d.DialContext
	ctx := ctxT(t, 15*time.Second)
	c, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatalf("a client from another address during the flood: %v", err)
	}
	defer c.Close(context.Background())
	if _, err := c.Exec(ctx, "select 1"); err != nil {
		t.Fatal(err)
	}
	if n := len(e.gw.startups); n > defaultMaxStartupsPerHost {
		t.Errorf("the flood holds %d startup slots, want at most %d", n, defaultMaxStartupsPerHost)
	}
}
