package grants_test

import (
	"bytes"
	"context"
	"errors"
	"math"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/apierr"
	"github.com/airlock-dev/airlock/internal/gateway"
	"github.com/airlock-dev/airlock/internal/grants"
	"github.com/airlock-dev/airlock/internal/model"
	"github.com/airlock-dev/airlock/internal/review"
	"github.com/airlock-dev/airlock/internal/store"
)

func TestAutoApproval(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	before := time.Now().UTC()
	g := h.request(bot, autoReq("10m"), model.Active)
	rec := h.grant(g.ID)

	if !strings.HasPrefix(rec.ID, "g_") || rec.ID != g.ID {
		t.Errorf("id %q (returned %q)", rec.ID, g.ID)
	}
	if rec.Status != model.Active || rec.Identity != bot || rec.IdentityKind != model.Agent || rec.Owner != "sre-team" ||
		rec.Target != awsProd || rec.TargetKind != "aws" || rec.Account != account {
		t.Errorf("who/what: %+v", rec)
	}
	if got := rec.GrantedScope.Strings(); !slices.Equal(got, []string{appLogs}) {
		t.Errorf("granted scope %v", got)
	}
	if got := rec.RequestedScope.Strings(); !slices.Equal(got, []string{appLogs}) {
		t.Errorf("requested scope %v", got)
	}
	if rec.Duration != 10*time.Minute || rec.Reason != "triage checkout errors" {
		t.Errorf("duration %v reason %q", rec.Duration, rec.Reason)
	}
	if rec.StartedAt.Before(before) || !rec.StartedAt.Equal(rec.RequestedAt) || !rec.DecidedAt.Equal(rec.StartedAt) {
		t.Errorf("times: requested %v decided %v started %v (test began %v)", rec.RequestedAt, rec.DecidedAt, rec.StartedAt, before)
	}
	if !rec.ExpiresAt.Equal(rec.StartedAt.Add(rec.Duration)) || !g.ExpiresAt.Equal(rec.ExpiresAt) {
		t.Errorf("expires %v, want started %v + %v (returned %v)", rec.ExpiresAt, rec.StartedAt, rec.Duration, g.ExpiresAt)
	}
	if !rec.EndedAt.IsZero() || rec.EndReason != "" || len(rec.Approvals) != 0 {
		t.Errorf("an active grant has end/approvals: %+v", rec)
	}
	if !strings.HasPrefix(rec.CredentialID, "AKAL") || len(rec.CredentialID) != 20 || rec.CredentialID != g.CredentialID {
		t.Errorf("credential id %q", rec.CredentialID)
	}
	if !strings.HasPrefix(rec.CredentialFingerprint, "sha256:") {
		t.Errorf("fingerprint %q", rec.CredentialFingerprint)
	}
	d := rec.Decision
	if d.Outcome != "auto" || !slices.Equal(d.PolicyIDs, []string{"triage-reads-app-logs"}) || d.PolicySetHash != h.Pol.Current().Hash() || !d.At.Equal(rec.RequestedAt) {
		t.Errorf("decision %+v", d)
	}

	if got := h.types(g.ID); !slices.Equal(got, []string{"grant.requested", "grant.decided", "grant.activated"}) {
		t.Errorf("log %v", got)
	}
	act := entryData(t, h.entries(g.ID)[2])
	if act["credential_id"] != rec.CredentialID || !entryTime(t, act, "expires_at").Equal(rec.ExpiresAt) || act["_actor"] != "policy" {
		t.Errorf("activated entry %v", act)
	}

	c := h.creds(bot, g.ID)
	if c.AccessKeyID != rec.CredentialID || c.Fingerprint != rec.CredentialFingerprint || !c.Expiration.Equal(rec.ExpiresAt) ||
		len(c.SecretAccessKey) != 40 || c.Target != awsProd || c.TargetKind != "aws" {
		t.Errorf("credentials %+v", c)
	}
	if got := h.types(g.ID); got[len(got)-1] != "grant.credentials_issued" {
		t.Errorf("credential issue not logged: %v", got)
	}
	if strings.Contains(string(h.entries(g.ID)[3].Data), c.SecretAccessKey) {
		t.Error("the secret is in the log")
	}
	// Fetched again after a while: the same (derived) secret.
	if c2 := h.creds(bot, g.ID); c2.SecretAccessKey != c.SecretAccessKey {
		t.Error("the secret changed between fetches")
	}

	gg, err := h.Svc.Authority().Authenticate(c.AccessKeyID, c.SecretAccessKey)
	if err != nil {
		t.Fatalf("authenticate: %v", err)
	}
	if gg.ID != g.ID || gg.Identity != bot || gg.Target != awsProd || gg.Account != account || !gg.ExpiresAt.Equal(rec.ExpiresAt) || gg.Secret != c.SecretAccessKey {
		t.Errorf("gateway grant %+v", gg.Info)
	}
	if l, err := h.Svc.Authority().Lookup(c.AccessKeyID); err != nil || l != gg {
		t.Errorf("lookup: %v %v", l, err)
	}
	now := time.Now()
	for _, tc := range []struct {
		action, resource string
		want             bool
	}{
		{"s3:GetObject", "arn:aws:s3:::logs/app/2026/api.log", true},
		{"s3:ListBucket", "arn:aws:s3:::logs/app/", true},
		{"s3:GetObject", "arn:aws:s3:::logs/billing/invoices.csv", false},
		{"s3:GetObject", "arn:aws:s3:::logs/ap", false},
		{"s3:PutObject", "arn:aws:s3:::logs/app/x", false},
	} {
		if got := gg.Allows(now, tc.action, tc.resource); got != tc.want {
			t.Errorf("Allows(%s %s) = %v", tc.action, tc.resource, got)
		}
	}
	for _, bad := range []struct{ id, secret string }{
		{c.AccessKeyID, strings.Repeat("x", 40)},
		{c.AccessKeyID, ""},
		{c.AccessKeyID, c.SecretAccessKey[:39]},
		{"AKALAAAAAAAAAAAAAAAA", c.SecretAccessKey},
		{"", ""},
	} {
		if _, err := h.Svc.Authority().Authenticate(bad.id, bad.secret); !errors.Is(err, gateway.ErrNoGrant) {
			t.Errorf("Authenticate(%q, %q) = %v, want ErrNoGrant", bad.id, bad.secret, err)
		}
	}
	if _, err := h.Svc.Authority().Lookup("AKALAAAAAAAAAAAAAAAA"); !errors.Is(err, gateway.ErrNoGrant) {
		t.Errorf("lookup of an unknown id: %v", err)
	}

	// Credentials and reads belong to the holder; others see "not found".
	for _, who := range []string{bot2, alice} {
		_, err := h.Svc.Credentials(h.ctx, h.id(who), g.ID)
		wantAPIErr(t, err, 404, apierr.CodeNotFound, "")
	}
	if _, err := h.Svc.Get(h.ctx, h.id(bot2), g.ID); err == nil {
		t.Error("another agent can read the grant")
	}
	if got, err := h.Svc.Get(h.ctx, h.id(bob), g.ID); err != nil || got.ID != g.ID {
		t.Errorf("a person reads it: %v", err)
	}
	if page, err := h.Svc.List(h.ctx, h.id(bot2), grants.GrantsQuery{}); err != nil || len(page.Grants) != 0 {
		t.Errorf("another agent's list: %d %v", len(page.Grants), err)
	}
	_, err = h.Svc.List(h.ctx, h.id(bot2), grants.GrantsQuery{Filter: store.GrantFilter{Identity: bot}})
	wantAPIErr(t, err, 403, "", "")
	if page, err := h.Svc.List(h.ctx, h.id(bot), grants.GrantsQuery{Filter: store.GrantFilter{Account: account}}); err != nil || len(page.Grants) != 1 {
		t.Errorf("own list: %d %v", len(page.Grants), err)
	}
	// Wait on an already decided grant returns at once.
	if w, err := h.Svc.Wait(h.ctx, h.id(bot), g.ID, time.Second); err != nil || w.Status != model.Active {
		t.Errorf("wait: %v %v", w.Status, err)
	}
}

