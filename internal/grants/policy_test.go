package grants_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/airlock-dev/airlock/internal/grants"
	"github.com/airlock-dev/airlock/internal/model"
)

func TestReloadPolicies(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	old := h.Pol.Current().Hash()
	if es := h.entriesOfType("policy.loaded"); len(es) != 1 || entryData(t, es[0])["hash"] != old || entryData(t, es[0])["trigger"] != "start" {
		t.Fatalf("policy.loaded at start: %d entries", len(es))
	}
	pending := h.request(bot, humanReq("10m"), model.Pending)

	// A broken file: the old set stays in force, and the failure is logged.
	h.writePolicy("broken.cedar", "permit (principal, action, resource")
	if err := h.Svc.ReloadPolicies(h.ctx, "test"); err == nil {
		t.Fatal("a broken policy file loaded")
	}
	if h.Pol.Current().Hash() != old {
		t.Error("a failed reload replaced the policy set")
	}
	es := h.entriesOfType("policy.load_failed")
	if len(es) != 1 {
		t.Fatalf("%d policy.load_failed entries", len(es))
	}
	if d := entryData(t, es[0]); d["kept_hash"] != old || d["trigger"] != "test" || !strings.Contains(d["error"].(string), "broken.cedar") {
		t.Errorf("load_failed entry %v", d)
	}
	h.request(bot, humanReq("10m"), model.Pending) // decisions still use the old set

	// A policy naming an unknown target is refused the same way.
	h.writePolicy("broken.cedar", `permit (principal, action, resource == Target::"aws-nope");`)
	if err := h.Svc.ReloadPolicies(h.ctx, "test"); err == nil || h.Pol.Current().Hash() != old {
		t.Fatalf("a policy on an unknown target loaded: %v", err)
	}
	if err := os.Remove(filepath.Join(h.polDir, "broken.cedar")); err != nil {
		t.Fatal(err)
	}

	// Unchanged files: logged as loaded, not changed.
	if err := h.Svc.ReloadPolicies(h.ctx, "SIGHUP"); err != nil {
		t.Fatal(err)
	}
	es = h.entriesOfType("policy.loaded")
	if d := entryData(t, es[len(es)-1]); d["hash"] != old || d["changed"] != false || d["trigger"] != "SIGHUP" {
		t.Errorf("unchanged reload entry %v", d)
	}

	// A good change: logged with the new hash, and used from then on.
	h.writePolicy("test.cedar", strings.Replace(testPolicies, `@id("sre-reads-all-logs-with-approval")
@approval("human")`, `@id("sre-reads-all-logs-with-approval")
@approval("auto")`, 1))
	if err := h.Svc.ReloadPolicies(h.ctx, "test"); err != nil {
		t.Fatal(err)
	}
	cur := h.Pol.Current().Hash()
	if cur == old {
		t.Fatal("the hash did not change")
	}
	es = h.entriesOfType("policy.loaded")
	if d := entryData(t, es[len(es)-1]); d["hash"] != cur || d["changed"] != true || d["policies"] != float64(7) {
		t.Errorf("loaded entry %v", d)
	}
	g := h.request(bot, humanReq("10m"), model.Active)
	if g.Decision.PolicySetHash != cur {
		t.Errorf("decided under %s, want %s", g.Decision.PolicySetHash, cur)
	}
	// A request made under the old set, approved under the new one: each
	// decision names the set it was made in.
	a, err := h.Svc.Approve(h.ctx, h.id(alice), pending.ID, "")
	if err != nil {
		t.Fatal(err)
	}
	if a.Decision.PolicySetHash != old || a.Approvals[0].PolicySetHash != cur {
		t.Errorf("decision set %s, approval set %s", a.Decision.PolicySetHash, a.Approvals[0].PolicySetHash)
	}
	// After a restart the set in force is logged again.
	h.restart()
	es = h.entriesOfType("policy.loaded")
	if d := entryData(t, es[len(es)-1]); d["hash"] != cur || d["trigger"] != "start" {
		t.Errorf("loaded at restart %v", d)
	}
}

// TestApproveRefusedOnRemovedTarget: a pending request whose target was
// removed from the configuration (a restart) cannot be approved, even
// where policies that name no target would permit both the request and
// the approval: the grant would go active on a target nothing serves.
// Before, the decision read the missing target as an empty one, which
// such policies matched. The start denies it now (by "config"), whatever
// those policies permit.
func TestApproveRefusedOnRemovedTarget(t *testing.T) {
	h := newHarness(t, harnessOptions{Policies: testPolicies + `
@id("sre-select-anywhere")
@approval("human")
permit (principal in Group::"sre-team", action == Action::"pg:select", resource);

@id("leads-approve-anything")
permit (principal in Group::"sre-leads", action == Action::"approve", resource);
`})
	g := h.request(bot, grants.RequestInput{Target: ordersDB, Scope: []string{"pg:select orders.public.*"}, Duration: "10m", Reason: "count"}, model.Pending)
	h.opts.Targets = []grants.Target{testTargets[0], testTargets[1]} // orders-db removed
	h.restart()
	if st := h.grant(g.ID); st.Status != model.Denied || st.EndedBy != "config" {
		t.Fatalf("after the start without its target: %s by %q, want denied by config", st.Status, st.EndedBy)
	}
	if _, err := h.Svc.Approve(h.ctx, h.id(alice), g.ID, "ok"); err == nil {
		t.Fatal("a request on a removed target was approved")
	}
	if st := h.grant(g.ID); st.Status != model.Denied {
		t.Fatalf("grant is %s after the approval, want still denied", st.Status)
	}
}
