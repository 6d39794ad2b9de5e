package grants_test

import (
	"slices"
	"sync"
	"testing"

	"github.com/airlock-dev/airlock/internal/grants"
	"github.com/airlock-dev/airlock/internal/model"
)

// TestOnChange: a watcher sees every lifecycle change once, after commit,
// in order, with the grant as committed; a decision made through a channel
// records the channel and chat user in the approval, and the review
// derived from the log agrees with the record (finish verifies the log).
func TestOnChange(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	var mu sync.Mutex
	var seen []string
	var last map[string]model.Grant = map[string]model.Grant{}
	h.Svc.OnChange(func(c grants.Change) {
		mu.Lock()
		defer mu.Unlock()
		seen = append(seen, c.Type+" "+c.Actor)
		last[c.Type] = c.Grant
	})
	g := h.request(bot, humanReq("10m"), model.Pending)
	ctx := grants.WithChannel(h.ctx, "slack", "U024BE7LH")
	if _, err := h.Svc.Approve(ctx, h.id(alice), g.ID, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Svc.Revoke(h.ctx, h.id(alice), g.ID, "done"); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	want := []string{"grant.requested triage-bot", "grant.decided policy", "grant.approved alice", "grant.activated alice", "grant.revoked alice"}
	if !slices.Equal(seen, want) {
		t.Errorf("changes %q, want %q", seen, want)
	}
	a := last["grant.approved"]
	if a.Status != model.Active || len(a.Approvals) != 1 || a.Approvals[0].Via != "slack" || a.Approvals[0].SlackUser != "U024BE7LH" {
		t.Errorf("approved change carries %+v", a)
	}
	mu.Unlock()
	rec := h.grant(g.ID)
	if rec.Approvals[0].Via != "slack" || rec.Approvals[0].SlackUser != "U024BE7LH" {
		t.Errorf("stored approval %+v", rec.Approvals[0])
	}
	for _, e := range h.entriesOfType("grant.approved") {
		if d := entryData(t, e); d["via"] != "slack" || d["slack_user"] != "U024BE7LH" {
			t.Errorf("logged approval %v", d)
		}
	}
	h.finish()
}