func TestHumanApproval(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	g := h.request(bot, humanReq("30m"), model.Pending)
	if !g.DecideBy.Equal(g.RequestedAt.Add(10*time.Minute)) || g.CredentialID != "" || !g.ExpiresAt.IsZero() || len(g.GrantedScope) != 0 {
		t.Errorf("pending grant %+v", g)
	}
	if g.Decision.Outcome != "human" || !slices.Equal(g.Decision.PolicyIDs, []string{"sre-reads-all-logs-with-approval"}) {
		t.Errorf("decision %+v", g.Decision)
	}
	if got := h.types(g.ID); !slices.Equal(got, []string{"grant.requested", "grant.decided"}) {
		t.Errorf("log %v", got)
	}
	_, err := h.Svc.Credentials(h.ctx, h.id(bot), g.ID)
	wantAPIErr(t, err, 409, apierr.CodeConflict, "")

	// A person's own request, and one on a target alice may not approve.
	own := h.request(alice, grants.RequestInput{Target: awsProd, Scope: []string{auditLog}, Duration: "20m", Reason: "audit the audit"}, model.Pending)
	db := h.request(bot, grants.RequestInput{Target: ordersDB, Scope: []string{"pg:select orders.public.*"}, Duration: "20m", Reason: "count orders"}, model.Pending)

	ids := func(gs []model.Grant) []string {
		var out []string
		for _, g := range gs {
			out = append(out, g.ID)
		}
		slices.Sort(out)
		return out
	}
	sorted := func(v ...string) []string { slices.Sort(v); return v }
	if p, err := h.pending(h.id(alice)); err != nil || !slices.Equal(ids(p), []string{g.ID}) {
		t.Errorf("alice's queue %v %v, want only %s", ids(p), err, g.ID)
	}
	if p, err := h.pending(h.id(carol)); err != nil || !slices.Equal(ids(p), sorted(g.ID, own.ID)) {
		t.Errorf("carol's queue %v %v", ids(p), err)
	}
	if p, err := h.pending(h.id(bob)); err != nil || len(p) != 0 {
		t.Errorf("bob's queue %v %v", ids(p), err)
	}
	_, err = h.pending(h.id(bot))
	wantAPIErr(t, err, 403, "", "")

	size, n := h.logSize(), h.grantCount()
	_, err = h.Svc.Approve(h.ctx, h.id(bot), g.ID, "looks fine to me")
	wantAPIErr(t, err, 403, apierr.CodeForbidden, "")
	_, err = h.Svc.Approve(h.ctx, h.id(bot2), g.ID, "")
	wantAPIErr(t, err, 403, apierr.CodeForbidden, "")
	_, err = h.Svc.Approve(h.ctx, h.id(bob), g.ID, "")
	wantAPIErr(t, err, 403, apierr.CodeForbidden, "")
	_, err = h.Svc.Approve(h.ctx, h.id(alice), own.ID, "")
	wantAPIErr(t, err, 403, apierr.CodeSelfApproval, "")
	_, err = h.Svc.Deny(h.ctx, h.id(alice), own.ID, "changed my mind")
	wantAPIErr(t, err, 403, apierr.CodeSelfApproval, "")
	_, err = h.Svc.Approve(h.ctx, h.id(alice), db.ID, "")
	wantAPIErr(t, err, 403, apierr.CodeForbidden, "")
	_, err = h.Svc.Approve(h.ctx, h.id(alice), "g_doesnotexist", "")
	wantAPIErr(t, err, 404, apierr.CodeNotFound, "")
	_, err = h.Svc.Approve(h.ctx, h.id(alice), g.ID, "bad\x00comment")
	wantAPIErr(t, err, 400, apierr.CodeInvalid, "comment")
	// Each attempt of a caller to decide what they must not is recorded
	// (six: the agents, bob, alice's own twice, alice on orders-db); an
	// unknown grant or a bad comment is no such attempt.
	if h.logSize() != size+6 || h.grantCount() != n || len(h.entriesOfType(grants.RefusedDecisionType)) != 6 {
		t.Errorf("refused approvals: log %d → %d, %d %s entries, want 6 more and as many refusals; or the grants changed",
			size, h.logSize(), len(h.entriesOfType(grants.RefusedDecisionType)), grants.RefusedDecisionType)
	}
	if got := h.grant(g.ID); got.Status != model.Pending || len(got.Approvals) != 0 {
		t.Errorf("after refused approvals: %s %v", got.Status, got.Approvals)
	}

	a, err := h.Svc.Approve(h.ctx, h.id(alice), g.ID, "ok for the incident")
	if err != nil {
		t.Fatal(err)
	}
	rec := h.grant(g.ID)
	if rec.Status != model.Active || a.Status != model.Active || a.CredentialID != rec.CredentialID || rec.CredentialID == "" {
		t.Fatalf("after approval: %s / %s", rec.Status, a.Status)
	}
	if len(rec.Approvals) != 1 {
		t.Fatalf("approvals %v", rec.Approvals)
	}
	ap := rec.Approvals[0]
	if ap.Approver != alice || ap.Decision != "approved" || ap.Comment != "ok for the incident" ||
		!slices.Equal(ap.Policies, []string{"leads-approve-sre-agents"}) || ap.PolicySetHash != h.Pol.Current().Hash() {
		t.Errorf("approval %+v", ap)
	}
	if !ap.At.Equal(rec.DecidedAt) || !rec.StartedAt.Equal(rec.DecidedAt) || !rec.ExpiresAt.Equal(rec.StartedAt.Add(30*time.Minute)) || rec.StartedAt.Before(rec.RequestedAt) {
		t.Errorf("times: requested %v decided %v started %v expires %v", rec.RequestedAt, rec.DecidedAt, rec.StartedAt, rec.ExpiresAt)
	}
	if got := rec.GrantedScope.Strings(); !slices.Equal(got, []string{allLogs}) {
		t.Errorf("granted %v", got)
	}
	es := h.entries(g.ID)
	refused := grants.RefusedDecisionType
	if got := h.types(g.ID); !slices.Equal(got, []string{"grant.requested", "grant.decided", refused, refused, refused, "grant.approved", "grant.activated"}) {
		t.Errorf("log %v", got)
	}
	if d := entryData(t, es[5]); d["_actor"] != alice || d["approver"] != alice || d["comment"] != "ok for the incident" {
		t.Errorf("approved entry %v", d)
	}
	c := h.creds(bot, g.ID)
	if gg, err := h.Svc.Authority().Authenticate(c.AccessKeyID, c.SecretAccessKey); err != nil || !gg.Allows(time.Now(), "s3:GetObject", "arn:aws:s3:::logs/billing/x") {
		t.Errorf("approved grant does not authenticate/allow: %v", err)
	}
	if w, err := h.Svc.Wait(h.ctx, h.id(bot), g.ID, time.Second); err != nil || w.Status != model.Active {
		t.Errorf("wait: %s %v", w.Status, err)
	}

	_, err = h.Svc.Approve(h.ctx, h.id(carol), g.ID, "")
	wantAPIErr(t, err, 409, apierr.CodeConflict, "")
	if p, _ := h.pending(h.id(alice)); len(p) != 0 {
		t.Errorf("alice's queue after approving: %v", ids(p))
	}

	// carol may approve alice's own request.
	if a, err := h.Svc.Approve(h.ctx, h.id(carol), own.ID, ""); err != nil || a.Status != model.Active || a.Approvals[0].Approver != carol {
		t.Errorf("carol approving alice's request: %v", err)
	}
}

