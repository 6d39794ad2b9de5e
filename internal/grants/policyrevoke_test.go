package grants_test

import (
	"strings"
	"testing"

	"github.com/airlock-dev/airlock/internal/grants"
	"github.com/airlock-dev/airlock/internal/model"
)

// forbidProd is the forbid an operator adds during an incident on aws-prod.
const forbidProd = `
@id("incident-freeze-prod")
forbid (principal, action, resource == Target::"aws-prod");
`

// devReq asks for aws-dev, which sre-dev-anything grants at once.
func devReq() grants.RequestInput {
	return grants.RequestInput{Target: awsDev, Scope: []string{"s3:GetObject arn:aws:s3:::scratch/*"}, Duration: "10m", Reason: "try the fix on dev"}
}

// TestReloadForbidRevokesActive: a reload that adds a forbid matching an
// active grant revokes it at once, as a person's revoke does (its
// credential refused, its gateway grant done), recorded as a revocation
// by the policy set with the forbidding policy's id and the set's hash.
// A grant on another target is untouched, and reloading the same set
// again writes nothing more. Before, the grant ran on until it expired.
func TestReloadForbidRevokesActive(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	prod := h.request(bot, autoReq("10m"), model.Active)
	dev := h.request(bot, devReq(), model.Active)
	gg, err := h.Svc.Authority().Lookup(prod.CredentialID)
	if err != nil {
		t.Fatal(err)
	}

	h.writePolicy("test.cedar", testPolicies+forbidProd)
	if err := h.Svc.ReloadPolicies(h.ctx, "SIGHUP"); err != nil {
		t.Fatal(err)
	}
	hash := h.Pol.Current().Hash()
	g := h.grant(prod.ID)
	if g.Status != model.Revoked || g.EndReason != "revoked" || g.EndedBy != "policy" ||
		!strings.Contains(g.EndComment, `"incident-freeze-prod"`) || !strings.Contains(g.EndComment, hash) {
		t.Fatalf("after the forbid: %s by %q (%s): %q", g.Status, g.EndedBy, g.EndReason, g.EndComment)
	}
	if !isClosed(gg.Done()) {
		t.Error("the revoked grant's gateway sessions were not cut off")
	}
	if _, err := h.Svc.Authority().Lookup(prod.CredentialID); err == nil {
		t.Error("the revoked grant's credential still authenticates")
	}
	es := h.entriesOfType("grant.revoked")
	if len(es) != 1 || es[0].GrantID != prod.ID {
		t.Fatalf("%d grant.revoked entries", len(es))
	}
	d := entryData(t, es[0])
	ids, _ := d["policy_ids"].([]any)
	if d["_actor"] != "policy" || d["by"] != "policy" || len(ids) != 1 || ids[0] != "incident-freeze-prod" ||
		d["policy_set_hash"] != hash || d["trigger"] != "SIGHUP" {
		t.Errorf("grant.revoked entry %v", d)
	}
	if g := h.grant(dev.ID); g.Status != model.Active {
		t.Errorf("a grant on another target is %s after the forbid", g.Status)
	}
	if _, err := h.Svc.Authority().Lookup(dev.CredentialID); err != nil {
		t.Errorf("a grant on another target no longer authenticates: %v", err)
	}

	// Once revoked, a reload of the same set (another replica's, or a
	// retry) finds it ended and writes nothing.
	if err := h.Svc.ReloadPolicies(h.ctx, "SIGHUP"); err != nil {
		t.Fatal(err)
	}
	if n := len(h.entriesOfType("grant.revoked")); n != 1 {
		t.Errorf("%d grant.revoked entries after a second reload, want 1", n)
	}
	h.finish()
}

