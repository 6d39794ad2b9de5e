package pggw

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/airlock-dev/airlock/internal/clock"
	"github.com/airlock-dev/airlock/internal/pgroles"
)

// slowRows is a COPY FROM STDIN body that sends a row every tick, max
// rows in all, calling onRow (if set) before each.
type slowRows struct {
	tick  time.Duration
	max   int
	onRow func(n int)
	n     int
}

func (s *slowRows) Read(p []byte) (int, error) {
	if s.n >= s.max {
		return 0, io.EOF
	}
	time.Sleep(s.tick)
	s.n++
	if s.onRow != nil {
		s.onRow(s.n)
	}
	return copy(p, fmt.Sprintf("row %d\n", s.n)), nil
}

// TestSessionCutAtExpiryWhenEndIsLate: the grant's expiry passes while the
// control plane's own end of it (Done) is late. A COPY FROM STDIN begun
// just before the expiry must not go on writing after it: the session is
// cut at the expiry, as the AWS gateway's are, and nothing the client
// streamed after it is committed.
func TestSessionCutAtExpiryWhenEndIsLate(t *testing.T) {
	fake := clock.NewFake(time.Now())
	e := newEnv(t, func(o *Options) { o.Clock = fake })
	g := e.grant(time.Hour, "pg:insert %s.public.events")
	ctx := ctxT(t, 20*time.Second)
	pc, err := pgconn.Connect(ctx, e.url(g, ""))
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close(context.Background())
	// Nobody calls e.auth.End: the control plane is late.
	// The gateway's clock reaches the expiry once the COPY is under way;
	// the client streams on for about 5 s more.
	body := &slowRows{tick: 50 * time.Millisecond, max: 100, onRow: func(n int) {
		if n == 5 {
			fake.Set(g.ExpiresAt)
		}
	}}
	tag, err := pc.CopyFrom(ctx, body, "copy events (note) from stdin")
	if err == nil {
		t.Errorf("the COPY begun before the grant's expiry went on after it and committed %d rows", tag.RowsAffected())
	}
	var rows int
	if err := e.admin().QueryRow(ctx, "select count(*) from events").Scan(&rows); err != nil {
		t.Fatal(err)
	}
	if rows != 0 {
		t.Errorf("%d rows committed by a COPY that ran past the grant's expiry", rows)
	}
}

// TestGrantEndDuringUpstreamLogin: the grant is revoked while a session of
// it is still logging in to the upstream (here one that accepts and never
// answers, standing for a slow database). The client gets the grant's
// end, and the session's records say so: not "upstream connection
// failed", which would send an operator after a database that was fine.
func TestGrantEndDuringUpstreamLogin(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		if c, err := ln.Accept(); err == nil {
			accepted <- c // held, never answered
		}
	}()
	e := newEnv(t, func(o *Options) {
		u, err := url.Parse(o.Targets[0].Upstream)
		if err != nil {
			t.Fatal(err)
		}
		u.Host = ln.Addr().String()
		o.Targets[0].Upstream = u.String()
	})
	g := e.grant(time.Hour, "pg:select %s.public.customers")
	ctx := ctxT(t, 20*time.Second)
	connErr := make(chan error, 1)
	go func() {
		pc, err := pgconn.Connect(ctx, e.url(g, ""))
		if err == nil {
			pc.Close(context.Background())
		}
		connErr <- err
	}()
	var up net.Conn
	select {
	case up = <-accepted:
		defer up.Close()
	case err := <-connErr:
		t.Fatalf("the connection ended before its upstream login: %v", err)
	case <-ctx.Done():
		t.Fatal("the gateway never began the upstream login")
	}
	e.auth.End(g, "revoked")
	err = <-connErr
	if pgCode(err) != codeAdminShutdown || !strings.Contains(err.Error(), "has been revoked") {
		t.Fatalf("connecting as the grant was revoked: %v, want the grant's end (%s)", err, codeAdminShutdown)
	}
	e.waitSessionsEnded(g)
	var results []string
	for _, c := range e.auth.Calls(g.ID) {
		if c.Kind == "result" && c.Action == "pg:connect" {
			results = append(results, c.Error)
		}
	}
	if len(results) != 1 || !strings.Contains(results[0], "revoked") {
		t.Errorf("the session's setup was recorded as %q, want the grant's revocation", results)
	}
	var reasons []string
	waitFor(t, "the refused connection's log entry", func() bool {
		reasons = nil
		for _, r := range e.auth.Rejections() {
			if r.GrantID == g.ID {
				reasons = append(reasons, r.Reason)
			}
		}
		return len(reasons) > 0
	})
	if len(reasons) != 1 || !strings.Contains(reasons[0], "revoked") {
		t.Errorf("the refused connection was logged as %q, want the grant's revocation", reasons)
	}
}