// TestWaitWakesOnDecision: a waiting requester returns as soon as the grant is decided.
func TestWaitWakesOnDecision(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	g := h.request(bot, humanReq("10m"), model.Pending)
	done := make(chan model.Grant, 1)
	go func() {
		w, _ := h.Svc.Wait(h.ctx, h.id(bot), g.ID, 10*time.Second)
		done <- w
	}()
	time.Sleep(20 * time.Millisecond)
	if _, err := h.Svc.Approve(h.ctx, h.id(alice), g.ID, ""); err != nil {
		t.Fatal(err)
	}
	select {
	case w := <-done:
		if w.Status != model.Active {
			t.Errorf("wait returned %s", w.Status)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("wait did not wake on approval")
	}
	// A wait that times out returns the grant still pending.
	p := h.request(bot, humanReq("10m"), model.Pending)
	if w, err := h.Svc.Wait(h.ctx, h.id(bot), p.ID, 30*time.Millisecond); err != nil || w.Status != model.Pending {
		t.Errorf("timed-out wait: %s %v", w.Status, err)
	}
	// Even when the wait ends before the grant could be read.
	if w, err := h.Svc.Wait(h.ctx, h.id(bot), p.ID, time.Nanosecond); err != nil || w.Status != model.Pending || w.ID != p.ID {
		t.Errorf("wait of 1ns: %q %s %v", w.ID, w.Status, err)
	}
	// Another agent cannot wait on (and so probe) it.
	_, err := h.Svc.Wait(h.ctx, h.id(bot2), p.ID, 30*time.Millisecond)
	wantAPIErr(t, err, 404, apierr.CodeNotFound, "")
}

func TestDeny(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	g := h.request(bot, humanReq("10m"), model.Pending)
	size := h.logSize()
	_, err := h.Svc.Deny(h.ctx, h.id(alice), g.ID, "  ")
	wantAPIErr(t, err, 400, apierr.CodeInvalid, "reason")
	_, err = h.Svc.Deny(h.ctx, h.id(bob), g.ID, "no")
	wantAPIErr(t, err, 403, apierr.CodeForbidden, "")
	_, err = h.Svc.Deny(h.ctx, h.id(bot), g.ID, "no")
	wantAPIErr(t, err, 403, apierr.CodeForbidden, "")
	if h.logSize() != size+2 {
		t.Errorf("refused denials: log %d → %d, want the two callers' refusals recorded", size, h.logSize())
	}
	d, err := h.Svc.Deny(h.ctx, h.id(alice), g.ID, "too broad; ask for logs/app")
	if err != nil {
		t.Fatal(err)
	}
	rec := h.grant(g.ID)
	if rec.Status != model.Denied || d.Status != model.Denied || rec.EndReason != "denied" || rec.EndedBy != alice ||
		rec.EndComment != "too broad; ask for logs/app" || !rec.EndedAt.Equal(rec.DecidedAt) || rec.DecidedAt.Before(rec.RequestedAt) {
		t.Errorf("denied record %+v", rec)
	}
	if len(rec.Approvals) != 1 || rec.Approvals[0].Decision != "denied" || rec.Approvals[0].Approver != alice || rec.CredentialID != "" {
		t.Errorf("approvals %+v cred %q", rec.Approvals, rec.CredentialID)
	}
	if got := h.types(g.ID); !slices.Equal(got, []string{"grant.requested", "grant.decided", grants.RefusedDecisionType, grants.RefusedDecisionType, "grant.denied"}) {
		t.Errorf("log %v", got)
	}
	_, err = h.Svc.Approve(h.ctx, h.id(carol), g.ID, "")
	wantAPIErr(t, err, 409, apierr.CodeConflict, "")
	_, err = h.Svc.Deny(h.ctx, h.id(carol), g.ID, "again")
	wantAPIErr(t, err, 409, apierr.CodeConflict, "")
	// Denying an active grant is a conflict: revoke it instead.
	a := h.request(bot, autoReq("10m"), model.Active)
	_, err = h.Svc.Deny(h.ctx, h.id(alice), a.ID, "no")
	wantAPIErr(t, err, 409, apierr.CodeConflict, "")

	// Policy denial: recorded, with the policy as the decider.
	p := h.request(bot, grants.RequestInput{Target: awsProd, Scope: []string{billing}, Duration: "5m", Reason: "peek"}, model.Denied)
	rec = h.grant(p.ID)
	if rec.EndedBy != "policy" || rec.EndReason != "denied" || rec.Decision.Outcome != "deny" || rec.EndComment == "" || !rec.EndedAt.Equal(rec.RequestedAt) {
		t.Errorf("policy-denied record %+v", rec)
	}
	if got := h.types(p.ID); !slices.Equal(got, []string{"grant.requested", "grant.decided", "grant.denied"}) {
		t.Errorf("log %v", got)
	}
	// Over the policy's duration limit for auto, within the human one.
	if g := h.request(bot, autoReq("20m"), model.Pending); g.Decision.Outcome != "human" {
		t.Errorf("20m on logs/app: %s", g.Decision.Outcome)
	}
}

func TestRevoke(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	g := h.request(bot, autoReq("10m"), model.Active)
	c := h.creds(bot, g.ID)
	gg, err := h.Svc.Authority().Authenticate(c.AccessKeyID, c.SecretAccessKey)
	if err != nil {
		t.Fatal(err)
	}
	pend := h.request(bot, humanReq("10m"), model.Pending)
	size := h.logSize()
	_, err = h.Svc.Revoke(h.ctx, h.id(alice), g.ID, "")
	wantAPIErr(t, err, 400, apierr.CodeInvalid, "reason")
	_, err = h.Svc.Revoke(h.ctx, h.id(bob), g.ID, "suspicious")
	wantAPIErr(t, err, 403, apierr.CodeForbidden, "")
	_, err = h.Svc.Revoke(h.ctx, h.id(bot), g.ID, "suspicious")
	wantAPIErr(t, err, 403, apierr.CodeForbidden, "")
	_, err = h.Svc.Revoke(h.ctx, h.id(alice), pend.ID, "suspicious")
	wantAPIErr(t, err, 409, apierr.CodeConflict, "")
	_, err = h.Svc.Revoke(h.ctx, h.id(alice), "g_nope", "suspicious")
	wantAPIErr(t, err, 404, apierr.CodeNotFound, "")
	// Only bob's and the agent's attempts are recorded.
	if h.logSize() != size+2 || isClosed(gg.Done()) {
		t.Fatal("a refused revoke changed something")
	}
	if _, err := h.Svc.Authority().Authenticate(c.AccessKeyID, c.SecretAccessKey); err != nil {
		t.Fatal("a refused revoke cut the grant off")
	}

	before := time.Now().UTC()
	r, err := h.Svc.Revoke(h.ctx, h.id(alice), g.ID, "incident closed")
	if err != nil {
		t.Fatal(err)
	}
	rec := h.grant(g.ID)
	if rec.Status != model.Revoked || r.Status != model.Revoked || rec.EndReason != "revoked" || rec.EndedBy != alice ||
		rec.EndComment != "incident closed" || rec.EndedAt.Before(before) || !rec.EndedAt.Before(rec.ExpiresAt) {
		t.Errorf("revoked record %+v", rec)
	}
	if !isClosed(gg.Done()) || gg.EndReason() != "revoked" || gg.Live(time.Now()) {
		t.Error("the gateway grant is still live")
	}
	if _, err := h.Svc.Authority().Authenticate(c.AccessKeyID, c.SecretAccessKey); !errors.Is(err, gateway.ErrNoGrant) {
		t.Errorf("revoked credentials: %v", err)
	}
	_, err = h.Svc.Credentials(h.ctx, h.id(bot), g.ID)
	wantAPIErr(t, err, 409, apierr.CodeConflict, "")
	if got := h.types(g.ID); count(got, "grant.revoked") != 1 || got[len(got)-1] != "grant.revoked" {
		t.Errorf("log %v", got)
	}
	e := entryData(t, h.entries(g.ID)[len(h.entries(g.ID))-1])
	if e["_actor"] != alice || e["reason"] != "incident closed" || !entryTime(t, e, "at").Equal(rec.EndedAt) {
		t.Errorf("revoked entry %v", e)
	}
	_, err = h.Svc.Revoke(h.ctx, h.id(carol), g.ID, "again")
	wantAPIErr(t, err, 409, apierr.CodeConflict, "")
	if got := h.types(g.ID); count(got, "grant.revoked") != 1 {
		t.Errorf("log %v", got)
	}
}

func TestEnd(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	g := h.request(bot, autoReq("10m"), model.Active)
	c := h.creds(bot, g.ID)
	gg, _ := h.Svc.Authority().Authenticate(c.AccessKeyID, c.SecretAccessKey)
	size := h.logSize()
	// Another agent is told the grant does not exist (ids cannot be probed);
	// a person, who may see every grant, is told it is not theirs.
	_, err0 := h.Svc.End(h.ctx, h.id(bot2), g.ID, "")
	wantAPIErr(t, err0, 404, apierr.CodeNotFound, "")
	_, err0 = h.Svc.End(h.ctx, h.id(alice), g.ID, "")
	wantAPIErr(t, err0, 403, apierr.CodeForbidden, "")
	_, err := h.Svc.End(h.ctx, h.id(bot), "g_nope", "")
	wantAPIErr(t, err, 404, apierr.CodeNotFound, "")
	if h.logSize() != size || isClosed(gg.Done()) {
		t.Fatal("a refused end changed something")
	}

	e, err := h.Svc.End(h.ctx, h.id(bot), g.ID, "task finished")
	if err != nil {
		t.Fatal(err)
	}
	rec := h.grant(g.ID)
	if e.Status != model.Ended || rec.Status != model.Ended || rec.EndReason != "ended" || rec.EndedBy != bot || rec.EndComment != "task finished" || rec.EndedAt.IsZero() {
		t.Errorf("ended record %+v", rec)
	}
	if !isClosed(gg.Done()) || gg.EndReason() != "ended" {
		t.Error("gateway grant still live")
	}
	if _, err := h.Svc.Authority().Lookup(c.AccessKeyID); !errors.Is(err, gateway.ErrNoGrant) {
		t.Errorf("ended credentials: %v", err)
	}
	if got := h.types(g.ID); got[len(got)-1] != "grant.ended" || count(got, "grant.ended") != 1 {
		t.Errorf("log %v", got)
	}
	_, err = h.Svc.End(h.ctx, h.id(bot), g.ID, "")
	wantAPIErr(t, err, 409, apierr.CodeConflict, "")

	p := h.request(bot, humanReq("10m"), model.Pending)
	cx, err := h.Svc.End(h.ctx, h.id(bot), p.ID, "")
	if err != nil {
		t.Fatal(err)
	}
	rec = h.grant(p.ID)
	if cx.Status != model.Cancelled || rec.Status != model.Cancelled || rec.EndReason != "cancelled" || rec.EndedBy != bot || rec.EndComment != "withdrawn by the requester" {
		t.Errorf("withdrawn record %+v", rec)
	}
	if got := h.types(p.ID); !slices.Equal(got, []string{"grant.requested", "grant.decided", "grant.cancelled"}) {
		t.Errorf("log %v", got)
	}
	_, err = h.Svc.Approve(h.ctx, h.id(alice), p.ID, "")
	wantAPIErr(t, err, 409, apierr.CodeConflict, "")
}

func TestExpiry(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	g := h.request(bot, autoReq("2s"), model.Active)
	if !g.ExpiresAt.Equal(g.StartedAt.Add(2 * time.Second)) {
		t.Fatalf("expires %v, started %v", g.ExpiresAt, g.StartedAt)
	}
	c := h.creds(bot, g.ID)
	gg, err := h.Svc.Authority().Authenticate(c.AccessKeyID, c.SecretAccessKey)
	if err != nil {
		t.Fatal(err)
	}

	// Look at the instants around ExpiresAt without waiting for the timer:
	// the cached grant checks the clock itself.
	h.clock.Freeze(g.ExpiresAt.Add(-time.Nanosecond))
	if _, err := h.Svc.Authority().Authenticate(c.AccessKeyID, c.SecretAccessKey); err != nil {
		t.Errorf("1ns before expiry: %v", err)
	}
	h.clock.Freeze(g.ExpiresAt)
	timerPending := time.Now().Before(g.ExpiresAt.Add(-50 * time.Millisecond))
	if _, err := h.Svc.Authority().Authenticate(c.AccessKeyID, c.SecretAccessKey); !errors.Is(err, gateway.ErrNoGrant) {
		t.Errorf("at expiry: Authenticate = %v", err)
	}
	if _, err := h.Svc.Authority().Lookup(c.AccessKeyID); !errors.Is(err, gateway.ErrNoGrant) {
		t.Errorf("at expiry: Lookup = %v", err)
	}
	_, err = h.Svc.Credentials(h.ctx, h.id(bot), g.ID)
	wantAPIErr(t, err, 409, apierr.CodeConflict, "")
	if gg.Allows(g.ExpiresAt, "s3:GetObject", "arn:aws:s3:::logs/app/x") || !gg.Allows(g.ExpiresAt.Add(-1), "s3:GetObject", "arn:aws:s3:::logs/app/x") {
		t.Error("Allows does not cut off at ExpiresAt")
	}
	if timerPending && isClosed(gg.Done()) {
		t.Error("Done closed before the expiry time")
	}
	h.clock.Unfreeze()

	waitClosed(t, gg.Done(), 5*time.Second, "Done")
	if now := time.Now(); now.Before(g.ExpiresAt) {
		t.Errorf("Done closed at %v, before expiry %v", now, g.ExpiresAt)
	}
	if gg.EndReason() != "expired" {
		t.Errorf("gateway end reason %q", gg.EndReason())
	}
	rec := h.waitStatus(g.ID, model.Expired, 5*time.Second)
	if !rec.EndedAt.Equal(g.ExpiresAt) || rec.EndReason != "expired" || rec.EndedBy != "airlock" {
		t.Errorf("expired record: ended %v (expires %v) reason %q by %q", rec.EndedAt, g.ExpiresAt, rec.EndReason, rec.EndedBy)
	}
	if _, err := h.Svc.Authority().Authenticate(c.AccessKeyID, c.SecretAccessKey); !errors.Is(err, gateway.ErrNoGrant) {
		t.Errorf("after expiry: %v", err)
	}
	types := h.types(g.ID)
	if count(types, "grant.expired") != 1 || types[len(types)-1] != "grant.expired" {
		t.Fatalf("log %v", types)
	}
	es := h.entries(g.ID)
	d := entryData(t, es[len(es)-1])
	if !entryTime(t, d, "at").Equal(g.ExpiresAt) || d["_actor"] != "airlock" || d["status"] != "expired" {
		t.Errorf("expired entry %v", d)
	}
	if es[len(es)-1].Time.Before(g.ExpiresAt) {
		t.Errorf("expiry logged at %v, before %v", es[len(es)-1].Time, g.ExpiresAt)
	}
	// Ending or revoking an expired grant is a conflict and logs nothing.
	size := h.logSize()
	_, err = h.Svc.End(h.ctx, h.id(bot), g.ID, "")
	wantAPIErr(t, err, 409, apierr.CodeConflict, "")
	_, err = h.Svc.Revoke(h.ctx, h.id(alice), g.ID, "late")
	wantAPIErr(t, err, 409, apierr.CodeConflict, "")
	if h.logSize() != size {
		t.Error("a refused change was logged")
	}
	if msgs := h.errs.list(); len(msgs) != 0 {
		t.Errorf("errors logged: %v", msgs)
	}
}

func TestPendingTimeout(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{PendingTimeout: time.Second})
	g := h.request(bot, humanReq("10m"), model.Pending)
	if !g.DecideBy.Equal(g.RequestedAt.Add(time.Second)) {
		t.Fatalf("decide by %v, requested %v", g.DecideBy, g.RequestedAt)
	}
	// At the deadline (before the timer runs), approval is refused; the
	// lapse is recorded as it really happened, and no approval is.
	h.clock.Freeze(g.DecideBy)
	_, err := h.Svc.Approve(h.ctx, h.id(alice), g.ID, "")
	wantAPIErr(t, err, 409, apierr.CodeConflict, "")
	if types := h.types(g.ID); slices.Contains(types, "grant.approved") || !slices.Contains(types, "grant.cancelled") {
		t.Errorf("after a late approval: log %v", types)
	}
	h.clock.Unfreeze()

	w, err := h.Svc.Wait(h.ctx, h.id(bot), g.ID, 5*time.Second)
	if err != nil || w.Status != model.Cancelled {
		t.Fatalf("wait: %s %v", w.Status, err)
	}
	rec := h.grant(g.ID)
	if rec.Status != model.Cancelled || !rec.EndedAt.Equal(g.DecideBy) || rec.EndReason != "cancelled" || rec.EndedBy != "airlock" || rec.CredentialID != "" {
		t.Errorf("cancelled record: ended %v (decide by %v) %q by %q", rec.EndedAt, g.DecideBy, rec.EndReason, rec.EndedBy)
	}
	types := h.types(g.ID)
	if !slices.Equal(types, []string{"grant.requested", "grant.decided", "grant.cancelled"}) {
		t.Errorf("log %v", types)
	}
	es := h.entries(g.ID)
	if d := entryData(t, es[2]); !entryTime(t, d, "at").Equal(g.DecideBy) || d["_actor"] != "airlock" {
		t.Errorf("cancelled entry %v", d)
	}
	_, err = h.Svc.Approve(h.ctx, h.id(alice), g.ID, "")
	wantAPIErr(t, err, 409, apierr.CodeConflict, "")
	_, err = h.Svc.Deny(h.ctx, h.id(alice), g.ID, "too late anyway")
	wantAPIErr(t, err, 409, apierr.CodeConflict, "")
	if msgs := h.errs.list(); len(msgs) != 0 {
		t.Errorf("errors logged: %v", msgs)
	}
}

