package grants_test

import (
	"strings"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/grants"
	"github.com/airlock-dev/airlock/internal/model"
)

// TestStartEndsWhatTheConfigurationRefuses: a start whose configuration
// no longer holds a target, or holds a lower grants.max_duration, ends
// what it refuses, by "config", with a comment naming the change: the
// pending request for the removed target and the one longer than the new
// cap are denied, the active grant on the removed target revoked. What
// the configuration still permits is left alone (a shorter request; an
// active grant longer than the new cap). One end entry each, and the rows
// derived from the log match the stored ones. Before, the requests stayed
// pending in the approvers' queues, refused only at approval, and the
// grant stayed listed active on a target no gateway serves.
func TestStartEndsWhatTheConfigurationRefuses(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	dbReq := h.request(bot, grants.RequestInput{Target: ordersDB, Scope: []string{"pg:select orders.public.*"}, Duration: "20m", Reason: "count orders"}, model.Pending)
	devGrant := h.request(bot, grants.RequestInput{Target: awsDev, Scope: []string{"s3:GetObject arn:aws:s3:::dev/*"}, Duration: "10m", Reason: "r"}, model.Active)
	long := h.request(bot, humanReq("30m"), model.Pending)
	short := h.request(bot2, humanReq("10m"), model.Pending)
	longActive := h.request(bot, autoReq("14m"), model.Active)
	h.stop()
	h.opts.Targets = []grants.Target{testTargets[0]} // aws-prod only
	h.opts.MaxDuration = 12 * time.Minute
	h.start()

	for _, c := range []struct {
		id, status, comment string
	}{
		{dbReq.ID, "denied", "target orders-db is no longer in the configuration (airlock.yaml) this server started with; no person denied it"},
		{devGrant.ID, "revoked", "target aws-dev is no longer in the configuration (airlock.yaml) this server started with; no person revoked it"},
		{long.ID, "denied", "asks for 30m0s, more than the cap of 12m0s on any grant (grants.max_duration)"},
	} {
		g := h.grant(c.id)
		if string(g.Status) != c.status || g.EndedBy != "config" || !strings.HasPrefix(g.EndComment, c.comment) {
			t.Errorf("%s after the start: %s by %q: %q; want %s by config: %q", c.id, g.Status, g.EndedBy, g.EndComment, c.status, c.comment)
		}
	}
	if g := h.grant(short.ID); g.Status != model.Pending {
		t.Errorf("the request within the new cap is %s", g.Status)
	}
	if g := h.grant(longActive.ID); g.Status != model.Active {
		t.Errorf("the active grant longer than the new cap is %s", g.Status)
	}
	if n := len(h.entriesOfType("grant.denied")); n != 2 {
		t.Errorf("%d grant.denied entries, want 2", n)
	}
	if n := len(h.entriesOfType("grant.revoked")); n != 1 {
		t.Errorf("%d grant.revoked entries, want 1", n)
	}
	queue, err := h.pending(h.id(alice))
	if err != nil {
		t.Fatal(err)
	}
	if len(queue) != 1 || queue[0].ID != short.ID {
		t.Errorf("alice's queue holds %d requests, want only %s", len(queue), short.ID)
	}
	// A second start finds nothing more to end.
	h.restart()
	if n := len(h.entriesOfType("grant.denied")) + len(h.entriesOfType("grant.revoked")); n != 3 {
		t.Errorf("%d end entries after a second start, want 3", n)
	}
	h.checkReview(t)
	h.finish()
}
