package console_test

import (
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