// TestApprovalJustBeforeDeadline: an approval 1ns before the deadline
// stands; the cancel timer is disarmed and does not touch the active grant,
// which expires on time.
func TestApprovalJustBeforeDeadline(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{PendingTimeout: 2 * time.Second, Manual: true})
	g := h.request(bot, humanReq("3s"), model.Pending)
	h.fake.Set(g.DecideBy.Add(-time.Nanosecond))
	a, err := h.Svc.Approve(h.ctx, h.id(alice), g.ID, "")
	if err != nil || a.Status != model.Active {
		t.Fatalf("approval 1ns before the deadline: %v", err)
	}
	if !a.StartedAt.Equal(g.DecideBy.Add(-time.Nanosecond)) || !a.ExpiresAt.Equal(a.StartedAt.Add(3*time.Second)) {
		t.Errorf("started %v expires %v", a.StartedAt, a.ExpiresAt)
	}
	// Past the deadline: had the cancel timer stayed armed, it runs here.
	h.fake.Set(g.DecideBy.Add(100 * time.Millisecond))
	if rec := h.grant(g.ID); rec.Status != model.Active {
		t.Errorf("after the deadline the approved grant is %s", rec.Status)
	}
	// The expiry timer runs synchronously when the clock reaches it.
	h.fake.Set(a.ExpiresAt)
	rec := h.grant(g.ID)
	if rec.Status != model.Expired || !rec.EndedAt.Equal(a.ExpiresAt) {
		t.Errorf("at expiry: %s ended %v, expires %v", rec.Status, rec.EndedAt, a.ExpiresAt)
	}
	if types := h.types(g.ID); count(types, "grant.cancelled") != 0 || count(types, "grant.expired") != 1 {
		t.Errorf("log %v", types)
	}
	if msgs := h.errs.list(); len(msgs) != 0 {
		t.Errorf("errors logged: %v", msgs)
	}
}