// TestReloadWithdrawnPermitKeepsActive: a reload that withdraws the
// permit an active grant was given under, with no forbid, leaves it
// active until it ends: narrowing a permit affects new requests only.
func TestReloadWithdrawnPermitKeepsActive(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	g := h.request(bot, autoReq("10m"), model.Active)
	withdrawn := strings.Replace(testPolicies, `@id("triage-reads-app-logs")
@approval("auto")
permit (principal in Group::"sre-team", action in [Action::"s3:GetObject", Action::"s3:ListBucket"], resource == Target::"aws-prod")
when { context.resource like "arn:aws:s3:::logs/app/*" && context.duration_seconds <= 900 };
`, "", 1)
	if withdrawn == testPolicies {
		t.Fatal("the test's policy edit did not apply")
	}
	h.writePolicy("test.cedar", withdrawn)
	if err := h.Svc.ReloadPolicies(h.ctx, "SIGHUP"); err != nil {
		t.Fatal(err)
	}
	if got := h.grant(g.ID); got.Status != model.Active {
		t.Fatalf("grant is %s after its permit was withdrawn, want still active", got.Status)
	}
	if _, err := h.Svc.Authority().Lookup(g.CredentialID); err != nil {
		t.Errorf("credential refused after a permit was withdrawn: %v", err)
	}
	if n := len(h.entriesOfType("grant.revoked")); n != 0 {
		t.Errorf("%d grant.revoked entries", n)
	}
	h.finish()
}

// TestStartForbidRevokesActive: a forbid added while Airlock was stopped
// revokes, at start, the grants still active from before that it matches.
func TestStartForbidRevokesActive(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	prod := h.request(bot, autoReq("10m"), model.Active)
	dev := h.request(bot, devReq(), model.Active)
	h.stop()
	h.writePolicy("test.cedar", testPolicies+forbidProd)
	h.start()
	g := h.grant(prod.ID)
	if g.Status != model.Revoked || g.EndedBy != "policy" || !strings.Contains(g.EndComment, "at start") {
		t.Fatalf("after a start with the forbid: %s by %q: %q", g.Status, g.EndedBy, g.EndComment)
	}
	if _, err := h.Svc.Authority().Lookup(prod.CredentialID); err == nil {
		t.Error("the revoked grant's credential authenticates after the start")
	}
	if g := h.grant(dev.ID); g.Status != model.Active {
		t.Errorf("a grant on another target is %s after the start", g.Status)
	}
	h.finish()
}

// TestReloadForbidOnPartRevokes: a forbid on a part of an active grant's
// scope (logs/app/secret/* of a grant on logs/app/*) revokes the grant,
// naming the forbid: the forbid matches part of what it grants, as a
// request for logs/app/* made now is refused, and the gateway checks calls
// against the granted scope alone, so the grant left active would read
// the secrets until it expired. A grant the forbid does not overlap
// (logs/app/2026/*) stays active.
func TestReloadForbidOnPartRevokes(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	wide := h.request(bot, autoReq("10m"), model.Active)
	narrow := h.request(bot, grants.RequestInput{Target: awsProd, Scope: []string{"s3:GetObject arn:aws:s3:::logs/app/2026/*"},
		Duration: "10m", Reason: "the day's api logs"}, model.Active)
	h.writePolicy("test.cedar", testPolicies+`
@id("freeze-app-secrets")
forbid (principal, action, resource) when { context.resource like "arn:aws:s3:::logs/app/secret/*" };
`)
	if err := h.Svc.ReloadPolicies(h.ctx, "SIGHUP"); err != nil {
		t.Fatal(err)
	}
	if g := h.grant(wide.ID); g.Status != model.Revoked || g.EndedBy != "policy" || !strings.Contains(g.EndComment, `"freeze-app-secrets"`) {
		t.Fatalf("the grant on logs/app/* after a forbid on logs/app/secret/*: %s by %q: %q", g.Status, g.EndedBy, g.EndComment)
	}
	if _, err := h.Svc.Authority().Lookup(wide.CredentialID); err == nil {
		t.Error("the revoked grant's credential still authenticates")
	}
	if g := h.grant(narrow.ID); g.Status != model.Active {
		t.Errorf("the grant on logs/app/2026/*, which the forbid does not overlap, is %s", g.Status)
	}
	h.finish()
}
