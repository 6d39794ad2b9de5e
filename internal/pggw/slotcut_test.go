package pggw

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/airlock-dev/airlock/internal/gateway"
	"github.com/airlock-dev/airlock/internal/gateway/gatewaytest"
)

// fakeSlots is the gateway's Options.Slots as the replicas' (grants'
// slotKeeper) offer it: every Take succeeds, keeping the cut it is given,
// unless block is set, when it waits for its context as a store that does
// not answer.
type fakeSlots struct {
	mu      sync.Mutex
	cuts    []func(string)
	block   bool
	entered chan struct{}
}

type fakeSlot struct{}

func (fakeSlot) Keep(func()) {}
func (fakeSlot) Release()    {}

func (f *fakeSlots) Take(ctx context.Context, g *gateway.Grant, max int, cut func(string)) (gateway.Slot, error) {
	f.mu.Lock()
	block := f.block
	f.mu.Unlock()
	if block {
		f.entered <- struct{}{}
		<-ctx.Done()
		return nil, ctx.Err()
	}
	f.mu.Lock()
	f.cuts = append(f.cuts, cut)
	f.mu.Unlock()
	return fakeSlot{}, nil
}

func (f *fakeSlots) cut(i int, why string) {
	f.mu.Lock()
	cut := f.cuts[i]
	f.mu.Unlock()
	cut(why)
}

// logLines keeps the gateway's log messages.
type logLines struct {
	mu    sync.Mutex
	lines []string
}

func (l *logLines) Enabled(context.Context, slog.Level) bool { return true }
func (l *logLines) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	l.lines = append(l.lines, r.Level.String()+" "+r.Message)
	l.mu.Unlock()
	return nil
}
func (l *logLines) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *logLines) WithGroup(string) slog.Handler      { return l }
func (l *logLines) all() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}

// A session whose slot among the replicas' could not be renewed before
// its lease ran out (the replica's store out of reach: the others count
// it out) is ended, the reason sent to the client and recorded in the
// session before its end; a new login is admitted.
func TestSlotLeaseCutEndsSession(t *testing.T) {
	fs := &fakeSlots{}
	e := newEnv(t, func(o *Options) {
		o.Targets[0].MaxSessionsPerGrant = 2
		o.Slots = fs
	})
	g := e.grant(time.Hour, "pg:select %s.public.customers")
	c := e.connect(g, "")
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if _, err := c.Exec(ctx, "select 1"); err != nil {
		t.Fatal(err)
	}
	const why = "the gateway could not renew the session's slot (test)"
	fs.cut(0, why)
	var err error
	for range 100 {
		if _, err = c.Exec(ctx, "select 1"); err != nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != codeAdminShutdown || !strings.Contains(pe.Message, why) {
		t.Fatalf("a statement after the session's slot was cut: %v, want FATAL %s saying %q", err, codeAdminShutdown, why)
	}
	var rec *gatewaytest.Recorded
	waitFor(t, "the cut session's end", func() bool {
		for _, s := range e.auth.Sessions() {
			if s.Grant.ID == g.ID && s.Ended() {
				rec = s
				return true
			}
		}
		return false
	})
	found := false
	for _, call := range rec.Calls() {
		if call.Kind == "result" && call.Action == "pg:connect" && !call.Allowed && strings.Contains(call.Error, "cut off: "+why) {
			found = true
		}
	}
	if !found {
		t.Errorf("the session's recording does not say why it was cut off: %+v", rec.Calls())
	}
	c2 := e.connect(g, "")
	if _, err := c2.Exec(ctx, "select 1"); err != nil {
		t.Fatalf("a new session once the store answers: %v", err)
	}
}

// A login cut short while its grant's sessions are counted among the
// replicas (the gateway shutting down while the store is slow to answer)
// is refused and recorded as what happened, not logged as a failure of
// the count (an ERROR sending an operator after the store), and no
// session starts.
func TestSlotTakeCutByShutdown(t *testing.T) {
	fs := &fakeSlots{block: true, entered: make(chan struct{}, 1)}
	logs := &logLines{}
	e := newEnv(t, func(o *Options) {
		o.Targets[0].MaxSessionsPerGrant = 2
		o.Slots = fs
		o.Logger = slog.New(logs)
	})
	g := e.grant(time.Hour, "pg:select %s.public.customers")
	done := make(chan error, 1)
	go func() {
		c, err := e.tryConnect(g)
		if err == nil {
			c.Close(context.Background())
		}
		done <- err
	}()
	select {
	case <-fs.entered:
	case <-time.After(15 * time.Second):
		t.Fatal("the login did not reach the count among the replicas")
	}
	e.gw.Close()
	var err error
	select {
	case err = <-done:
	case <-time.After(15 * time.Second):
		t.Fatal("the login still waits after the gateway closed")
	}
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != codeAdminShutdown || !strings.Contains(pe.Message, "shutting down") {
		t.Fatalf("the login: %v, want FATAL %s saying the gateway is shutting down", err, codeAdminShutdown)
	}
	if n := len(e.auth.Sessions()); n != 0 {
		t.Errorf("%d sessions started, want none", n)
	}
	var reason string
	waitFor(t, "the refusal's record", func() bool {
		for _, r := range e.auth.Rejections() {
			if r.GrantID == g.ID {
				reason = r.Reason
				return true
			}
		}
		return false
	})
	if want := "the gateway shut down while the grant's sessions were counted among the replicas"; reason != want {
		t.Errorf("the refusal's reason %q, want %q", reason, want)
	}
	if l := logs.all(); strings.Contains(l, "counting the grant's sessions among the replicas failed") {
		t.Errorf("the cut login is logged as a failed count:\n%s", l)
	}
}