// TestApprovalRacingCancelTimer is the deterministic version of "the
// decision deadline passes while an approval commits": the approval reads
// the clock before the deadline, the cancel timer fires while the approval
// holds the grant's lock, and runs once the approval has committed. The
// grant must then stay active and expire on time: the late cancel must not
// disarm the expiry timer the approval armed.
func TestApprovalRacingCancelTimer(t *testing.T) {
	t.Parallel()
	// The approval's commit (a write transaction on the log's store) stalls
	// on demand: entering tells the test, release lets it go on.
	var stall atomic.Bool
	entered, release := make(chan struct{}), make(chan struct{})
	h := newHarness(t, harnessOptions{PendingTimeout: 2 * time.Second, Manual: true,
		LogStore: func(st store.Store) store.Store {
			return stallingStore{Store: st, stall: &stall, entered: entered, release: release}
		}})
	g := h.request(bot, humanReq("2s"), model.Pending)

	h.fake.Set(g.DecideBy.Add(-time.Millisecond))
	stall.Store(true)
	approved := make(chan error, 1)
	var a model.Grant
	go func() {
		var err error
		a, err = h.Svc.Approve(h.ctx, h.id(alice), g.ID, "")
		approved <- err
	}()
	// The approval has read the clock, holds the grant's lock and is
	// committing. Now the deadline passes: the cancel timer fires and must
	// wait for the grant.
	<-entered
	fired := make(chan struct{})
	go func() {
		h.fake.Set(g.DecideBy.Add(100 * time.Millisecond))
		close(fired)
	}()
	close(release)
	if err := <-approved; err != nil {
		t.Fatalf("approve: %v", err)
	}
	<-fired // the late cancel has run
	if a.Status != model.Active {
		t.Fatalf("approved grant is %s", a.Status)
	}
	if rec := h.grant(g.ID); rec.Status != model.Active {
		t.Fatalf("after the late cancel the grant is %s", rec.Status)
	}
	h.fake.Set(a.ExpiresAt)
	rec := h.grant(g.ID)
	if rec.Status != model.Expired || !rec.EndedAt.Equal(a.ExpiresAt) {
		t.Errorf("at expiry: %s ended %v, expires %v", rec.Status, rec.EndedAt, a.ExpiresAt)
	}
	if got := h.types(g.ID); count(got, "grant.cancelled") != 0 || count(got, "grant.expired") != 1 {
		t.Errorf("log %v", got)
	}
}

