package grants_test

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/grants"
	"github.com/airlock-dev/airlock/internal/model"
	"github.com/airlock-dev/airlock/internal/store"
)

// forbidLogSecrets forbids a part of what humanReq asks for (logs/*):
// the request is forbidden as a whole, as it would be if made now.
const forbidLogSecrets = `
@id("freeze-log-secrets")
forbid (principal, action, resource) when { context.resource like "arn:aws:s3:::logs/secret/*" };
`

// slowAppReq asks for the app logs for longer than the automatic permit
// allows: it waits for a person, and the forbid on logs/secret/ does not
// touch it.
func slowAppReq() grants.RequestInput {
	return grants.RequestInput{Target: awsProd, Scope: []string{appLogs}, Duration: "30m", Reason: "a longer look at the app logs"}
}

// TestReloadForbidDeniesPending: a reload that adds a forbid matching a
// pending request denies it at once, recorded as a denial by the policy
// set at the request is (a grant.decided entry with the new decision,
// then grant.denied by "policy") with the forbid, the set's hash and the
// trigger. It leaves every approver's queue, its waiters hear, an
// approval is refused, and the rows derived from the log match the
// stored ones. A request the forbid does not match stays pending, and a
// second reload writes nothing. Before, the request stayed in the queue,
// looking approvable, until its deadline cancelled it.
func TestReloadForbidDeniesPending(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	forbidden := h.request(bot, humanReq("30m"), model.Pending)
	kept := h.request(bot, slowAppReq(), model.Pending)
	triggers := h.denialTriggers(forbidden.ID)
	waited := h.waitOn(bot, forbidden.ID)

	h.writePolicy("test.cedar", testPolicies+forbidLogSecrets)
	if err := h.Svc.ReloadPolicies(h.ctx, "SIGHUP"); err != nil {
		t.Fatal(err)
	}
	g := h.checkDeniedByLoad(forbidden.ID, "SIGHUP", "freeze-log-secrets")
	if !strings.Contains(g.EndComment, `forbidden by policy "freeze-log-secrets"`) {
		t.Errorf("after the forbid: %q", g.EndComment)
	}
	checkWaitDenied(t, waited)
	if got := triggers(); len(got) != 1 || got[0] != "SIGHUP" {
		t.Errorf("the denial's change was reported with triggers %q", got)
	}

	queue, err := h.pending(h.id(alice))
	if err != nil {
		t.Fatal(err)
	}
	if len(queue) != 1 || queue[0].ID != kept.ID {
		t.Errorf("alice's queue after the forbid holds %d requests, want only %s", len(queue), kept.ID)
	}
	if _, err := h.Svc.Approve(h.ctx, h.id(alice), forbidden.ID, "ok"); err == nil {
		t.Error("the denied request was approved")
	}
	if g := h.grant(kept.ID); g.Status != model.Pending {
		t.Errorf("a request the forbid does not match is %s", g.Status)
	}

	if err := h.Svc.ReloadPolicies(h.ctx, "SIGHUP"); err != nil {
		t.Fatal(err)
	}
	if n := len(h.entriesOfType("grant.denied")); n != 1 {
		t.Errorf("%d grant.denied entries after a second reload, want 1", n)
	}
	h.checkReview(t)
	h.finish()
}

// TestStartForbidDeniesPending: a forbid added while Airlock was stopped
// denies, at start, the requests still pending from before that it
// matches.
func TestStartForbidDeniesPending(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	forbidden := h.request(bot, humanReq("30m"), model.Pending)
	kept := h.request(bot, slowAppReq(), model.Pending)
	h.stop()
	h.writePolicy("test.cedar", testPolicies+forbidLogSecrets)
	h.start()
	g := h.grant(forbidden.ID)
	if g.Status != model.Denied || g.EndedBy != "policy" || !strings.Contains(g.EndComment, "at start") {
		t.Fatalf("after a start with the forbid: %s by %q: %q", g.Status, g.EndedBy, g.EndComment)
	}
	es := h.entriesOfType("grant.denied")
	if len(es) != 1 || entryData(t, es[0])["trigger"] != "start" {
		t.Errorf("%d grant.denied entries, want 1 with trigger start", len(es))
	}
	if g := h.grant(kept.ID); g.Status != model.Pending {
		t.Errorf("a request the forbid does not match is %s after the start", g.Status)
	}
	h.checkReview(t)
	h.finish()
}

