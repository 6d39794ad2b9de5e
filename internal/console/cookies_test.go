package console_test

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/airlock-dev/airlock/internal/console"
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
	for _, c := range signInCookies(t, plainClient(), behind.url, behind.alice, "__Host-") {
		if !c.Secure || !c.HttpOnly || c.SameSite != http.SameSiteStrictMode {
			t.Errorf("behind a TLS proxy, cookie %s: Secure=%v HttpOnly=%v SameSite=%v", c.Name, c.Secure, c.HttpOnly, c.SameSite)
		}
	}
	local := newEnv(t, nil)
	for _, c := range signInCookies(t, plainClient(), local.url, local.alice, "") {
		if c.Secure {
			t.Errorf("on a plaintext loopback console, cookie %s is Secure: the browser could not send it back", c.Name)
		}
	}
}

// TestCookiesHostPrefix: where the console's cookies are Secure (served
// over TLS, or behind an https:// public address), they are named
// __Host-…, with Path=/ and no Domain, as a browser requires of that
// prefix; so a cookie planted by a sibling subdomain (Domain=) or over
// plain http cannot stand in for the session or the sign-in form's. The
// bare names are then not read at all: a session id or form token
// presented under the old name is refused. Over plain http (the demo on
// loopback) the bare names, scoped to /console/, keep working.
func TestCookiesHostPrefix(t *testing.T) {
	plain := newEnv(t, nil)
	behind := newEnvFrom(t, nil, strings.Replace(testConfig, "  api: 127.0.0.1:0\n",
		"  api: 127.0.0.1:0\n  public:\n    api: https://airlock.example.test\n", 1))
	tlsEnv := newEnv(t, nil)
	ts := tlsConsole(t, tlsEnv)
	tlsClient := &http.Client{Transport: ts.Client().Transport, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

	for _, tc := range []struct {
		name, url, key, prefix, path string
		client                       *http.Client
	}{
		{"over TLS", ts.URL, tlsEnv.alice, "__Host-", "/", tlsClient},
		{"behind an https proxy", behind.url, behind.alice, "__Host-", "/", plainClient()},
		{"plain http loopback", plain.url, plain.alice, "", "/console/", plainClient()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cks := signInCookies(t, tc.client, tc.url, tc.key, tc.prefix)
			for _, ck := range cks {
				if ck.Path != tc.path || ck.Domain != "" || ck.Secure != (tc.prefix != "") {
					t.Errorf("cookie %s: Path=%q Domain=%q Secure=%v; want Path=%q, no Domain, Secure=%v", ck.Name, ck.Path, ck.Domain, ck.Secure, tc.path, tc.prefix != "")
				}
			}
			pre, ses := cks[0], cks[1]
			if got := queueStatus(t, tc.client, tc.url, ses.Name, ses.Value); got != http.StatusOK {
				t.Fatalf("the queue with the session cookie %s: %d", ses.Name, got)
			}
			if tc.prefix == "" {
				return
			}
			// The same values under the names used before the prefix.
			bare := strings.TrimPrefix(ses.Name, tc.prefix)
			if got := queueStatus(t, tc.client, tc.url, bare, ses.Value); got != http.StatusSeeOther {
				t.Errorf("the queue with the session id under the bare name %s: %d; want a redirect to sign in", bare, got)
			}
			_, st := postLogin(t, tc.client, tc.url, tc.key, strings.TrimPrefix(pre.Name, tc.prefix), "tok-planted")
			if st != http.StatusForbidden {
				t.Errorf("a sign-in whose form token came under the bare name %s: %d; want 403", strings.TrimPrefix(pre.Name, tc.prefix), st)
			}
		})
	}
}

// tlsConsole serves a console over e's service on a TLS test server.
func tlsConsole(t *testing.T, e *env) *httptest.Server {
	t.Helper()
	c, err := console.New(console.Options{Service: e.srv.Service, Directory: e.srv.Directory, Audit: e.srv,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewTLSServer(console.Mount(http.NotFoundHandler(), c))
	t.Cleanup(ts.Close)
	return ts
}

func plainClient() *http.Client {
	return &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// queueStatus is the status of GET /console/queue with one cookie.
func queueStatus(t *testing.T, c *http.Client, base, name, value string) int {
	t.Helper()
	req, _ := http.NewRequest("GET", base+"/console/queue", nil)
	req.AddCookie(&http.Cookie{Name: name, Value: value})
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// postLogin posts the key sign-in form with token as its CSRF token, sent
// in the cookie named preName too.
func postLogin(t *testing.T, c *http.Client, base, key, preName, token string) (*http.Response, int) {
	t.Helper()
	req, _ := http.NewRequest("POST", base+"/console/login", strings.NewReader(url.Values{"csrf": {token}, "key": {key}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.AddCookie(&http.Cookie{Name: preName, Value: token})
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp, resp.StatusCode
}

// signInCookies signs in with key by raw requests (a cookie jar does not
// send Secure cookies back over http) and returns the cookies set by the
// sign-in page and by the sign-in, named with prefix, checking both were
// set.
func signInCookies(t *testing.T, c *http.Client, base, key, prefix string) []*http.Cookie {
	t.Helper()
	resp, err := c.Get(base + "/console/login")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	var pre *http.Cookie
	for _, ck := range resp.Cookies() {
		if ck.Name == prefix+"airlock_console_pre" {
			pre = ck
		}
	}
	if pre == nil {
		t.Fatalf("the sign-in page set no form cookie %sairlock_console_pre: %v", prefix, resp.Header["Set-Cookie"])
	}
	resp, st := postLogin(t, c, base, key, pre.Name, pre.Value)
	if st != http.StatusSeeOther {
		t.Fatalf("sign-in: %d", st)
	}
	var ses *http.Cookie
	for _, ck := range resp.Cookies() {
		if ck.Name == prefix+"airlock_console" {
			ses = ck
		}
	}
	if ses == nil || ses.Value == "" {
		t.Fatalf("the sign-in set no session cookie %sairlock_console: %v", prefix, resp.Header["Set-Cookie"])
	}
	return []*http.Cookie{pre, ses}
}