// stallingStore holds the first write transaction begun while stall is
// set until release is closed, telling entered when it arrives.
type stallingStore struct {
	store.Store
	stall   *atomic.Bool
	entered chan struct{}
	release chan struct{}
}

func (s stallingStore) Begin(ctx context.Context) (store.Tx, error) {
	if s.stall.CompareAndSwap(true, false) {
		close(s.entered)
		<-s.release
	}
	return s.Store.Begin(ctx)
}

// TestLateEndRecordsTrueLapse: a revoke, end or denial that comes after the
// grant lapsed on its own, but before its timer ran, records the lapse at
// its true time rather than a revoke/end/denial after the fact.
func TestLateEndRecordsTrueLapse(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	type op struct {
		name string
		do   func(id string) (model.Grant, error)
	}
	onActive := []op{
		{"revoke", func(id string) (model.Grant, error) { return h.Svc.Revoke(h.ctx, h.id(alice), id, "late") }},
		{"end", func(id string) (model.Grant, error) { return h.Svc.End(h.ctx, h.id(bot), id, "") }},
	}
	for _, o := range onActive {
		g := h.request(bot, autoReq("10m"), model.Active)
		gg, err := h.Svc.Authority().Lookup(g.CredentialID)
		if err != nil {
			t.Fatal(err)
		}
		h.clock.Freeze(g.ExpiresAt.Add(time.Millisecond))
		_, err = o.do(g.ID)
		h.clock.Unfreeze()
		wantAPIErr(t, err, 409, apierr.CodeConflict, "")
		rec := h.grant(g.ID)
		if rec.Status != model.Expired || !rec.EndedAt.Equal(g.ExpiresAt) || rec.EndedBy != "airlock" || gg.EndReason() != "expired" || !isClosed(gg.Done()) {
			t.Errorf("%s after expiry: %s at %v by %q (expires %v), gateway %q", o.name, rec.Status, rec.EndedAt, rec.EndedBy, g.ExpiresAt, gg.EndReason())
		}
		if types := h.types(g.ID); !slices.Equal(types, []string{"grant.requested", "grant.decided", "grant.activated", "grant.expired"}) {
			t.Errorf("%s after expiry: log %v", o.name, types)
		}
	}
	onPending := []op{
		{"deny", func(id string) (model.Grant, error) { return h.Svc.Deny(h.ctx, h.id(alice), id, "late") }},
		{"end", func(id string) (model.Grant, error) { return h.Svc.End(h.ctx, h.id(bot), id, "") }},
		{"approve", func(id string) (model.Grant, error) { return h.Svc.Approve(h.ctx, h.id(alice), id, "") }},
	}
	for _, o := range onPending {
		g := h.request(bot, humanReq("10m"), model.Pending)
		h.clock.Freeze(g.DecideBy)
		_, err := o.do(g.ID)
		h.clock.Unfreeze()
		wantAPIErr(t, err, 409, apierr.CodeConflict, "")
		rec := h.grant(g.ID)
		// Whichever call comes late, the record says what really happened:
		// cancelled at the deadline by airlock, with no approval on it.
		if rec.Status != model.Cancelled || !rec.EndedAt.Equal(g.DecideBy) || rec.EndedBy != "airlock" || len(rec.Approvals) != 0 {
			t.Errorf("%s after the deadline: %s at %v by %q (deadline %v)", o.name, rec.Status, rec.EndedAt, rec.EndedBy, g.DecideBy)
		}
		if types := h.types(g.ID); !slices.Equal(types, []string{"grant.requested", "grant.decided", "grant.cancelled"}) {
			t.Errorf("%s after the deadline: log %v", o.name, types)
		}
	}
	// Disabling an agent whose grant just lapsed records the lapse too.
	g := h.request(bot2, autoReq("10m"), model.Active)
	h.clock.Freeze(g.ExpiresAt)
	_, err := h.Svc.DisableAgent(h.ctx, h.id(alice), bot2, "retired")
	h.clock.Unfreeze()
	if err != nil {
		t.Fatal(err)
	}
	if rec := h.grant(g.ID); rec.Status != model.Expired || !rec.EndedAt.Equal(g.ExpiresAt) {
		t.Errorf("disable after expiry: %s at %v", rec.Status, rec.EndedAt)
	}
	if msgs := h.errs.list(); len(msgs) != 0 {
		t.Errorf("errors logged: %v", msgs)
	}
}

