package grants_test

import (
	"sync"
	"testing"

	"github.com/airlock-dev/airlock/internal/grants"
	"github.com/airlock-dev/airlock/internal/model"
)

// reloadBeforeWrite makes the next request's write wait for a SIGHUP
// load of policy text, sweep included, run after its decision: the
// request decided under the set before is recorded after the sweep
// listed the pending requests and active grants.
func (h *harness) reloadBeforeWrite(text string) {
	var once sync.Once
	grants.SetBeforeRequestWrite(h.Svc, func() {
		once.Do(func() {
			h.writePolicy("test.cedar", text)
			if err := h.Svc.ReloadPolicies(h.ctx, "SIGHUP"); err != nil {
				h.t.Error(err)
			}
		})
	})
}

// TestRequestWrittenAfterLoadSweep: a request decided under the old
// policy set and recorded after a load's sweep listed the open grants is
// ended as the sweep would have ended it: a pending request the new set
// no longer permits is denied by policy (trigger SIGHUP). Before, it
// stayed pending (its approval refused, denied only at the next load).
func TestRequestWrittenAfterLoadSweep(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	h.reloadBeforeWrite(withdrawnPolicies(t))
	g, err := h.Svc.Request(h.ctx, h.id(bot), humanReq("30m"))
	if err != nil {
		t.Fatal(err)
	}
	if g.Status != model.Denied {
		t.Errorf("the request answered %s, want denied", g.Status)
	}
	h.checkDeniedByLoad(g.ID, "SIGHUP")
	h.checkReview(t)
	h.finish()
}

// TestAutoGrantWrittenAfterLoadSweep: the same for a grant the old set
// approved at once and a forbid in the new set matches: revoked by
// policy, trigger SIGHUP. Before, it stayed active.
func TestAutoGrantWrittenAfterLoadSweep(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	h.reloadBeforeWrite(testPolicies + forbidProd)
	a, err := h.Svc.Request(h.ctx, h.id(bot), autoReq("10m"))
	if err != nil {
		t.Fatal(err)
	}
	st := h.grant(a.ID)
	if a.Status != model.Revoked || st.Status != model.Revoked || st.EndedBy != "policy" {
		t.Errorf("the auto-approved grant: answered %s, stored %s by %q: %q", a.Status, st.Status, st.EndedBy, st.EndComment)
	}
	if es := h.entriesOfType("grant.revoked"); len(es) != 1 || entryData(t, es[0])["trigger"] != "SIGHUP" {
		t.Errorf("%d grant.revoked entries, want 1 with trigger SIGHUP", len(es))
	}
	h.checkReview(t)
	h.finish()
}
