package console_test

import (
	"net/http"
	"strings"
	"testing"
)

// An email_verified the provider sends as a string ("false", as some
// providers and claim mappers do) is as unverified as the boolean: the
// address must not sign its owner in.
func TestSSOUnverifiedEmailAsString(t *testing.T) {
	e := newEnv(t, nil)
	p := newIDP(t)
	base := ssoConsole(t, e, p)
	for _, v := range []any{"false", "False", "0", ""} {
		p.set(map[string]any{"email": "alice@example.com", "email_verified": v}, false)
		b := followingBrowser()
		st, body := fetch(t, b, base+"/console/sso/start")
		if st != 403 || !strings.Contains(body, "not verified") {
			t.Errorf("email_verified %q: %d, want 403 (not verified)", v, st)
		}
		if _, body := fetch(t, b, base+"/console/queue"); strings.Contains(body, `<span id="who">`) {
			t.Errorf("email_verified %q: signed in as alice", v)
		}
	}
	// "true" as a string is verified.
	p.set(map[string]any{"email": "alice@example.com", "email_verified": "true"}, false)
	if st, body := fetch(t, followingBrowser(), base+"/console/sso/start"); st != 200 || !strings.Contains(body, "Welcome, alice") {
		t.Errorf(`email_verified "true": %d`, st)
	}
}

// Anyone who can reach the console can start sign-ins without finishing
// them; that must not lock people out of SSO.
func TestSSOStartsByOthersDoNotLockSignInOut(t *testing.T) {
	e := newEnv(t, nil)
	p := newIDP(t)
	base := ssoConsole(t, e, p)
	attacker := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for i := 0; i < 1200; i++ {
		resp, err := attacker.Get(base + "/console/sso/start")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	p.set(map[string]any{"email": "alice@example.com", "email_verified": true}, false)
	if st, body := fetch(t, followingBrowser(), base+"/console/sso/start"); st != 200 || !strings.Contains(body, "Welcome, alice") {
		t.Fatalf("SSO after 1200 abandoned sign-ins by someone else: %d\n%.300s", st, body)
	}
}
