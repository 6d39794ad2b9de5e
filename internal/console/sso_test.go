package console_test

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/clock"
	"github.com/airlock-dev/airlock/internal/console"
)

// idp is a minimal OpenID provider: discovery, JWKS, an authorize
// endpoint that signs the user straight in, and a token endpoint that
// checks the PKCE verifier and the client secret.
type idp struct {
	t      *testing.T
	srv    *httptest.Server
	key    *rsa.PrivateKey
	mu     sync.Mutex
	claims map[string]any // the signed-in user's claims
	// badNonce makes the ID token carry another nonce.
	badNonce bool
	codes    map[string]authReq
}

type authReq struct{ challenge, nonce string }

func newIDP(t *testing.T) *idp {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	p := &idp{t: t, key: key, codes: map[string]authReq{}}
	mux := http.NewServeMux()
	p.srv = httptest.NewServer(mux)
	t.Cleanup(p.srv.Close)
	u := p.srv.URL
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(map[string]any{
			"issuer": u, "authorization_endpoint": u + "/authorize", "token_endpoint": u + "/token", "jwks_uri": u + "/jwks",
			"response_types_supported": []string{"code"}, "subject_types_supported": []string{"public"},
			"id_token_signing_alg_values_supported": []string{"RS256"},
		})
	})
	mux.HandleFunc("GET /jwks", func(w http.ResponseWriter, r *http.Request) {
		b64 := base64.RawURLEncoding.EncodeToString
		json.NewEncoder(w).Encode(map[string]any{"keys": []map[string]string{{
			"kty": "RSA", "kid": "k1", "alg": "RS256", "use": "sig",
			"n": b64(key.N.Bytes()), "e": b64(big.NewInt(int64(key.E)).Bytes()),
		}}})
	})
	mux.HandleFunc("GET /authorize", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		if q.Get("code_challenge_method") != "S256" || q.Get("code_challenge") == "" || q.Get("client_id") != "airlock" {
			http.Error(w, "bad authorize request", 400)
			return
		}
		code := randomString(t)
		p.mu.Lock()
		p.codes[code] = authReq{q.Get("code_challenge"), q.Get("nonce")}
		p.mu.Unlock()
		back, _ := url.Parse(q.Get("redirect_uri"))
		v := back.Query()
		v.Set("code", code)
		v.Set("state", q.Get("state"))
		back.RawQuery = v.Encode()
		http.Redirect(w, r, back.String(), http.StatusFound)
	})
	mux.HandleFunc("POST /token", func(w http.ResponseWriter, r *http.Request) {
		r.ParseForm()
		id, secret, ok := r.BasicAuth()
		if !ok {
			id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
		}
		p.mu.Lock()
		req, known := p.codes[r.PostForm.Get("code")]
		delete(p.codes, r.PostForm.Get("code"))
		claims := map[string]any{}
		for k, v := range p.claims {
			claims[k] = v
		}
		badNonce := p.badNonce
		p.mu.Unlock()
		sum := sha256.Sum256([]byte(r.PostForm.Get("code_verifier")))
		if id != "airlock" || secret != "s3cret" || !known || base64.RawURLEncoding.EncodeToString(sum[:]) != req.challenge {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(400)
			io.WriteString(w, `{"error":"invalid_grant"}`)
			return
		}
		now := time.Now()
		if _, ok := claims["aud"]; !ok {
			claims["aud"] = "airlock"
		}
		claims["iss"], claims["iat"], claims["exp"] = u, now.Unix(), now.Add(5*time.Minute).Unix()
		if _, ok := claims["sub"]; !ok {
			claims["sub"] = "user-1"
		}
		claims["nonce"] = req.nonce
		if badNonce {
			claims["nonce"] = "another"
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"access_token": "at", "token_type": "Bearer", "expires_in": 300, "id_token": p.sign(claims)})
	})
	return p
}

func (p *idp) sign(claims map[string]any) string {
	b64 := base64.RawURLEncoding.EncodeToString
	h, _ := json.Marshal(map[string]string{"alg": "RS256", "kid": "k1", "typ": "JWT"})
	c, _ := json.Marshal(claims)
	in := b64(h) + "." + b64(c)
	sum := sha256.Sum256([]byte(in))
	sig, err := rsa.SignPKCS1v15(rand.Reader, p.key, crypto.SHA256, sum[:])
	if err != nil {
		p.t.Fatal(err)
	}
	return in + "." + b64(sig)
}

func (p *idp) set(claims map[string]any, badNonce bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.claims, p.badNonce = claims, badNonce
}

