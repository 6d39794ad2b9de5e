package grants_test

import (
	"strings"
	"testing"

	"github.com/airlock-dev/airlock/internal/grants"
	"github.com/airlock-dev/airlock/internal/model"
)

// ordersSelect asks for what sre-select-orders permits with a person's
// approval, which only dbas-approve-orders lets anyone give: to dave.
func ordersSelect() grants.RequestInput {
	return grants.RequestInput{Target: ordersDB, Scope: []string{"pg:select orders.public.*"}, Duration: "20m", Reason: "count orders"}
}

// noDBAPolicies are testPolicies without dbas-approve-orders: nobody may
// approve a request on orders-db.
func noDBAPolicies(t testing.TB) string {
	t.Helper()
	out := strings.Replace(testPolicies, `@id("dbas-approve-orders")
permit (principal in Group::"dbas", action == Action::"approve", resource == Target::"orders-db");
`, "", 1)
	if out == testPolicies {
		t.Fatal("the test's policy edit did not apply")
	}
	return out
}

// TestRequestNobodyMayApproveDenied: a request that waits for a person,
// when no approve policy lets any configured person (other than its
// requester) approve it, is denied by policy at once, its decision saying
// so. Before, it stayed pending in nobody's queue and its requester
// waited for the deadline. One that a person may approve still waits.
func TestRequestNobodyMayApproveDenied(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{Policies: noDBAPolicies(t)})
	g := h.request(bot, ordersSelect(), model.Denied)
	const why = "no policy lets anyone approve this request: it waits for a person's approval (policy sre-select-orders), and no approve policy permits any configured person other than triage-bot to approve it on target orders-db"
	if g.Decision.Outcome != "deny" || g.Decision.Explanation != why || g.EndedBy != "policy" || g.EndComment != why || len(g.Decision.PolicyIDs) != 0 {
		t.Errorf("the request nobody may approve: decision %s (%v) %q, ended by %q: %q", g.Decision.Outcome, g.Decision.PolicyIDs, g.Decision.Explanation, g.EndedBy, g.EndComment)
	}
	h.request(bot, humanReq("20m"), model.Pending)
	// carol may not approve her own request; alice, of sre-leads too, may.
	h.request(carol, carolAudit(), model.Pending)
	h.checkReview(t)
	h.finish()
}

// TestReloadWithoutApproverDeniesPending: a reload that takes away the
// only approve policy covering a pending request denies it (by policy,
// the comment saying nobody may approve it), as one it no longer permits
// is; it leaves the approvers' queue and its waiter hears. Before, it
// stayed pending in nobody's queue until its deadline.
func TestReloadWithoutApproverDeniesPending(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	g := h.request(bot, humanReq("20m"), model.Pending)
	waited := h.waitOn(bot, g.ID)
	out := strings.Replace(testPolicies, `@id("leads-approve-sre-agents")
permit (principal in Group::"sre-leads", action == Action::"approve", resource == Target::"aws-prod");
`, "", 1)
	if out == testPolicies {
		t.Fatal("the test's policy edit did not apply")
	}
	h.writePolicy("test.cedar", out)
	if err := h.Svc.ReloadPolicies(h.ctx, "SIGHUP"); err != nil {
		t.Fatal(err)
	}
	d := h.checkDeniedByLoad(g.ID, "SIGHUP")
	if !strings.Contains(d.EndComment, "loaded on SIGHUP: no policy lets anyone approve this request") {
		t.Errorf("the denial's comment %q", d.EndComment)
	}
	checkWaitDenied(t, waited)
	h.checkReview(t)
	h.finish()
}
