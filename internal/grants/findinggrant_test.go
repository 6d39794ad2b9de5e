package grants_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/grants"
	"github.com/airlock-dev/airlock/internal/model"
)

// A shared-identity finding raised by a plain API call of a second
// instance shows on the identity's open grants, active and pending, as
// DESIGN has findings "show on the grant in the review": it used to be
// recorded on no grant, so the review of the grant the first instance was
// using at that moment showed nothing. A grant already over does not get
// it, and an identity with no open grant gets it on no grant, once.
func TestSharedFindingOnOpenGrants(t *testing.T) {
	h := newHarness(t, harnessOptions{Manual: true, FindingsWindow: 10 * time.Minute})
	first := h.botFrom("10.0.0.1")
	if err := h.Svc.ObserveCall(h.ctx, first); err != nil {
		t.Fatal(err)
	}
	ended, err := h.Svc.Request(h.ctx, first, autoReq("15m"))
	if err != nil || ended.Status != model.Active {
		t.Fatalf("request: %v, %v", ended.Status, err)
	}
	if _, err := h.Svc.End(h.ctx, first, ended.ID, "done"); err != nil {
		t.Fatal(err)
	}
	active, err := h.Svc.Request(h.ctx, first, autoReq("15m"))
	if err != nil || active.Status != model.Active {
		t.Fatalf("request: %v, %v", active.Status, err)
	}
	pending, err := h.Svc.Request(h.ctx, first, humanReq("15m"))
	if err != nil || pending.Status != model.Pending {
		t.Fatalf("request: %v, %v", pending.Status, err)
	}

	if err := h.Svc.ObserveCall(h.ctx, h.botFrom("10.0.0.2")); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{active.ID, pending.ID} {
		fs := h.grant(id).Findings
		if len(fs) != 1 || fs[0].Kind != model.FindingSharedIdentity || fs[0].Grant != id || fs[0].Instance != "10.0.0.2" {
			t.Errorf("grant %s findings %+v, want the shared-identity finding of 10.0.0.2", id, fs)
		}
	}
	if fs := h.grant(ended.ID).Findings; len(fs) != 0 {
		t.Errorf("ended grant %s findings %+v, want none", ended.ID, fs)
	}
	got := map[string]bool{}
	for _, f := range h.sharedFindings() {
		got[f.Grant] = true
	}
	if len(got) != 2 || !got[active.ID] || !got[pending.ID] {
		t.Errorf("finding entries on grants %v, want one on each open grant", got)
	}

	// Once nothing is open, a new instance's finding is the identity's.
	if _, err := h.Svc.End(h.ctx, first, active.ID, "done"); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Svc.Deny(h.ctx, h.id(alice), pending.ID, "not needed"); err != nil {
		t.Fatal(err)
	}
	if err := h.Svc.ObserveCall(h.ctx, h.botFrom("10.0.0.3")); err != nil {
		t.Fatal(err)
	}
	var last []model.Finding
	for _, f := range h.sharedFindings() {
		if f.Instance == "10.0.0.3" {
			last = append(last, f)
		}
	}
	if len(last) != 1 || last[0].Grant != "" {
		t.Errorf("findings of 10.0.0.3 with no open grant: %+v, want one on no grant", last)
	}
}

// A grant's record holds at most grants.MaxGrantFindings findings: leaked
// credentials used from ever more addresses (each a credential-moved
// finding, refused or not) grew the grant's row by one each, the whole
// row rewritten every time. The rest are still in the log, naming the
// grant in their data, and listed by Findings; audit verify (at the
// harness's end) agrees with the record.
func TestGrantFindingsBounded(t *testing.T) {
	h := newHarness(t, harnessOptions{Manual: true, FindingsWindow: 10 * time.Minute})
	g, err := h.Svc.Request(h.ctx, h.botFrom("10.0.0.1"), autoReq("15m"))
	if err != nil || g.Status != model.Active {
		t.Fatalf("request: %v, %v", g.Status, err)
	}
	const n = grants.MaxGrantFindings + 10
	for i := range n {
		h.startSession(g, fmt.Sprintf("10.0.1.%d:4000 aws-cli/2", i)).End(h.ctx)
	}
	if got := h.grant(g.ID).Findings; len(got) != grants.MaxGrantFindings {
		t.Fatalf("the grant holds %d findings, want %d", len(got), grants.MaxGrantFindings)
	}
	page, err := h.Svc.Findings(h.ctx, h.id(alice), grants.FindingsQuery{Limit: grants.MaxFindingsPage})
	if err != nil || page.Next != 0 {
		t.Fatal(err, page.Next)
	}
	fs := page.Findings
	var moved, overflow int
	for _, f := range fs {
		if f.Kind == model.FindingCredentialMoved && f.Grant == g.ID {
			moved++
			if strings.Contains(f.Detail, "not added to the grant's record") {
				overflow++
			}
		}
	}
	if moved != n || overflow != n-grants.MaxGrantFindings {
		t.Fatalf("findings listed: %d credential-moved of %s (%d not on its record), want %d (%d)", moved, g.ID, overflow, n, n-grants.MaxGrantFindings)
	}
}