func randomString(t *testing.T) string {
	b := make([]byte, 16)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// ssoConsole serves a console with SSO against p over e's service.
func ssoConsole(t *testing.T, e *env, p *idp) string { return ssoConsoleWith(t, e, p, nil) }

func ssoConsoleWith(t *testing.T, e *env, p *idp, groups []string) string {
	c, err := console.New(console.Options{
		Service: e.srv.Service, Directory: e.srv.Directory, Audit: e.srv, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		SSO: &console.SSO{Issuer: p.srv.URL, ClientID: "airlock", ClientSecret: "s3cret", Emails: map[string]string{"alice@example.com": "alice", "k.alice@example.com": "alice"},
			RequiredGroups: groups},
	})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(console.Mount(http.NotFoundHandler(), c))
	t.Cleanup(ts.Close)
	return ts.URL
}

func followingBrowser() *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar}
}

func fetch(t *testing.T, c *http.Client, u string) (int, string) {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// startSSO starts a sign-in in a new browser and stops it at the
// provider's redirect back: the browser, and the callback URL it was sent to.
func startSSO(t *testing.T, base string) (*http.Client, string) {
	t.Helper()
	return startSSOWith(t, base, nil)
}

// startSSOWith is startSSO with the browser on transport (a TLS server's
// client's; http.DefaultTransport if nil).
func startSSOWith(t *testing.T, base string, transport http.RoundTripper) (*http.Client, string) {
	t.Helper()
	starter := followingBrowser()
	starter.Transport = transport
	return starter, startSSOIn(t, base, starter)
}

// startSSOIn starts a sign-in in browser b (its cookies and transport)
// and stops it at the provider's redirect back: the callback URL.
func startSSOIn(t *testing.T, base string, b *http.Client) string {
	t.Helper()
	stopper := &http.Client{Jar: b.Jar, Transport: b.Transport, CheckRedirect: func(req *http.Request, via []*http.Request) error {
		if strings.HasPrefix(req.URL.Path, "/console/sso/callback") {
			return http.ErrUseLastResponse
		}
		return nil
	}}
	resp, err := stopper.Get(base + "/console/sso/start")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	callback := resp.Header.Get("Location")
	if !strings.Contains(callback, "/console/sso/callback?") {
		t.Fatalf("no callback redirect: %d %q", resp.StatusCode, callback)
	}
	return callback
}

func TestSSOSignIn(t *testing.T) {
	e := newEnv(t, nil)
	p := newIDP(t)
	base := ssoConsole(t, e, p)
	if _, body := fetch(t, followingBrowser(), base+"/console/login"); !strings.Contains(body, `href="/console/sso/start"`) {
		t.Fatalf("the sign-in page offers no SSO:\n%s", body)
	}

	// A configured person, by email: signed in.
	p.set(map[string]any{"email": "Alice@example.com", "email_verified": true}, false)
	b := followingBrowser()
	if st, body := fetch(t, b, base+"/console/sso/start"); st != 200 || !strings.Contains(body, "Welcome, alice") {
		t.Fatalf("SSO as alice: %d\n%s", st, body)
	}
	if st, body := fetch(t, b, base+"/console/queue"); st != 200 || !strings.Contains(body, `<span id="who">alice</span>`) {
		t.Fatalf("queue after SSO: %d\n%s", st, body)
	}

	for _, tc := range []struct {
		name     string
		claims   map[string]any
		badNonce bool
		status   int
		want     string
	}{
		{"unknown person", map[string]any{"email": "mallory@example.com"}, false, 403, "mallory@example.com is not a person Airlock knows"},
		// Another mailbox, whose address Unicode case folding would make
		// alice's second one: the Kelvin sign (U+212A) for the K.
		{"a look-alike address", map[string]any{"email": "\u212a.alice@example.com", "email_verified": true}, false, 403, "is not a person Airlock knows"},
		{"an agent's name", map[string]any{"email": "log-triage-bot"}, false, 403, "log-triage-bot is not a person Airlock knows"},
		{"unverified email", map[string]any{"email": "alice@example.com", "email_verified": false}, false, 403, "not verified"},
		{"no claim", map[string]any{"name": "Alice"}, false, 403, "has no &#34;email&#34; claim"},
		{"another nonce", map[string]any{"email": "alice@example.com"}, true, 401, "does not belong to this sign-in"},
	} {
		p.set(tc.claims, tc.badNonce)
		b := followingBrowser()
		st, body := fetch(t, b, base+"/console/sso/start")
		if st != tc.status || !strings.Contains(body, tc.want) {
			t.Errorf("%s: %d, want %d with %q:\n%s", tc.name, st, tc.status, tc.want, body)
		}
		if _, body := fetch(t, b, base+"/console/queue"); strings.Contains(body, `<span id="who">`) {
			t.Errorf("%s: signed in anyway", tc.name)
		}
	}

	// With required groups, a configured person outside them is refused.
	gbase := ssoConsoleWith(t, e, p, []string{"airlock-approvers"})
	p.set(map[string]any{"email": "alice@example.com", "groups": []string{"engineering"}}, false)
	if st, body := fetch(t, followingBrowser(), gbase+"/console/sso/start"); st != 403 || !strings.Contains(body, "not in a group allowed") {
		t.Errorf("outside the required groups: %d\n%s", st, body)
	}
	p.set(map[string]any{"email": "alice@example.com", "groups": []string{"engineering", "airlock-approvers"}}, false)
	if st, body := fetch(t, followingBrowser(), gbase+"/console/sso/start"); st != 200 || !strings.Contains(body, "Welcome, alice") {
		t.Errorf("in a required group: %d\n%s", st, body)
	}

	// A callback carried to another browser (login CSRF) is refused: the
	// state is bound to the browser that started the sign-in.
	p.set(map[string]any{"email": "alice@example.com"}, false)
	starter, callback := startSSO(t, base)
	victim := followingBrowser()
	if st, body := fetch(t, victim, callback); st != 403 || !strings.Contains(body, "did not start in this browser") {
		t.Fatalf("callback in another browser: %d\n%s", st, body)
	}
	// In the browser that started it, it completes, once.
	if st, body := fetch(t, starter, callback); st != 200 || !strings.Contains(body, "Welcome, alice") {
		t.Fatalf("callback in the starting browser: %d\n%s", st, body)
	}
	if st, body := fetch(t, starter, callback); st == 200 || strings.Contains(body, "Welcome") {
		t.Fatalf("a used state signed someone in again: %d", st)
	}
}

// airlock.yaml's sso section reaches the console `airlock serve` runs:
// the server's own handler signs a person in through the provider, by the
// email configured for them.
func TestSSOFromConfig(t *testing.T) {
	p := newIDP(t)
	t.Setenv("AIRLOCK_TEST_SSO_SECRET", "s3cret")
	e := newEnvWith(t, nil, "sso:\n  issuer: "+p.srv.URL+"\n  client_id: airlock\n  client_secret_env: AIRLOCK_TEST_SSO_SECRET\n")
	// bob has no email configured; the claim names him directly.
	p.set(map[string]any{"email": "bob"}, false)
	b := followingBrowser()
	if st, body := fetch(t, b, e.url+"/console/sso/start"); st != 200 || !strings.Contains(body, "Welcome, bob") {
		t.Fatalf("SSO through the server's handler: %d\n%s", st, body)
	}
	if _, body := fetch(t, b, e.url+"/console/queue"); !strings.Contains(body, `<span id="who">bob</span>`) {
		t.Fatalf("not signed in as bob:\n%s", body)
	}
	// alice by the email identities[].email gives her.
	p.set(map[string]any{"email": "ALICE@example.com"}, false)
	if st, body := fetch(t, followingBrowser(), e.url+"/console/sso/start"); st != 200 || !strings.Contains(body, "Welcome, alice") {
		t.Fatalf("SSO by configured email: %d\n%s", st, body)
	}
}

// A person with no API key, only an email, signs in with SSO (DESIGN:
// "People sign in with the organisation's SSO (OIDC) or an API key").
// Before, the configuration was refused: every person needed a key_sha256.
func TestSSOOnlyPerson(t *testing.T) {
	p := newIDP(t)
	t.Setenv("AIRLOCK_TEST_SSO_SECRET", "s3cret")
	carol := "  - name: carol\n    kind: human\n    groups: [sre-leads]\n    email: carol@example.com\n"
	e := newEnvFrom(t, nil, strings.Replace(testConfig, "targets:\n", carol+"targets:\n", 1)+
		"sso:\n  issuer: "+p.srv.URL+"\n  client_id: airlock\n  client_secret_env: AIRLOCK_TEST_SSO_SECRET\n")
	p.set(map[string]any{"email": "carol@example.com", "email_verified": true}, false)
	b := followingBrowser()
	if st, body := fetch(t, b, e.url+"/console/sso/start"); st != 200 || !strings.Contains(body, "Welcome, carol") {
		t.Fatalf("SSO as carol: %d\n%s", st, body)
	}
	if _, body := fetch(t, b, e.url+"/console/queue"); !strings.Contains(body, `<span id="who">carol</span>`) {
		t.Fatalf("not signed in as carol:\n%s", body)
	}
	if id := e.identity("carol"); id.KeySHA256 != "" {
		t.Fatalf("carol has a key: %+v", id)
	}
}

// The provider's error on the callback is shown only to the browser that
// started the sign-in (its state matches): otherwise anyone could link to
// the console's own error page with words of their choosing on it.
func TestSSOProviderErrorNeedsTheState(t *testing.T) {
	e := newEnv(t, nil)
	p := newIDP(t)
	base := ssoConsole(t, e, p)
	lure := "Your account is locked. Call +1 555 0100 with your Airlock key"
	st, body := fetch(t, followingBrowser(), base+"/console/sso/callback?error="+url.QueryEscape(lure)+"&state=x")
	if st != http.StatusForbidden || strings.Contains(body, "Call +1 555") || !strings.Contains(body, "did not start in this browser") {
		t.Fatalf("a provider error without this browser's state: %d\n%s", st, body)
	}

	// From the browser that started the sign-in, the provider's error
	// code is shown (and the sign-in is over).
	p.set(map[string]any{"email": "alice@example.com"}, false)
	starter, callback := startSSO(t, base)
	cb, err := url.Parse(callback)
	if err != nil {
		t.Fatal(err)
	}
	q := cb.Query()
	q.Del("code")
	q.Set("error", "access_denied")
	cb.RawQuery = q.Encode()
	if st, body := fetch(t, starter, cb.String()); st != http.StatusUnauthorized || !strings.Contains(body, "did not sign you in (access_denied)") {
		t.Fatalf("the provider's error in the starting browser: %d\n%s", st, body)
	}
	if _, body := fetch(t, starter, base+"/console/queue"); strings.Contains(body, `<span id="who">`) {
		t.Fatal("signed in after the provider's error")
	}
}

// An SSO session lasts while the provider's word does: it ends when the
// ID token that opened it expires (the test provider's expire after 5
// minutes), and signing in again asks the provider afresh. It lasted the
// console's 8 hours (an hour idle), so a person the provider disabled, or
// took out of required_groups, kept approving in the console for that long.
func TestSSOSessionEndsWithTheIDToken(t *testing.T) {
	e := newEnv(t, nil)
	p := newIDP(t)
	clk := clock.NewFake(time.Now())
	c, err := console.New(console.Options{
		Service: e.srv.Service, Directory: e.srv.Directory, Audit: e.srv, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Clock: clk,
		SSO: &console.SSO{Issuer: p.srv.URL, ClientID: "airlock", ClientSecret: "s3cret", Emails: map[string]string{"alice@example.com": "alice"},
			RequiredGroups: []string{"airlock-approvers"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(console.Mount(http.NotFoundHandler(), c))
	t.Cleanup(ts.Close)
	p.set(map[string]any{"email": "alice@example.com", "groups": []string{"airlock-approvers"}}, false)
	b := followingBrowser()
	if st, body := fetch(t, b, ts.URL+"/console/sso/start"); st != 200 || !strings.Contains(body, "Welcome, alice") {
		t.Fatalf("SSO as alice: %d\n%s", st, body)
	}
	clk.Advance(4 * time.Minute)
	if st, body := fetch(t, b, ts.URL+"/console/queue"); st != 200 || !strings.Contains(body, `<span id="who">alice</span>`) {
		t.Fatalf("queue 4 minutes after SSO: %d\n%s", st, body)
	}
	// The provider takes alice out of the group; her token expires.
	p.set(map[string]any{"email": "alice@example.com", "groups": []string{"engineering"}}, false)
	clk.Advance(2 * time.Minute)
	if _, body := fetch(t, b, ts.URL+"/console/queue"); strings.Contains(body, `<span id="who">`) {
		t.Fatal("still signed in after the ID token expired")
	}
	// Signing in again asks the provider, whose answer (outside the
	// group) is refused, as TestSSOSignIn shows.
	if st, body := fetch(t, b, ts.URL+"/console/sso/start"); st == 200 || strings.Contains(body, "Welcome") {
		t.Fatalf("signed in again outside the group: %d\n%s", st, body)
	}
}

// TestSSOSignInOverTLS: over TLS the sign-in flow's cookie is
// __Host-airlock_console_sso (Secure, Path=/, no Domain), the sign-in
// completes with it, and the flow's value under the bare name, as one
// planted by a sibling subdomain would come, is not read.
func TestSSOSignInOverTLS(t *testing.T) {
	e := newEnv(t, nil)
	p := newIDP(t)
	c, err := console.New(console.Options{
		Service: e.srv.Service, Directory: e.srv.Directory, Audit: e.srv, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		SSO: &console.SSO{Issuer: p.srv.URL, ClientID: "airlock", ClientSecret: "s3cret", Emails: map[string]string{"alice@example.com": "alice"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewTLSServer(console.Mount(http.NotFoundHandler(), c))
	t.Cleanup(ts.Close)
	p.set(map[string]any{"email": "alice@example.com"}, false)

	// The flow's cookie, as the start sets it.
	// ts.Client() is one client: each browser here is its own, on its transport.
	raw := &http.Client{Transport: ts.Client().Transport, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := raw.Get(ts.URL + "/console/sso/start")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	var flow *http.Cookie
	for _, ck := range resp.Cookies() {
		if ck.Name == "__Host-airlock_console_sso" {
			flow = ck
		}
	}
	if flow == nil || !flow.Secure || flow.Path != "/" || flow.Domain != "" {
		t.Fatalf("the SSO start set no __Host-airlock_console_sso cookie with Secure, Path=/, no Domain: %v", resp.Header["Set-Cookie"])
	}
	// Followed to the provider and back, the flow's cookie with it.
	b, callback := startSSOWith(t, ts.URL, ts.Client().Transport)
	var planted string
	for _, ck := range b.Jar.Cookies(mustURL(t, ts.URL+"/console/sso/callback")) {
		if ck.Name == "__Host-airlock_console_sso" {
			planted = ck.Value
		}
	}
	if planted == "" {
		t.Fatal("the browser holds no flow cookie")
	}
	// The same flow under the bare name, in a browser without the prefixed one.
	req, _ := http.NewRequest("GET", callback, nil)
	req.AddCookie(&http.Cookie{Name: "airlock_console_sso", Value: planted})
	resp, err = raw.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(string(body), "did not start in this browser") {
		t.Fatalf("a callback with the flow under the bare cookie name: %d\n%s", resp.StatusCode, body)
	}
	if st, body := fetch(t, b, callback); st != 200 || !strings.Contains(body, "Welcome, alice") {
		t.Fatalf("callback in the starting browser: %d\n%s", st, body)
	}
	if st, body := fetch(t, b, ts.URL+"/console/queue"); st != 200 || !strings.Contains(body, `<span id="who">alice</span>`) {
		t.Fatalf("queue after SSO over TLS: %d\n%s", st, body)
	}
}

// An ID token with several audiences must name Airlock's client as azp,
// and an azp must be Airlock's client (OpenID Connect Core 3.1.3.7): a
// token the provider issued to another of its clients, addressed to
// Airlock as well, signed a person in, as go-oidc checks only that aud
// holds the client id.
func TestSSOAuthorizedParty(t *testing.T) {
	e := newEnv(t, nil)
	p := newIDP(t)
	base := ssoConsole(t, e, p)
	for _, tc := range []struct {
		name string
		aud  any
		azp  any // nil: none
		ok   bool
	}{
		{"one audience, no azp", "airlock", nil, true},
		{"one audience, azp ours", "airlock", "airlock", true},
		{"several audiences, azp ours", []string{"airlock", "reports"}, "airlock", true},
		{"several audiences, no azp", []string{"airlock", "reports"}, nil, false},
		{"several audiences, azp another client", []string{"reports", "airlock"}, "reports", false},
		{"one audience, azp another client", "airlock", "reports", false},
		{"azp not a string", []string{"airlock", "reports"}, []string{"airlock"}, false},
	} {
		claims := map[string]any{"email": "alice@example.com", "aud": tc.aud}
		if tc.azp != nil {
			claims["azp"] = tc.azp
		}
		p.set(claims, false)
		b := followingBrowser()
		st, body := fetch(t, b, base+"/console/sso/start")
		_, queue := fetch(t, b, base+"/console/queue")
		signedIn := strings.Contains(queue, `<span id="who">alice</span>`)
		switch {
		case tc.ok && (st != 200 || !strings.Contains(body, "Welcome, alice") || !signedIn):
			t.Errorf("%s: %d, signed in %v, want signed in:\n%s", tc.name, st, signedIn, body)
		case !tc.ok && (st != http.StatusUnauthorized || !strings.Contains(body, "not issued to Airlock") || signedIn):
			t.Errorf("%s: %d, signed in %v, want 401 not issued to Airlock:\n%s", tc.name, st, signedIn, body)
		}
	}
}
