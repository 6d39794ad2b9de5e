package console_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// jarCookie is the value of the cookie named name that c's jar would send
// to u ("" if none).
func jarCookie(t *testing.T, c *http.Client, u, name string) string {
	t.Helper()
	for _, ck := range c.Jar.Cookies(mustURL(t, u)) {
		if ck.Name == name {
			return ck.Value
		}
	}
	return ""
}

// Signing in again ends the session the browser held: it stayed alive
// until idle (an hour, or the full eight while anything kept using it),
// for whoever had a copy of its cookie, after its owner had signed in
// afresh, or someone else had on the same machine. With a key: the old
// session's cookie comes with the form.
func TestKeySignInEndsThePreviousSession(t *testing.T) {
	e := newEnv(t, nil)
	b := e.browser()
	b.mustSignIn(e.alice)
	old := jarCookie(t, b.c, e.url+"/console/", "airlock_console")
	if old == "" || queueStatus(t, plainClient(), e.url, "airlock_console", old) != http.StatusOK {
		t.Fatal("no live session after the first sign-in")
	}

	// The same browser posts the sign-in form again (a tab left open on
	// it), as bob: the form's token is fresh, the session cookie alice's.
	again := e.browser()
	p := again.get("/console/login")
	m := tokenRE.FindStringSubmatch(p.body)
	if m == nil {
		t.Fatalf("login page: %d", p.status)
	}
	again.c.Jar.SetCookies(mustURL(t, e.url+"/console/"), []*http.Cookie{{Name: "airlock_console", Value: old, Path: "/console/"}})
	if r := again.post("/console/login", url.Values{"csrf": {m[1]}, "key": {e.bob}}); r.status != http.StatusSeeOther {
		t.Fatalf("second sign-in: %d %s", r.status, r.body)
	}
	if st := queueStatus(t, plainClient(), e.url, "airlock_console", old); st != http.StatusSeeOther {
		t.Fatalf("the previous session after a new sign-in: %d, want the redirect to sign in", st)
	}
	if p := again.get("/console/queue"); p.status != http.StatusOK || !strings.Contains(p.body, `<span id="who">bob</span>`) {
		t.Fatalf("the new session: %d", p.status)
	}
}

// With SSO the callback comes by a navigation from the provider's site,
// which carries the flow's SameSite=Lax cookie but not the session's
// Strict one: the session the browser held when it started the sign-in
// ends when the sign-in succeeds. Where the provider is on the same site
// (the cookie comes with the callback), likewise.
func TestSSOSignInEndsThePreviousSession(t *testing.T) {
	e := newEnv(t, nil)
	p := newIDP(t)
	base := ssoConsole(t, e, p)
	p.set(map[string]any{"email": "alice@example.com"}, false)
	b := followingBrowser()
	if st, body := fetch(t, b, base+"/console/sso/start"); st != 200 || !strings.Contains(body, "Welcome, alice") {
		t.Fatalf("SSO as alice: %d\n%s", st, body)
	}
	first := jarCookie(t, b, base+"/console/", "airlock_console")
	if first == "" || queueStatus(t, plainClient(), base, "airlock_console", first) != http.StatusOK {
		t.Fatal("no live session after the first sign-in")
	}

	// Again, the callback as a cross-site navigation brings it: the
	// flow's cookie only.
	callback := startSSOIn(t, base, b)
	flow := jarCookie(t, b, base+"/console/sso/callback", "airlock_console_sso")
	if flow == "" {
		t.Fatal("no flow cookie")
	}
	req, _ := http.NewRequest("GET", callback, nil)
	req.AddCookie(&http.Cookie{Name: "airlock_console_sso", Value: flow})
	resp, err := plainClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	var second string
	for _, ck := range resp.Cookies() {
		if ck.Name == "airlock_console" {
			second = ck.Value
		}
	}
	if resp.StatusCode != http.StatusOK || second == "" {
		t.Fatalf("second sign-in: %d, session cookie %v", resp.StatusCode, second != "")
	}
	if st := queueStatus(t, plainClient(), base, "airlock_console", first); st != http.StatusSeeOther {
		t.Fatalf("the session held when the sign-in started, after it: %d, want the redirect to sign in", st)
	}
	if st := queueStatus(t, plainClient(), base, "airlock_console", second); st != http.StatusOK {
		t.Fatalf("the new session: %d", st)
	}

	// A provider on the same site: the callback carries the session.
	b2 := followingBrowser()
	b2.Jar.SetCookies(mustURL(t, base+"/console/"), []*http.Cookie{{Name: "airlock_console", Value: second, Path: "/console/"}})
	if st, body := fetch(t, b2, base+"/console/sso/start"); st != 200 || !strings.Contains(body, "Welcome, alice") {
		t.Fatalf("third sign-in: %d\n%s", st, body)
	}
	if st := queueStatus(t, plainClient(), base, "airlock_console", second); st != http.StatusSeeOther {
		t.Fatalf("the session the callback carried, after it: %d, want the redirect to sign in", st)
	}
}