// TestAgentsCannotProbeGrantIDs: an agent gets the same answer for another
// agent's grant as for a grant that does not exist.
func TestAgentsCannotProbeGrantIDs(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	g := h.request(bot, autoReq("10m"), model.Active)
	for _, id := range []string{g.ID, "g_doesnotexist00000000"} {
		for _, verb := range []string{"approve", "deny", "revoke"} {
			var err error
			switch verb {
			case "approve":
				_, err = h.Svc.Approve(h.ctx, h.id(bot2), id, "")
			case "deny":
				_, err = h.Svc.Deny(h.ctx, h.id(bot2), id, "r")
			case "revoke":
				_, err = h.Svc.Revoke(h.ctx, h.id(bot2), id, "r")
			}
			wantAPIErr(t, err, 403, apierr.CodeForbidden, "")
		}
		_, err := h.Svc.End(h.ctx, h.id(bot2), id, "")
		wantAPIErr(t, err, 404, apierr.CodeNotFound, "")
		_, err = h.Svc.Request(h.ctx, h.id(bot2), grants.RequestInput{Target: "aws-prod", Scope: []string{"s3:GetObject arn:aws:s3:::logs/app/x"}, Duration: "1m", Reason: "r", Extends: id})
		ae := wantAPIErr(t, err, 400, apierr.CodeInvalid, "extends")
		if !strings.Contains(ae.Message, "no grant") {
			t.Errorf("extends %s: %q", id, ae.Message)
		}
	}
}

// TestDisabledCallerCannotRequest: an identity disabled after it
// authenticated (the caller value is stale) gets no grant.
func TestDisabledCallerCannotRequest(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	stale := h.id(bot2)
	if _, err := h.Svc.DisableAgent(h.ctx, h.id(alice), bot2, "retired"); err != nil {
		t.Fatal(err)
	}
	size := h.logSize()
	_, err := h.Svc.Request(h.ctx, stale, autoReq("10m"))
	wantAPIErr(t, err, 403, apierr.CodeForbidden, "")
	if h.logSize() != size {
		t.Fatal("a disabled caller's request was recorded")
	}
}

// TestApproveHoldsTheCap: grants.max_duration is a hard cap on any grant.
// A request made under a higher cap, still pending when Airlock restarts
// with a lower one, cannot be approved past the new cap: the start denies
// it (by "config"), and an approval is refused.
func TestApproveHoldsTheCap(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{MaxDuration: time.Hour})
	g := h.request(bot, humanReq("50m"), model.Pending)
	h.opts.MaxDuration = 30 * time.Minute
	h.restart()
	if got := h.grant(g.ID); got.Status != model.Denied || got.EndedBy != "config" {
		t.Fatalf("after the start with a lower cap: %s by %q, want denied by config", got.Status, got.EndedBy)
	}
	_, err := h.Svc.Approve(h.ctx, h.id(alice), g.ID, "ok")
	wantAPIErr(t, err, 409, apierr.CodeConflict, "")
	if got := h.grant(g.ID); got.Status != model.Denied {
		t.Errorf("after the refused approval: %s, expires %s", got.Status, got.ExpiresAt)
	}
}

