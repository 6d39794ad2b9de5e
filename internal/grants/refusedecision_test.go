package grants_test

import (
	"net/http"
	"reflect"
	"testing"

	"github.com/airlock-dev/airlock/internal/apierr"
	"github.com/airlock-dev/airlock/internal/grants"
	"github.com/airlock-dev/airlock/internal/model"
)

// A decision the service refuses to a caller of the API or the console
// is recorded in the log: who tried what on which grant, through which
// channel, and why. Only Slack's refused clicks were (integration.refused,
// written by internal/notify); the same person approving their own
// request with airlock approve left nothing in the log.
func TestRefusedDecisionsAreRecorded(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	g := h.request(bot, humanReq("10m"), model.Pending)
	own := h.request(alice, grants.RequestInput{Target: awsProd, Scope: []string{auditLog}, Duration: "10m", Reason: "audit"}, model.Pending)

	// Not permitted by any approve policy (bob), through the API.
	_, err := h.Svc.Approve(h.ctx, h.id(bob), g.ID, "")
	wantAPIErr(t, err, http.StatusForbidden, apierr.CodeForbidden, "")
	// Their own request, from the console.
	_, err = h.Svc.Approve(grants.WithChannel(h.ctx, "console", ""), h.id(alice), own.ID, "")
	wantAPIErr(t, err, http.StatusForbidden, apierr.CodeSelfApproval, "")
	// An agent's key.
	_, err = h.Svc.Deny(h.ctx, h.id(bot2), g.ID, "no")
	wantAPIErr(t, err, http.StatusForbidden, apierr.CodeForbidden, "")
	// Slack's refusals are recorded by the Slack handler, not here too.
	_, err = h.Svc.Approve(grants.WithChannel(h.ctx, "slack", "U024BE7LH"), h.id(bob), g.ID, "")
	wantAPIErr(t, err, http.StatusForbidden, apierr.CodeForbidden, "")
	// A text the service refuses is no decision: not recorded.
	_, err = h.Svc.Deny(h.ctx, h.id(carol), g.ID, "")
	wantAPIErr(t, err, http.StatusBadRequest, "", "reason")
	// Decided already: a second approver's late click is a race, which
	// the grant's own entries explain; not recorded.
	if _, err := h.Svc.Approve(h.ctx, h.id(carol), g.ID, "ok"); err != nil {
		t.Fatal(err)
	}
	_, err = h.Svc.Deny(h.ctx, h.id(alice), g.ID, "too late")
	wantAPIErr(t, err, http.StatusConflict, apierr.CodeConflict, "")
	// Revoking is deciding too.
	_, err = h.Svc.Revoke(h.ctx, h.id(bob), g.ID, "suspicious")
	wantAPIErr(t, err, http.StatusForbidden, apierr.CodeForbidden, "")

	type rec struct{ actor, grant, action, via, code string }
	want := []rec{
		{bob, g.ID, "approve", "api", apierr.CodeForbidden},
		{alice, own.ID, "approve", "console", apierr.CodeSelfApproval},
		{bot2, g.ID, "deny", "api", apierr.CodeForbidden},
		{bob, g.ID, "revoke", "api", apierr.CodeForbidden},
	}
	es := h.entriesOfType(grants.RefusedDecisionType)
	if len(es) != len(want) {
		t.Fatalf("%d %s entries, want %d", len(es), grants.RefusedDecisionType, len(want))
	}
	for i, e := range es {
		d := entryData(t, e)
		got := rec{d["_actor"].(string), e.GrantID, d["action"].(string), d["via"].(string), d["code"].(string)}
		if got != want[i] {
			t.Errorf("entry %d: %+v, want %+v", i, got, want[i])
		}
		if r, _ := d["reason"].(string); r == "" {
			t.Errorf("entry %d has no reason: %v", i, d)
		}
	}
	// The grant's record is what the decisions made it, and the log
	// still derives it (finish verifies the log and the review).
	if got := h.grant(g.ID); got.Status != model.Active || len(got.Approvals) != 1 || got.Approvals[0].Approver != carol {
		t.Fatalf("grant after the refusals: %s, approvals %+v", got.Status, got.Approvals)
	}
}

// A refused decision records the caller's credential as decisions record
// it (model.SignIn): {"method":"api_key","key_id":…} for an API key,
// {"method":"sso","issuer":…,"subject":…} for an SSO console session, and
// {"method":"oidc",…} for an agent's workload token. It recorded the old
// string of Identity.Auth ("key", "oidc:<issuer> <subject>"), and nothing
// for the console, whose callers carry none.
func TestRefusedDecisionRecordsSignIn(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	g := h.request(bot, humanReq("10m"), model.Pending)
	own := h.request(alice, grants.RequestInput{Target: awsProd, Scope: []string{auditLog}, Duration: "10m", Reason: "audit"}, model.Pending)

	// As httpapi.authenticate and the console's decider set them.
	withKey := h.id(bob)
	withKey.Auth, withKey.SignIn = "key", &model.SignIn{Method: model.SignInAPIKey, KeyID: "k_0123456789abcdef"}
	_, err := h.Svc.Approve(h.ctx, withKey, g.ID, "")
	wantAPIErr(t, err, http.StatusForbidden, apierr.CodeForbidden, "")
	withSSO := h.id(alice)
	withSSO.SignIn = &model.SignIn{Method: model.SignInSSO, Issuer: "https://login.example.com", Subject: "alice-sub"}
	_, err = h.Svc.Approve(grants.WithChannel(h.ctx, "console", ""), withSSO, own.ID, "")
	wantAPIErr(t, err, http.StatusForbidden, apierr.CodeSelfApproval, "")
	withToken := h.id(bot2)
	withToken.Auth = "oidc:https://token.example.com repo:acme/triage"
	withToken.SignIn = &model.SignIn{Method: model.SignInOIDC, Issuer: "https://token.example.com", Subject: "repo:acme/triage"}
	_, err = h.Svc.Deny(h.ctx, withToken, g.ID, "no")
	wantAPIErr(t, err, http.StatusForbidden, apierr.CodeForbidden, "")
	// Go code's caller carries none: none is recorded.
	_, err = h.Svc.Approve(h.ctx, h.id(bob), g.ID, "")
	wantAPIErr(t, err, http.StatusForbidden, apierr.CodeForbidden, "")

	want := []map[string]any{
		{"method": "api_key", "key_id": "k_0123456789abcdef"},
		{"method": "sso", "issuer": "https://login.example.com", "subject": "alice-sub"},
		{"method": "oidc", "issuer": "https://token.example.com", "subject": "repo:acme/triage"},
		nil,
	}
	es := h.entriesOfType(grants.RefusedDecisionType)
	if len(es) != len(want) {
		t.Fatalf("%d %s entries, want %d", len(es), grants.RefusedDecisionType, len(want))
	}
	for i, e := range es {
		d := entryData(t, e)
		got, has := d["auth"]
		switch {
		case want[i] == nil && has:
			t.Errorf("entry %d: auth %#v, want none", i, got)
		case want[i] != nil && !reflect.DeepEqual(got, want[i]):
			t.Errorf("entry %d: auth %#v, want %#v", i, got, want[i])
		}
	}
}
