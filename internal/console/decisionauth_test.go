package console_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/authn"
	"github.com/airlock-dev/airlock/internal/model"
)

// TestConsoleDecisionsRecordCredential: a decision made in the console
// records the credential its session was opened with: the key's id for a
// key sign-in, the ID token's issuer and subject for an SSO one (never
// the key or its hash). Before, the record said "via": "console" and
// nothing of how the person signed in. The review page, its CSV, and the
// grant's page show it.
func TestConsoleDecisionsRecordCredential(t *testing.T) {
	e := newEnv(t, nil)
	keyAuth := model.SignIn{Method: model.SignInAPIKey, KeyID: authn.KeyID(authn.HashKey(e.alice))}
	approved := e.request("log-triage-bot", humanScope, "30m", "billing errors")
	denied := e.request("log-triage-bot", humanScope, "30m", "again")
	b := e.browser()
	b.mustSignIn(e.alice)
	for _, d := range []struct{ path, field, text string }{
		{"/console/grants/" + approved.ID + "/approve", "comment", "ok"},
		{"/console/grants/" + approved.ID + "/revoke", "reason", "done"},
		{"/console/grants/" + denied.ID + "/deny", "reason", "no"},
	} {
		if r := b.post(d.path, url.Values{"csrf": {b.csrf}, d.field: {d.text}}); r.status != http.StatusSeeOther {
			t.Fatalf("%s: %d %s", d.path, r.status, r.body)
		}
	}
	for _, g := range []model.Grant{e.grant(approved.ID), e.grant(denied.ID)} {
		if len(g.Approvals) != 1 || g.Approvals[0].Auth == nil || *g.Approvals[0].Auth != keyAuth {
			t.Errorf("grant %s: approvals %+v; want auth %+v", g.ID, g.Approvals, keyAuth)
		}
		if g.EndedAuth == nil || *g.EndedAuth != keyAuth {
			t.Errorf("grant %s (%s): ended_auth %+v; want %+v", g.ID, g.Status, g.EndedAuth, keyAuth)
		}
		if len(g.LogMismatch) > 0 {
			t.Errorf("grant %s differs from its log: %v", g.ID, g.LogMismatch)
		}
	}
	day := time.Now().UTC().Format("2006-01-02")
	shown := "with api_key " + keyAuth.KeyID
	if p := b.get("/console/review?day=" + day); p.status != http.StatusOK || strings.Count(p.body, shown) != 3 {
		t.Errorf("the review page shows %q %d times, want 3 (an approval, a revoke, a denial): %d", shown, strings.Count(p.body, shown), p.status)
	}
	if p := b.get("/console/grants/" + approved.ID); strings.Count(p.body, shown) != 2 {
		t.Errorf("the grant's page shows %q %d times, want 2 (its approval and its revoke)", shown, strings.Count(p.body, shown))
	}
	csv := b.get("/console/review.csv?day=" + day).body
	if !strings.Contains(csv, ",approved_auth,ended_auth\n") || !strings.Contains(csv, ",api_key "+keyAuth.KeyID+",api_key "+keyAuth.KeyID+"\n") {
		t.Errorf("the review CSV has no approved_auth/ended_auth of the key:\n%s", csv)
	}
	for _, secret := range []string{e.alice, authn.HashKey(e.alice)} {
		if strings.Contains(csv, secret) {
			t.Error("the review CSV holds the key or its hash")
		}
	}

	// An SSO sign-in's decisions record the issuer and subject.
	p := newIDP(t)
	base := ssoConsole(t, e, p)
	p.set(map[string]any{"email": "alice@example.com", "sub": "alice-at-idp"}, false)
	sb := followingBrowser()
	if st, body := fetch(t, sb, base+"/console/sso/start"); st != 200 || !strings.Contains(body, "Welcome, alice") {
		t.Fatalf("SSO as alice: %d\n%s", st, body)
	}
	pending := e.request("log-triage-bot", humanScope, "30m", "by SSO")
	_, q := fetch(t, sb, base+"/console/queue")
	m := tokenRE.FindStringSubmatch(q)
	if m == nil {
		t.Fatalf("no CSRF token on the queue page:\n%s", q)
	}
	resp, err := sb.PostForm(base+"/console/grants/"+pending.ID+"/approve", url.Values{"csrf": {m[1]}, "comment": {"ok"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	g := e.grant(pending.ID)
	want := model.SignIn{Method: model.SignInSSO, Issuer: p.srv.URL, Subject: "alice-at-idp"}
	if g.Status != model.Active || len(g.Approvals) != 1 || g.Approvals[0].Auth == nil || *g.Approvals[0].Auth != want {
		t.Fatalf("approved after SSO: %s %+v; want auth %+v", g.Status, g.Approvals, want)
	}
	if _, body := fetch(t, sb, base+"/console/review?day="+day); !strings.Contains(body, "with sso "+p.srv.URL+" alice-at-idp") {
		t.Errorf("the review page does not show the SSO approval's issuer and subject")
	}
}
