package grants_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/model"
	"github.com/airlock-dev/airlock/internal/store"
)

// pausedLog holds the next transaction the audit log begins, once armed,
// until released: a finding being written, for as long as the test wants.
type pausedLog struct {
	store.Store
	mu      sync.Mutex
	armed   bool
	entered chan struct{}
	release chan struct{}
}

func (s *pausedLog) arm() {
	s.mu.Lock()
	s.armed = true
	s.entered, s.release = make(chan struct{}), make(chan struct{})
	s.mu.Unlock()
}

func (s *pausedLog) Begin(ctx context.Context) (store.Tx, error) {
	s.mu.Lock()
	held := s.armed
	s.armed = false
	entered, release := s.entered, s.release
	s.mu.Unlock()
	if held {
		close(entered)
		<-release
	}
	return s.Store.Begin(ctx)
}

// Under identity_binding: refuse, a second instance's call is refused and
// the first instance keeps working. The refused instance used to be noted
// as active when its call was observed and forgotten only once its finding
// was written: a call of the first instance in between (a busy agent, or a
// stolen key's user timing its calls to the agent's) found it active, was
// refused too, and was forgotten in turn, so the refused instance's next
// call had the identity to itself. Both the API call and a gateway
// session's start (the grant's requester) are checked here.
func TestRefusedInstanceNotActiveWhileItsFindingIsWritten(t *testing.T) {
	for _, path := range []string{"api", "gateway"} {
		t.Run(path, func(t *testing.T) {
			held := &pausedLog{}
			h := newHarness(t, harnessOptions{Manual: true, FindingsWindow: 10 * time.Minute, Binding: "refuse",
				LogStore: func(st store.Store) store.Store { held.Store = st; return held }})
			first, second := h.botFrom("10.0.0.1"), h.botFrom("10.0.0.2")
			// refused starts the call that is refused: the second
			// instance's API call, or a session of a grant the second
			// instance requested before the first became active.
			var refused func() error
			switch path {
			case "api":
				if err := h.Svc.ObserveCall(h.ctx, first); err != nil {
					t.Fatal(err)
				}
				refused = func() error { return h.Svc.ObserveCall(h.ctx, second) }
			case "gateway":
				g, err := h.Svc.Request(h.ctx, second, autoReq("15m"))
				if err != nil || g.Status != model.Active {
					t.Fatalf("request: %v, %v", g.Status, err)
				}
				h.fake.Advance(11 * time.Minute) // the requester's sighting has aged out
				if err := h.Svc.ObserveCall(h.ctx, first); err != nil {
					t.Fatal(err)
				}
				gg, err := h.Svc.Authority().Lookup(g.CredentialID)
				if err != nil {
					t.Fatal(err)
				}
				refused = func() error {
					ses, err := h.Svc.Authority().StartSession(h.ctx, gg, "10.0.0.2:40000 aws-cli/2")
					if err == nil {
						ses.End(h.ctx)
					}
					return err
				}
			}

			held.arm()
			done := make(chan error, 1)
			go func() { done <- refused() }()
			<-held.entered // its finding is being written
			released := false
			release := func() {
				if !released {
					released = true
					close(held.release)
				}
			}
			t.Cleanup(release)
			if got := h.Findings.Active(bot); len(got) != 1 || got[0] != "10.0.0.1" {
				t.Fatalf("active instances while the refused one's finding is written: %v, want 10.0.0.1 alone", got)
			}
			if err := h.Svc.ObserveCall(h.ctx, first); err != nil {
				t.Fatalf("the first instance, while the second's refusal is written: %v", err)
			}
			release()
			if err := <-done; err == nil || !strings.Contains(err.Error(), "identity_binding is refuse") {
				t.Fatalf("the second instance: %v, want refused", err)
			}
			if err := h.Svc.ObserveCall(h.ctx, second); err == nil {
				t.Fatal("the second instance's next call was let in")
			}
			if err := h.Svc.ObserveCall(h.ctx, first); err != nil {
				t.Fatalf("the first instance afterwards: %v", err)
			}
			fs := h.sharedFindings()
			if len(fs) != 1 || !fs[0].Refused || fs[0].Instance != "10.0.0.2" {
				t.Fatalf("findings %+v, want one refused for 10.0.0.2", fs)
			}
		})
	}
}
