package grants_test

import (
	"errors"
	"net/http"
	"testing"

	"github.com/airlock-dev/airlock/internal/apierr"
	"github.com/airlock-dev/airlock/internal/grants"
	"github.com/airlock-dev/airlock/internal/model"
)

// TestPendingRequestsBounded: every request that waits for a person goes
// to the approvers' queue and to Slack, and nothing bounded how many one
// identity could have open: an agent in a loop could bury the queue, or
// wear approvers down until one clicked Approve. An identity's open
// requests are now at most MaxPendingPerIdentity; the next is refused
// (429) until one is decided or withdrawn. Requests that policy grants or
// denies outright are not counted, and other identities are not held up.
func TestPendingRequestsBounded(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	var first model.Grant
	for i := range grants.MaxPendingPerIdentity {
		g := h.request(bot, humanReq("10m"), model.Pending)
		if i == 0 {
			first = g
		}
	}
	_, err := h.Svc.Request(h.ctx, h.id(bot), humanReq("10m"))
	var ae *apierr.Error
	if !errors.As(err, &ae) || ae.Status != http.StatusTooManyRequests {
		t.Fatalf("request %d: %v, want a 429", grants.MaxPendingPerIdentity+1, err)
	}
	// Granted outright: not a request for a person, not counted.
	h.request(bot, autoReq("10m"), model.Active)
	// Another identity's requests go on.
	h.request(alice, grants.RequestInput{Target: awsProd, Scope: []string{auditLog}, Duration: "20m", Reason: "audit the audit"}, model.Pending)
	// One withdrawn makes room for one more.
	if _, err := h.Svc.End(h.ctx, h.id(bot), first.ID, "not needed"); err != nil {
		t.Fatal(err)
	}
	h.request(bot, humanReq("10m"), model.Pending)
	if _, err := h.Svc.Request(h.ctx, h.id(bot), humanReq("10m")); !errors.As(err, &ae) || ae.Status != http.StatusTooManyRequests {
		t.Fatalf("past the bound again: %v, want a 429", err)
	}
}
