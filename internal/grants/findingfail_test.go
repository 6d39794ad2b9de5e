package grants_test

import (
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/model"
	"github.com/airlock-dev/airlock/internal/store"
)

// A finding that could not be written (the log's store failed) is written
// at the next call that raises it. The detector used to count it as
// reported before the write, so the retry, a moment later, went through
// with no finding at all: for the window (shared-identity) or for good
// (credential-moved).
func TestFindingWrittenAfterAFailedWrite(t *testing.T) {
	var fail atomic.Bool
	h := newHarness(t, harnessOptions{Manual: true, FindingsWindow: 10 * time.Minute,
		LogStore: func(st store.Store) store.Store { return failingStore{st, &fail} }})
	if err := h.Svc.ObserveCall(h.ctx, h.botFrom("10.0.0.1")); err != nil {
		t.Fatal(err)
	}
	g, err := h.Svc.Request(h.ctx, h.botFrom("10.0.0.1"), autoReq("15m"))
	if err != nil || g.Status != model.Active {
		t.Fatalf("request: %v, %v", g.Status, err)
	}

	fail.Store(true)
	if err := h.Svc.ObserveCall(h.ctx, h.botFrom("10.0.0.2")); err == nil {
		t.Fatal("a second instance's call went through while its finding could not be written")
	}
	gg, err := h.Svc.Authority().Lookup(g.CredentialID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.Svc.Authority().StartSession(h.ctx, gg, "10.0.0.3:4000 aws-cli/2"); err == nil {
		t.Fatal("a moved credential's session started while its finding could not be written")
	}
	fail.Store(false)

	if err := h.Svc.ObserveCall(h.ctx, h.botFrom("10.0.0.2")); err != nil {
		t.Fatal(err)
	}
	if fs := h.sharedFindings(); len(fs) != 1 || fs[0].Instance != "10.0.0.2" {
		t.Fatalf("shared-identity findings after the retry: %+v, want one for 10.0.0.2", fs)
	}
	ses, err := h.Svc.Authority().StartSession(h.ctx, gg, "10.0.0.3:4000 aws-cli/2")
	if err != nil {
		t.Fatal(err)
	}
	defer ses.End(h.ctx)
	// The second instance's finding is on the grant too (it was open).
	if got := h.grant(g.ID).Findings; len(got) != 2 || got[0].Kind != model.FindingSharedIdentity || got[1].Kind != model.FindingCredentialMoved {
		t.Fatalf("grant findings after the retry: %+v, want the shared-identity one and one credential-moved", got)
	}
}

// Under identity_binding: refuse, a second instance whose refusal could
// not be recorded did not act either: it used to stay noted as active, so
// the first instance's next call was refused in its place.
func TestFailedRefusalKeepsFirstInstance(t *testing.T) {
	var fail atomic.Bool
	h := newHarness(t, harnessOptions{Manual: true, FindingsWindow: 10 * time.Minute, Binding: "refuse",
		LogStore: func(st store.Store) store.Store { return failingStore{st, &fail} }})
	if err := h.Svc.ObserveCall(h.ctx, h.botFrom("10.0.0.1")); err != nil {
		t.Fatal(err)
	}
	fail.Store(true)
	if err := h.Svc.ObserveCall(h.ctx, h.botFrom("10.0.0.2")); err == nil {
		t.Fatal("the second instance was let in")
	}
	fail.Store(false)
	if err := h.Svc.ObserveCall(h.ctx, h.botFrom("10.0.0.1")); err != nil {
		t.Fatalf("the first instance, after the second's refusal failed to be recorded: %v", err)
	}
	err := h.Svc.ObserveCall(h.ctx, h.botFrom("10.0.0.2"))
	if err == nil || !strings.Contains(err.Error(), "identity_binding is refuse") {
		t.Fatalf("the second instance again: %v, want refused", err)
	}
	if fs := h.sharedFindings(); len(fs) != 1 || !fs[0].Refused || fs[0].Instance != "10.0.0.2" {
		t.Fatalf("findings %+v, want one refused for 10.0.0.2", fs)
	}
}