// TestUpstreamTooManyConnectionsPassedOn: when PostgreSQL refuses the
// gateway's login as the grant's role for want of connection slots (here
// the role's own CONNECTION LIMIT), the client gets that code, 53300, on
// which drivers and pools retry, with PostgreSQL's words in the detail; it
// got 08006 connection_failure, which reads as a broken database.
func TestUpstreamTooManyConnectionsPassedOn(t *testing.T) {
	// Each session logs in afresh: a kept connection would need no slot.
	e := newEnv(t, func(o *Options) { o.IdleUpstreamTTL = -1 })
	g := e.grant(time.Hour, "pg:select %s.public.customers")
	ctx := ctxT(t, 20*time.Second)
	pc, err := pgconn.Connect(ctx, e.url(g, "")) // the grant's role exists from here
	if err != nil {
		t.Fatal(err)
	}
	pc.Close(ctx)
	e.waitSessionsEnded(g)
	if _, err := e.admin().Exec(ctx, "ALTER ROLE "+pgx.Identifier{pgroles.RoleName(g.ID)}.Sanitize()+" CONNECTION LIMIT 0"); err != nil {
		t.Fatal(err)
	}
	_, err = pgconn.Connect(ctx, e.url(g, ""))
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != codeTooManyConnections || pe.Severity != "FATAL" || !strings.Contains(pe.Detail, "too many connections") {
		t.Fatalf("upstream out of slots for the role: %v (%+v), want FATAL 53300 with PostgreSQL's reason in the detail", err, pe)
	}
}

// TestGrantEndJustAfterUpstreamLogin: the grant is revoked after the
// gateway's upstream login succeeded, before the client was greeted
// (stage "login": before the gateway looks whether the connection was
// killed; "greet": after, as it sends the greeting). The session had
// started, so its recording must say why it has no statements, and the
// refused connection must name the grant: it was logged as "closed during
// startup" (or "connection closed during startup"), with no grant and no
// result.
//
// Stage "session": the grant ends between the session's start and its
// registration under the grant (whose state an earlier session made, and
// which the end has marked ended): the client is refused with 28000 and
// the session's recording got no result either.
func TestGrantEndJustAfterUpstreamLogin(t *testing.T) {
	for _, stage := range []string{"session", "login", "greet"} {
		t.Run(stage, func(t *testing.T) {
			e := newEnv(t, nil)
			g := e.grant(time.Hour, "pg:select %s.public.customers")
			ctx := ctxT(t, 20*time.Second)
			var first *pgconn.PgConn
			if stage == "session" {
				var err error
				if first, err = pgconn.Connect(ctx, e.url(g, "")); err != nil {
					t.Fatal(err)
				}
				defer first.Close(context.Background())
			}
			connErr := make(chan error, 1)
			clientDone := make(chan struct{})
			var once sync.Once
			e.setHook(func(s string, _ []byte) {
				if s != stage {
					return
				}
				once.Do(func() {
					e.auth.End(g, "revoked")
					if first != nil {
						// The first session's kill: the grant's state is
						// marked ended by then.
						_, _ = first.Exec(ctx, "select 1").ReadAll()
						return
					}
					// kill has reached the client: the connection is dead.
					select {
					case <-clientDone:
					case <-ctx.Done():
					}
				})
			})
			go func() {
				pc, err := pgconn.Connect(ctx, e.url(g, ""))
				if err == nil {
					pc.Close(context.Background())
				}
				connErr <- err
				close(clientDone)
			}()
			err := <-connErr
			want := codeAdminShutdown
			if stage == "session" {
				want = codeInvalidAuthSpec
			}
			if pgCode(err) != want || !strings.Contains(err.Error(), "has been revoked") {
				t.Fatalf("connecting as the grant was revoked: %v, want the grant's end (%s)", err, want)
			}
			e.waitSessionsEnded(g)
			var results []string
			for _, c := range e.auth.Calls(g.ID) {
				if c.Kind == "result" && c.Action == "pg:connect" {
					results = append(results, c.Error)
				}
			}
			if len(results) != 1 || !strings.Contains(results[0], "revoked") {
				t.Errorf("the session's setup was recorded as %q, want the grant's revocation", results)
			}
			var reasons []string
			waitFor(t, "the refused connection's log entry", func() bool {
				reasons = nil
				for _, r := range e.auth.Rejections() {
					if r.GrantID == g.ID {
						reasons = append(reasons, r.Reason)
					}
				}
				return len(reasons) > 0
			})
			if len(reasons) != 1 || !strings.Contains(reasons[0], "revoked") {
				t.Errorf("the refused connection was logged as %q, want the grant's revocation", reasons)
			}
		})
	}
}

