package pggw

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/gateway"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// capEnv is a gateway whose target lets a grant hold max sessions.
func capEnv(t *testing.T, max int) *env {
	t.Helper()
	return newEnv(t, func(o *Options) { o.Targets[0].MaxSessionsPerGrant = max })
}

// tryConnect connects through the gateway, the caller closing the session.
func (e *env) tryConnect(g *gateway.Grant) (*pgx.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	return pgx.Connect(ctx, e.url(g, ""))
}

// A grant holds at most max_sessions_per_grant sessions: the next login is
// refused with 53300 naming the grant and the limit, recorded as a
// refusal (not as a session), while another grant still connects; a
// session's end gives its slot back.
func TestSessionsPerGrantBounded(t *testing.T) {
	e := capEnv(t, 2)
	g := e.grant(time.Hour, "pg:select %s.public.customers")
	other := e.grant(time.Hour, "pg:select %s.public.customers")
	first := e.connect(g, "")
	e.connect(g, "")
	sessions := len(e.auth.Sessions())

	_, err := e.tryConnect(g)
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != codeTooManyConnections {
		t.Fatalf("third session of a grant limited to 2: %v, want FATAL %s", err, codeTooManyConnections)
	}
	for _, want := range []string{g.ID, "2 sessions", "max_sessions_per_grant", "through this gateway"} {
		if !strings.Contains(pe.Message, want) {
			t.Errorf("message %q does not say %q", pe.Message, want)
		}
	}
	if n := len(e.auth.Sessions()); n != sessions {
		t.Errorf("the refused login started a session: %d sessions, want %d", n, sessions)
	}
	var found bool
	for _, r := range e.auth.Rejections() {
		if r.GrantID == g.ID && r.CredentialID == g.CredentialID && strings.Contains(r.Reason, "max_sessions_per_grant 2") {
			found = true
		}
	}
	if !found {
		t.Errorf("no refusal recorded for the grant; rejections: %+v", e.auth.Rejections())
	}

	// Another grant's sessions are its own.
	e.connect(other, "")

	// Closing one gives its slot back.
	first.Close(context.Background())
	waitFor(t, "the closed session's slot", func() bool {
		c, err := e.tryConnect(g)
		if err != nil {
			if pgCode(err) != codeTooManyConnections {
				t.Fatalf("connect after a close: %v", err)
			}
			return false
		}
		c.Close(context.Background())
		return true
	})
}

// Logins racing for a grant's last slots: exactly max get a session.
func TestSessionsPerGrantConcurrentLogins(t *testing.T) {
	const max, tries = 3, 10
	e := capEnv(t, max)
	g := e.grant(time.Hour, "pg:select %s.public.customers")
	var (
		mu      sync.Mutex
		ok, cap int
		wg      sync.WaitGroup
	)
	for range tries {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := e.tryConnect(g)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				ok++
				t.Cleanup(func() { c.Close(context.Background()) })
			case pgCode(err) == codeTooManyConnections:
				cap++
			default:
				t.Errorf("connect: %v", err)
			}
		}()
	}
	wg.Wait()
	if ok != max || cap != tries-max {
		t.Errorf("%d sessions and %d refused, want %d and %d", ok, cap, max, tries-max)
	}
}

// A login that fails after it was admitted (the grant's role cannot be
// prepared, the session cannot be recorded) gives its slot back: failures
// must not lock the grant out.
func TestSessionsPerGrantFailedLoginsFreeSlots(t *testing.T) {
	e := capEnv(t, 1)
	g := e.grant(time.Hour, "pg:select %s.public.customers")
	e.roles.mu.Lock()
	e.roles.ensureErr = errors.New("admin side down")
	e.roles.mu.Unlock()
	for range 3 {
		if _, err := e.tryConnect(g); pgCode(err) != codeSystemError {
			t.Fatalf("login with no role: %v, want %s", err, codeSystemError)
		}
	}
	e.roles.mu.Lock()
	e.roles.ensureErr = nil
	e.roles.mu.Unlock()
	e.auth.FailRecords(true)
	for range 3 {
		if _, err := e.tryConnect(g); pgCode(err) != codeSystemError {
			t.Fatalf("login whose session is not recorded: %v, want %s", err, codeSystemError)
		}
	}
	e.auth.FailRecords(false)
	e.connect(g, "")
}

// Unset, the bound is DefaultMaxSessionsPerGrant; negative, none.
func TestSessionsPerGrantDefault(t *testing.T) {
	for _, tc := range []struct {
		set, want int
	}{{0, DefaultMaxSessionsPerGrant}, {-1, DefaultMaxSessionsPerGrant + 1}} {
		e := capEnv(t, tc.set)
		g := e.grant(time.Hour, "pg:select %s.public.customers")
		n := 0
		for ; n <= DefaultMaxSessionsPerGrant; n++ {
			c, err := e.tryConnect(g)
			if err != nil {
				if pgCode(err) != codeTooManyConnections {
					t.Fatalf("set %d: connect %d: %v", tc.set, n+1, err)
				}
				break
			}
			t.Cleanup(func() { c.Close(context.Background()) })
		}
		if n != tc.want {
			t.Errorf("set %d: %d sessions, want %d", tc.set, n, tc.want)
		}
	}
}
