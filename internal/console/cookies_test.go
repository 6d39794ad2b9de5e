package console_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// TestCookiesSecureBehindTLSProxy: with listen.public.api on https://, the
// browser reaches the console through a proxy or balancer that ends TLS,
// so the console itself sees plain http. Its cookies (the sign-in form's
// and the session's) must still be Secure, or the browser would send the
// session on any plain http:// request to the host. Without a public
// https address, a plaintext (loopback) console keeps cookies that work
// over http.
func TestCookiesSecureBehindTLSProxy(t *testing.T) {
	behind := newEnvFrom(t, nil, strings.Replace(testConfig, "  api: 127.0.0.1:0\n",
		"  api: 127.0.0.1:0\n  public:\n    api: https://airlock.example.test\n", 1))
	for _, c := range signInCookies(t, behind) {
		if !c.Secure || !c.HttpOnly || c.SameSite != http.SameSiteStrictMode {
			t.Errorf("behind a TLS proxy, cookie %s: Secure=%v HttpOnly=%v SameSite=%v", c.Name, c.Secure, c.HttpOnly, c.SameSite)
		}
	}
	local := newEnv(t, nil)
	for _, c := range signInCookies(t, local) {
		if c.Secure {
			t.Errorf("on a plaintext loopback console, cookie %s is Secure: the browser could not send it back", c.Name)
		}
	}
}

// signInCookies signs alice in with raw requests (a cookie jar does not
// send Secure cookies back over http) and returns the cookies set by the
// sign-in page and by the sign-in, checking both were set.
func signInCookies(t *testing.T, e *env) []*http.Cookie {
	t.Helper()
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Get(e.url + "/console/login")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	var pre *http.Cookie
	for _, ck := range resp.Cookies() {
		if ck.Name == "airlock_console_pre" {
			pre = ck
		}
	}
	if pre == nil {
		t.Fatalf("the sign-in page set no form cookie: %v", resp.Header["Set-Cookie"])
	}
	req, _ := http.NewRequest("POST", e.url+"/console/login", strings.NewReader(url.Values{"csrf": {pre.Value}, "key": {e.alice}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.AddCookie(&http.Cookie{Name: pre.Name, Value: pre.Value})
	resp, err = c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign-in: %d", resp.StatusCode)
	}
	var ses *http.Cookie
	for _, ck := range resp.Cookies() {
		if ck.Name == "airlock_console" {
			ses = ck
		}
	}
	if ses == nil || ses.Value == "" {
		t.Fatalf("the sign-in set no session cookie: %v", resp.Header["Set-Cookie"])
	}
	return []*http.Cookie{pre, ses}
}