// TestStalledUpstreamLoginTimesOut: the target's database accepts the
// gateway's connection and never answers its login. The login is
// bounded by StartupTimeout on the gateway's clock: it held the startup
// (its MaxStartups slot) and the client until the grant ended, with
// nothing recorded. The client gets 08006 and the session's records say
// the upstream did not complete the login in time.
func TestStalledUpstreamLoginTimesOut(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		if c, err := ln.Accept(); err == nil {
			accepted <- c // held, never answered
		}
	}()
	fake := clock.NewFake(time.Now())
	e := newEnv(t, func(o *Options) {
		u, err := url.Parse(o.Targets[0].Upstream)
		if err != nil {
			t.Fatal(err)
		}
		u.Host = ln.Addr().String()
		o.Targets[0].Upstream = u.String()
		o.Clock = fake
		o.StartupTimeout = 5 * time.Second // real time: the client's side
	})
	g := e.grant(time.Hour, "pg:select %s.public.customers")
	ctx := ctxT(t, 20*time.Second)
	connErr := make(chan error, 1)
	go func() {
		pc, err := pgconn.Connect(ctx, e.url(g, ""))
		if err == nil {
			pc.Close(context.Background())
		}
		connErr <- err
	}()
	select {
	case up := <-accepted:
		defer up.Close()
	case err := <-connErr:
		t.Fatalf("the connection ended before its upstream login: %v", err)
	case <-ctx.Done():
		t.Fatal("the gateway never began the upstream login")
	}
	fake.Advance(5 * time.Second)
	select {
	case err = <-connErr:
	case <-time.After(3 * time.Second):
		t.Fatal("the login to a silent upstream outlived StartupTimeout on the gateway's clock")
	}
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != codeConnectionFailure || pe.Detail != "the upstream did not complete the login within 5s" {
		t.Fatalf("connecting to a silent upstream: %#v, want %s saying the login timed out", err, codeConnectionFailure)
	}
	e.waitSessionsEnded(g)
	var results []string
	for _, c := range e.auth.Calls(g.ID) {
		if c.Kind == "result" && c.Action == "pg:connect" {
			results = append(results, c.Error)
		}
	}
	if len(results) != 1 || !strings.Contains(results[0], "did not complete the login") {
		t.Errorf("the session's setup was recorded as %q, want the login's timeout", results)
	}
}

// TestStalledRoleRetryTimesOut: the grant's role could not be prepared
// at activation, and the admin side stalls when a session's startup
// retries it. The retry is bounded by roleTimeout on the gateway's clock,
// as the preparation at activation is: it held the startup and its slot
// until the grant ended.
func TestStalledRoleRetryTimesOut(t *testing.T) {
	fake := clock.NewFake(time.Now())
	e := newEnv(t, func(o *Options) { o.Clock = fake })
	e.roles.mu.Lock()
	e.roles.ensureErr = errors.New("admin connection refused")
	e.roles.mu.Unlock()
	g := e.grant(time.Hour, "pg:select %s.public.customers")
	waitFor(t, "the role's preparation at activation", func() bool {
		e.roles.mu.Lock()
		defer e.roles.mu.Unlock()
		return e.roles.ensures > 0
	})
	stall := make(chan struct{}, 1)
	e.roles.mu.Lock()
	e.roles.ensureErr, e.roles.stall = nil, stall
	e.roles.mu.Unlock()
	ctx := ctxT(t, 20*time.Second)
	connErr := make(chan error, 1)
	go func() {
		pc, err := pgconn.Connect(ctx, e.url(g, ""))
		if err == nil {
			pc.Close(context.Background())
		}
		connErr <- err
	}()
	select {
	case <-stall:
	case err := <-connErr:
		t.Fatalf("the connection ended before the role's retry: %v", err)
	case <-ctx.Done():
		t.Fatal("the startup never retried the role's preparation")
	}
	fake.Advance(roleTimeout)
	var err error
	select {
	case err = <-connErr:
	case <-time.After(3 * time.Second):
		t.Fatal("the role's retry outlived roleTimeout on the gateway's clock")
	}
	if pgCode(err) != codeSystemError || !strings.Contains(err.Error(), "could not prepare the database role") {
		t.Fatalf("connecting while the admin side stalls: %v, want %s", err, codeSystemError)
	}
}