// denialTriggers records the Trigger of each grant.denied change of grant
// id from now on, and returns a function that reads what it recorded.
func (h *harness) denialTriggers(id string) func() []string {
	var mu sync.Mutex
	var triggers []string
	h.Svc.OnChange(func(c grants.Change) {
		if c.Grant.ID == id && c.Type == "grant.denied" {
			mu.Lock()
			triggers = append(triggers, c.Trigger)
			mu.Unlock()
		}
	})
	return func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), triggers...)
	}
}

// waitOn has who wait for the decision on its request id (request
// --wait), and returns once the wait has begun; the channel gets what the
// wait returned.
func (h *harness) waitOn(who, id string) <-chan model.Grant {
	h.t.Helper()
	waited := make(chan model.Grant, 1)
	go func() {
		g, _ := h.Svc.Wait(h.ctx, h.id(who), id, time.Minute)
		waited <- g
	}()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if _, n := h.Svc.OpenWaits(); n == 1 {
			return waited
		}
		if time.Now().After(deadline) {
			h.t.Fatal("the requester's wait never started")
		}
	}
}

// checkWaitDenied checks that the wait of waitOn returned the request
// denied.
func checkWaitDenied(t *testing.T, waited <-chan model.Grant) {
	t.Helper()
	select {
	case w := <-waited:
		if w.Status != model.Denied {
			t.Errorf("the requester's wait returned %s", w.Status)
		}
	case <-time.After(10 * time.Second):
		t.Error("the requester's wait did not return on the denial")
	}
}

// checkDeniedByLoad checks that request id was denied by the policy set
// in force, loaded by trigger, which ids (none: nothing permits it any
// more) refuse it, as a denial by policy at the request is recorded: a
// new decision (outcome deny, ids, the set's hash) at the end's time,
// then the one grant.denied entry, by "policy", with ids, the hash and
// the trigger, and the comment that names the set and says no person
// denied it. It returns the request as stored.
func (h *harness) checkDeniedByLoad(id, trigger string, ids ...string) model.Grant {
	t := h.t
	t.Helper()
	hash := h.Pol.Current().Hash()
	g := h.grant(id)
	if g.Status != model.Denied || g.EndReason != "denied" || g.EndedBy != "policy" ||
		!strings.Contains(g.EndComment, hash) || !strings.HasSuffix(g.EndComment, "; no person denied it") {
		t.Fatalf("after the load: %s by %q (%s): %q", g.Status, g.EndedBy, g.EndReason, g.EndComment)
	}
	if d := g.Decision; d.Outcome != "deny" || !slices.Equal(d.PolicyIDs, ids) ||
		d.PolicySetHash != hash || !d.At.Equal(g.EndedAt) || !g.DecidedAt.Equal(g.EndedAt) {
		t.Errorf("decision %+v, decided %v, ended %v; want policies %q", d, g.DecidedAt, g.EndedAt, ids)
	}
	var denials []store.LogEntry
	for _, e := range h.entriesOfType("grant.denied") {
		if e.GrantID == id {
			denials = append(denials, e)
		}
	}
	if len(denials) != 1 {
		t.Fatalf("%d grant.denied entries for %s, want 1", len(denials), id)
	}
	d := entryData(t, denials[0])
	got, isList := d["policy_ids"].([]any)
	if !isList || fmt.Sprint(got) != fmt.Sprint(ids) || d["_actor"] != "policy" || d["by"] != "policy" ||
		d["policy_set_hash"] != hash || d["trigger"] != trigger || d["reason"] != g.EndComment {
		t.Errorf("grant.denied entry %v", d)
	}
	if types := h.types(id); count(types, "grant.decided") != 2 || types[len(types)-2] != "grant.decided" {
		t.Errorf("entries %v: want the new decision recorded before the denial", types)
	}
	return g
}