// TestClockStepForwardEndsGrants: the machine's clock steps forward past
// a grant's expiry (one process, no database clock). The grant is refused
// calls from then on, by the clock; its timer, which runs for a duration,
// would end it (closing Done, which cuts its open sessions and transfers)
// only when the step's worth of time had passed too. The step is found at
// the next clock check, and the grant ends then, recorded at its expiry.
func TestClockStepForwardEndsGrants(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{ClockCheck: 20 * time.Millisecond})
	g := h.request(bot, autoReq("10m"), model.Active)
	c := h.creds(bot, g.ID)
	gg, err := h.Svc.Authority().Authenticate(c.AccessKeyID, c.SecretAccessKey)
	if err != nil {
		t.Fatal(err)
	}
	h.clock.Advance(time.Until(g.ExpiresAt) + time.Minute) // the step; timers run on real time
	if gg.Live(h.clock.Now()) {
		t.Fatal("the grant is live past its expiry by the clock")
	}
	waitClosed(t, gg.Done(), 5*time.Second, "Done of a grant the clock stepped past")
	rec := h.waitStatus(g.ID, model.Expired, 5*time.Second)
	if !rec.EndedAt.Equal(g.ExpiresAt) || rec.EndedBy != "airlock" {
		t.Errorf("ended %v by %q, expires %v", rec.EndedAt, rec.EndedBy, g.ExpiresAt)
	}
}

// TestClockStepBackRecordsRealEnd: the machine's clock steps back while a
// grant is active (one process, no database clock). Its timer counts
// elapsed time, so it cuts the grant off after its duration, when the
// clock reads the step short of the expiry; the record said it ended at
// its expiry, a time the clock had not reached, after the entries written
// later. It now ends at the clock's reading, and says why; never before
// the grant started (a step longer than the time since the start), so the
// record still ends after it begins. A request nobody decides is
// cancelled so too, never before it was made. The review's check of the
// records against the log finds nothing.
func TestClockStepBackRecordsRealEnd(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name string
		step time.Duration
	}{
		{"a step within the grant", 4 * time.Minute},
		{"a step past its start", time.Hour},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, harnessOptions{Manual: true, Stepped: true})
			g := h.request(bot, autoReq("10m"), model.Active)
			p := h.request(bot, humanReq("10m"), model.Pending)
			gg := h.Svc.Authority().Grant(g.ID)
			if gg == nil {
				t.Fatal("the grant is not in memory")
			}
			h.stepped.step.Store(int64(-c.step))
			h.fake.Advance(p.DecideBy.Sub(h.fake.Now())) // every timer's time has passed
			if !isClosed(gg.Done()) {
				t.Fatal("the grant was not cut off after its duration")
			}
			for _, tc := range []struct {
				id         string
				status     model.GrantStatus
				due, floor time.Time
			}{
				{g.ID, model.Expired, g.ExpiresAt, g.StartedAt},
				{p.ID, model.Cancelled, p.DecideBy, p.RequestedAt},
			} {
				want := tc.due.Add(-c.step)
				if want.Before(tc.floor) {
					want = tc.floor
				}
				rec := h.grant(tc.id)
				if rec.Status != tc.status || !rec.EndedAt.Equal(want) || !strings.Contains(rec.EndComment, "stepped back") {
					t.Errorf("%s: %s at %v (%q); want %s at %v (due %v)", tc.id, rec.Status, rec.EndedAt, rec.EndComment, tc.status, want, tc.due)
				}
				es := h.entries(tc.id)
				if last := es[len(es)-1]; last.Type != "grant."+rec.EndReason || !last.Time.Equal(want) {
					t.Errorf("%s: last entry %s at %v; want its end at %v", tc.id, last.Type, last.Time, want)
				}
			}
			h.checkReview(t)
		})
	}
}

// TestClockStepBackRevokeAndEnd: after the machine's clock stepped back
// past a grant's start, a revoke or an end recorded the clock's reading,
// an end before the start; the record now ends at its start at the
// earliest (a withdrawn request at its request time), and the review's
// check of the records against the log finds nothing.
func TestClockStepBackRevokeAndEnd(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{Manual: true, Stepped: true})
	revoked := h.request(bot, autoReq("10m"), model.Active)
	ended := h.request(bot, autoReq("10m"), model.Active)
	withdrawn := h.request(bot, humanReq("10m"), model.Pending)
	h.fake.Advance(time.Minute)
	h.stepped.step.Store(int64(-time.Hour))
	if _, err := h.Svc.Revoke(h.ctx, h.id(alice), revoked.ID, "stepped"); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Svc.End(h.ctx, h.id(bot), ended.ID, "done"); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Svc.End(h.ctx, h.id(bot), withdrawn.ID, ""); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		id    string
		floor time.Time
	}{{revoked.ID, revoked.StartedAt}, {ended.ID, ended.StartedAt}, {withdrawn.ID, withdrawn.RequestedAt}} {
		if rec := h.grant(tc.id); !rec.EndedAt.Equal(tc.floor) {
			t.Errorf("%s (%s): ended at %v, want %v (it began then; the clock read %v)", tc.id, rec.Status, rec.EndedAt, tc.floor, h.stepped.Now())
		}
	}
	h.checkReview(t)
}

// checkReview runs the review's check of every stored row against the
// log, as audit verify's state check does, and fails on any difference.
func (h *harness) checkReview(t *testing.T) {
	t.Helper()
	checkStoreRows(t, h.ctx, h.St)
}

// checkStoreRows is checkReview for any store (a replica's too).
func checkStoreRows(t *testing.T, ctx context.Context, st store.Store) {
	t.Helper()
	c := review.NewChecker(st)
	if err := st.ScanLog(ctx, 0, math.MaxInt64, func(e store.LogEntry) error {
		c.Entry(e.Seq, bytes.Clone(e.Data))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if diffs, err := c.Finish(ctx); err != nil || len(diffs) != 0 {
		t.Errorf("review check: %v %q", err, diffs)
	}
}
