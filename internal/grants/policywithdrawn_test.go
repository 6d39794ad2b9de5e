package grants_test

import (
	"strings"
	"testing"

	"github.com/airlock-dev/airlock/internal/grants"
	"github.com/airlock-dev/airlock/internal/model"
)

// withdrawnPolicies are testPolicies with the permit on logs/* (what
// humanReq asks for, with a person's approval) removed, and the leads'
// permit on audit/* turned @approval("auto"): no forbid anywhere.
func withdrawnPolicies(t testing.TB) string {
	t.Helper()
	out := strings.Replace(testPolicies, `@id("sre-reads-all-logs-with-approval")
@approval("human")
permit (principal in Group::"sre-team", action in [Action::"s3:GetObject", Action::"s3:ListBucket"], resource == Target::"aws-prod")
when { context.resource like "arn:aws:s3:::logs/*" && context.duration_seconds <= 3600 };
`, "", 1)
	out2 := strings.Replace(out, `@id("leads-read-audit")
@approval("human")`, `@id("leads-read-audit")
@approval("auto")`, 1)
	if out == testPolicies || out2 == out {
		t.Fatal("the test's policy edit did not apply")
	}
	return out2
}

// carolAudit is carol's request for audit/*, which waits for a person
// under testPolicies and is approved at once under withdrawnPolicies.
func carolAudit() grants.RequestInput {
	return grants.RequestInput{Target: awsProd, Scope: []string{auditLog}, Duration: "20m", Reason: "audit the audit"}
}

// TestReloadWithdrawnPermitDeniesPending: a reload that withdraws the
// permit a pending request relied on, with no forbid, denies it at once,
// as a forbid loaded since does (TestReloadForbidDeniesPending): a second
// grant.decided (outcome deny, no policy ids, the new set's hash), then
// grant.denied by "policy" with an empty policy_ids, the set's hash and
// the trigger, and a comment saying that no policy permits it any more.
// Its waiter hears, it leaves the approvers' queue, an approval is
// refused, the rows derived from the log match the stored ones. Before,
// it stayed in the queue, looking approvable to approvers who could not
// approve it, until its deadline cancelled it.
//
// A request whose permit turned @approval("auto") is left for a person:
// still pending, its decision as made, and approved by a person under the
// new set. A second reload writes nothing.
func TestReloadWithdrawnPermitDeniesPending(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	withdrawn := h.request(bot, humanReq("30m"), model.Pending)
	nowAuto := h.request(carol, carolAudit(), model.Pending)
	oldHash := h.Pol.Current().Hash()
	triggers := h.denialTriggers(withdrawn.ID)
	waited := h.waitOn(bot, withdrawn.ID)

	h.writePolicy("test.cedar", withdrawnPolicies(t))
	if err := h.Svc.ReloadPolicies(h.ctx, "SIGHUP"); err != nil {
		t.Fatal(err)
	}
	hash := h.Pol.Current().Hash()
	g := h.checkDeniedByLoad(withdrawn.ID, "SIGHUP")
	if want := "no longer permitted by policy set " + hash + ", loaded on SIGHUP: no policy permits s3:GetObject on arn:aws:s3:::logs/*"; !strings.HasPrefix(g.EndComment, want) {
		t.Errorf("the denial's comment %q, want it to begin %q", g.EndComment, want)
	}
	if !strings.Contains(g.Decision.Explanation, "no policy permits") {
		t.Errorf("the new decision's explanation %q", g.Decision.Explanation)
	}
	checkWaitDenied(t, waited)
	if got := triggers(); len(got) != 1 || got[0] != "SIGHUP" {
		t.Errorf("the denial's change was reported with triggers %q", got)
	}
	if _, err := h.Svc.Approve(h.ctx, h.id(alice), withdrawn.ID, "ok"); err == nil {
		t.Error("the denied request was approved")
	}

	// Now permitted with @approval("auto"): left for a person.
	if a := h.grant(nowAuto.ID); a.Status != model.Pending || a.Decision.Outcome != "human" || a.Decision.PolicySetHash != oldHash {
		t.Fatalf("the request the new set would auto-approve: %s, decision %s under %s", a.Status, a.Decision.Outcome, a.Decision.PolicySetHash)
	}
	queue, err := h.pending(h.id(alice))
	if err != nil {
		t.Fatal(err)
	}
	if len(queue) != 1 || queue[0].ID != nowAuto.ID {
		t.Errorf("alice's queue after the reload holds %d requests, want only %s", len(queue), nowAuto.ID)
	}
	if err := h.Svc.ReloadPolicies(h.ctx, "SIGHUP"); err != nil {
		t.Fatal(err)
	}
	if n := len(h.entriesOfType("grant.denied")); n != 1 {
		t.Errorf("%d grant.denied entries after a second reload, want 1", n)
	}
	if a := h.grant(nowAuto.ID); a.Status != model.Pending {
		t.Fatalf("after a second reload the request the new set would auto-approve is %s", a.Status)
	}
	a, err := h.Svc.Approve(h.ctx, h.id(alice), nowAuto.ID, "ok")
	if err != nil || a.Status != model.Active || a.Approvals[0].PolicySetHash != hash {
		t.Fatalf("a person's approval under the new set: %v (%s)", err, a.Status)
	}
	h.checkReview(t)
	h.finish()
}

// TestStartWithdrawnPermitDeniesPending: a permit withdrawn while Airlock
// was stopped denies, at start, the requests still pending from before
// that nothing permits any more.
func TestStartWithdrawnPermitDeniesPending(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	withdrawn := h.request(bot, humanReq("30m"), model.Pending)
	nowAuto := h.request(carol, carolAudit(), model.Pending)
	h.stop()
	h.writePolicy("test.cedar", withdrawnPolicies(t))
	h.start()
	g := h.grant(withdrawn.ID)
	if g.Status != model.Denied || g.EndedBy != "policy" || !strings.Contains(g.EndComment, "loaded at start: no policy permits") {
		t.Fatalf("after a start without the permit: %s by %q: %q", g.Status, g.EndedBy, g.EndComment)
	}
	es := h.entriesOfType("grant.denied")
	if len(es) != 1 || entryData(t, es[0])["trigger"] != "start" {
		t.Errorf("%d grant.denied entries, want 1 with trigger start", len(es))
	}
	if g := h.grant(nowAuto.ID); g.Status != model.Pending {
		t.Errorf("the request the new set would auto-approve is %s after the start", g.Status)
	}
	h.checkReview(t)
	h.finish()
}
