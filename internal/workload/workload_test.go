package workload_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"log/slog"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/airlock-dev/airlock/internal/clock"
	"github.com/airlock-dev/airlock/internal/workload"
	"github.com/airlock-dev/airlock/internal/workload/issuertest"
)

const aud = "airlock"

type fixture struct {
	iss *issuertest.Issuer
	clk *clock.Fake
	v   *workload.Verifier
}

func setup(t *testing.T, bindings func(iss string) []workload.Binding) *fixture {
	t.Helper()
	iss := issuertest.New(t)
	clk := clock.NewFake(time.Now().Truncate(time.Second))
	v, err := workload.New([]workload.Issuer{{
		URL: iss.URL, Audience: aud,
		InstanceClaims: []string{"kubernetes.io/pod/name", "run_id"},
	}}, bindings(iss.URL), workload.Options{Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{iss: iss, clk: clk, v: v}
}

func defaultBindings(iss string) []workload.Binding {
	return []workload.Binding{
		{Identity: "triage-bot", Issuer: iss, Subject: "repo:acme/triage:ref:refs/heads/main"},
		{Identity: "deploy-bot", Issuer: iss, Claims: map[string]string{"repository": "acme/deploy", "workflow": "release"}},
		{Identity: "k8s-bot", Issuer: iss, Subject: "system:serviceaccount:ops:log-reader",
			Claims: map[string]string{"kubernetes.io/namespace": "ops", "kubernetes.io/serviceaccount/name": "log-reader"}},
	}
}

func (f *fixture) claims(sub string) map[string]any {
	now := f.clk.Now()
	return map[string]any{"iss": f.iss.URL, "aud": aud, "sub": sub,
		"iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(10 * time.Minute).Unix()}
}

func mustVerify(t *testing.T, v *workload.Verifier, tok, want string) workload.Result {
	t.Helper()
	r, err := v.Verify(context.Background(), tok)
	if err != nil {
		t.Fatalf("token refused: %v (cause: %v)", err, errors.Unwrap(err))
	}
	if r.Identity != want {
		t.Fatalf("mapped to %q, want %q", r.Identity, want)
	}
	return r
}

func mustRefuse(t *testing.T, v *workload.Verifier, tok, reason string) {
	t.Helper()
	r, err := v.Verify(context.Background(), tok)
	if err == nil {
		t.Fatalf("token accepted as %q; want refusal %q", r.Identity, reason)
	}
	var we *workload.Error
	if !errors.As(err, &we) {
		t.Fatalf("error %v is not a *workload.Error", err)
	}
	if !strings.Contains(we.Reason, reason) {
		t.Fatalf("refused with %q, want %q", we.Reason, reason)
	}
}

func TestAcceptedAndMappedForEachAlgorithm(t *testing.T) {
	f := setup(t, defaultBindings)
	for _, alg := range []jose.SignatureAlgorithm{jose.RS256, jose.ES256, jose.EdDSA} {
		t.Run(string(alg), func(t *testing.T) {
			k := f.iss.AddKey(alg)
			f.clk.Advance(workload.MinRefetch) // a new key is fetched at most once per interval
			tok := f.iss.Sign(k, f.claims("repo:acme/triage:ref:refs/heads/main"))
			r := mustVerify(t, f.v, tok, "triage-bot")
			if r.Auth() != "oidc:"+f.iss.URL+" repo:acme/triage:ref:refs/heads/main" {
				t.Fatalf("auth = %q", r.Auth())
			}
		})
	}
}

func TestClaimBindings(t *testing.T) {
	f := setup(t, defaultBindings)
	k := f.iss.AddKey(jose.ES256)

	gh := f.claims("repo:acme/deploy:ref:refs/tags/v1")
	gh["repository"], gh["workflow"], gh["run_id"] = "acme/deploy", "release", "4242"
	r := mustVerify(t, f.v, f.iss.Sign(k, gh), "deploy-bot")
	if r.Instance["run_id"] != "4242" {
		t.Fatalf("instance = %v, want run_id 4242", r.Instance)
	}
	gh["workflow"] = "nightly"
	mustRefuse(t, f.v, f.iss.Sign(k, gh), "no identity is bound")

	kc := f.claims("system:serviceaccount:ops:log-reader")
	kc["kubernetes.io"] = map[string]any{
		"namespace":      "ops",
		"serviceaccount": map[string]any{"name": "log-reader", "uid": "1b2c"},
		"pod":            map[string]any{"name": "log-reader-7d9f-abc", "uid": "9f9f"},
	}
	r = mustVerify(t, f.v, f.iss.Sign(k, kc), "k8s-bot")
	if r.Instance["kubernetes.io/pod/name"] != "log-reader-7d9f-abc" {
		t.Fatalf("instance = %v, want the pod name", r.Instance)
	}
	kc["kubernetes.io"].(map[string]any)["namespace"] = "default"
	mustRefuse(t, f.v, f.iss.Sign(k, kc), "no identity is bound")
}

func TestRefusals(t *testing.T) {
	f := setup(t, defaultBindings)
	k := f.iss.AddKey(jose.RS256)
	sub := "repo:acme/triage:ref:refs/heads/main"
	sign := func(edit func(c map[string]any)) string {
		c := f.claims(sub)
		edit(c)
		return f.iss.Sign(k, c)
	}
	now := f.clk.Now()

	mustRefuse(t, f.v, sign(func(c map[string]any) { c["aud"] = "someone-else" }), "audience not accepted")
	mustRefuse(t, f.v, sign(func(c map[string]any) { c["exp"] = now.Add(-2 * time.Minute).Unix() }), "token expired")
	mustRefuse(t, f.v, sign(func(c map[string]any) { delete(c, "exp") }), "no expiry")
	mustRefuse(t, f.v, sign(func(c map[string]any) { c["nbf"] = now.Add(2 * time.Minute).Unix() }), "not yet valid")
	mustRefuse(t, f.v, sign(func(c map[string]any) { c["sub"] = "repo:acme/other:ref:refs/heads/main" }), "no identity is bound")
	mustRefuse(t, f.v, sign(func(c map[string]any) { c["iss"] = "https://issuer.example.com" }), "issuer not trusted")
	// Within the skew both ways: accepted.
	mustVerify(t, f.v, sign(func(c map[string]any) { c["exp"] = now.Add(-30 * time.Second).Unix() }), "triage-bot")
	mustVerify(t, f.v, sign(func(c map[string]any) { c["nbf"] = now.Add(30 * time.Second).Unix() }), "triage-bot")

	// A second issuer, started by the test but not trusted, signing a
	// token that claims to come from the trusted one: its key is not in
	// the trusted JWKS.
	other := issuertest.New(t)
	ok := other.AddKey(jose.RS256)
	mustRefuse(t, f.v, other.Sign(ok, f.claims(sub)), "signature not valid")
	// Its own issuer name is not trusted at all.
	c := f.claims(sub)
	c["iss"] = other.URL
	mustRefuse(t, f.v, other.Sign(ok, c), "issuer not trusted")

	// A key the issuer never published, with a kid that exists and one
	// that does not.
	rogue := f.iss.NewKey(jose.RS256)
	mustRefuse(t, f.v, f.iss.Sign(rogue, f.claims(sub)), "signature not valid")
	rogue.ID = k.ID
	mustRefuse(t, f.v, f.iss.Sign(rogue, f.claims(sub)), "signature not valid")

	// alg none.
	hdr := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`))
	body, _ := json.Marshal(f.claims(sub))
	none := hdr + "." + base64.RawURLEncoding.EncodeToString(body) + "."
	mustRefuse(t, f.v, none, "algorithm not accepted")

	// HS256 with the public key as the secret: as PEM, as DER and as the
	// JWK JSON, with and without the trusted kid.
	pub := k.Priv.Public()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	jwk, _ := k.Public().MarshalJSON()
	for _, secret := range [][]byte{pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), der, jwk} {
		for _, kid := range []string{"", k.ID} {
			s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.HS256, Key: jose.JSONWebKey{Key: secret, KeyID: kid}}, nil)
			if err != nil {
				t.Fatal(err)
			}
			mustRefuse(t, f.v, issuertest.SignWith(t, s, f.claims(sub)), "algorithm not accepted")
		}
	}
	// And the real token still works after all that.
	mustVerify(t, f.v, f.iss.Sign(k, f.claims(sub)), "triage-bot")
}

func TestRotation(t *testing.T) {
	f := setup(t, defaultBindings)
	sub := "repo:acme/triage:ref:refs/heads/main"
	k1 := f.iss.AddKey(jose.RS256)
	mustVerify(t, f.v, f.iss.Sign(k1, f.claims(sub)), "triage-bot")
	if n := f.iss.JWKSFetches.Load(); n != 1 {
		t.Fatalf("%d JWKS fetches, want 1", n)
	}
	// Cached: no new fetch for a known kid.
	mustVerify(t, f.v, f.iss.Sign(k1, f.claims(sub)), "triage-bot")
	if n := f.iss.JWKSFetches.Load(); n != 1 {
		t.Fatalf("%d JWKS fetches after a cached key, want 1", n)
	}

	// The issuer rotates: a new key appears. A token with its kid triggers
	// a refetch once MinRefetch has passed since the last one.
	k2 := f.iss.AddKey(jose.ES256)
	tok2 := f.iss.Sign(k2, f.claims(sub))
	mustRefuse(t, f.v, tok2, "signature not valid") // within MinRefetch: rate-limited
	if n := f.iss.JWKSFetches.Load(); n != 1 {
		t.Fatalf("%d JWKS fetches within the refetch interval, want 1", n)
	}
	f.clk.Advance(workload.MinRefetch)
	mustVerify(t, f.v, f.iss.Sign(k2, f.claims(sub)), "triage-bot")
	if n := f.iss.JWKSFetches.Load(); n != 2 {
		t.Fatalf("%d JWKS fetches after rotation, want 2", n)
	}
	// A flood of unknown kids costs at most one fetch per interval.
	for range 20 {
		mustRefuse(t, f.v, f.iss.Sign(f.iss.NewKey(jose.ES256), f.claims(sub)), "signature not valid")
	}
	if n := f.iss.JWKSFetches.Load(); n != 2 {
		t.Fatalf("%d JWKS fetches after a flood of unknown kids, want 2", n)
	}

	// The old key is withdrawn: once the cache ages out it is refused.
	f.iss.Remove(k1.ID)
	f.clk.Advance(workload.MaxKeyAge)
	mustRefuse(t, f.v, f.iss.Sign(k1, f.claims(sub)), "signature not valid")
	mustVerify(t, f.v, f.iss.Sign(k2, f.claims(sub)), "triage-bot")
}

func TestAmbiguousMapping(t *testing.T) {
	f := setup(t, func(iss string) []workload.Binding {
		return []workload.Binding{
			{Identity: "a", Issuer: iss, Subject: "repo:acme/x:ref:refs/heads/main"},
			{Identity: "b", Issuer: iss, Claims: map[string]string{"repository": "acme/x"}},
		}
	})
	k := f.iss.AddKey(jose.EdDSA)
	c := f.claims("repo:acme/x:ref:refs/heads/main")
	c["repository"] = "acme/x"
	mustRefuse(t, f.v, f.iss.Sign(k, c), "more than one identity")
	c["repository"] = "acme/y"
	mustVerify(t, f.v, f.iss.Sign(k, c), "a")

	// Identical bindings are refused up front.
	_, err := workload.New([]workload.Issuer{{URL: f.iss.URL, Audience: aud}}, []workload.Binding{
		{Identity: "a", Issuer: f.iss.URL, Subject: "s"}, {Identity: "b", Issuer: f.iss.URL, Subject: "s"},
	}, workload.Options{})
	if err == nil || !strings.Contains(err.Error(), "same binding") {
		t.Fatalf("identical bindings: err = %v", err)
	}
}

func TestLooksLikeJWT(t *testing.T) {
	for tok, want := range map[string]bool{
		"alk_abcdefABCDEF0123456789-_abcdefABCDEF0123456": false,
		"eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln":       true,
		"a.b":     false,
		"a.b.c d": false,
	} {
		if got := workload.LooksLikeJWT(tok); got != want {
			t.Errorf("LooksLikeJWT(%q) = %v", tok, got)
		}
	}
}

// The fetch of an issuer's keys serves every caller, so the caller whose
// token happened to trigger it must not decide how it ends. A client that
// hangs up at once used to cancel the fetch; the failure counted as the
// fetch of the interval and the old keys stayed: repeated every
// MinRefetch, that kept a withdrawn key accepted, and a rotated-in one
// refused, for as long as the client went on.
func TestCancelledCallerDoesNotCancelTheKeyFetch(t *testing.T) {
	f := setup(t, defaultBindings)
	sub := "repo:acme/triage:ref:refs/heads/main"
	k1 := f.iss.AddKey(jose.RS256)
	mustVerify(t, f.v, f.iss.Sign(k1, f.claims(sub)), "triage-bot")

	// The issuer withdraws k1 and publishes k2; the cache ages out.
	f.iss.Remove(k1.ID)
	k2 := f.iss.AddKey(jose.ES256)
	f.clk.Advance(workload.MaxKeyAge)

	gone, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := f.v.Verify(gone, f.iss.Sign(k1, f.claims(sub))); err == nil {
		t.Fatal("a token signed with the withdrawn key was accepted")
	}
	if n := f.iss.JWKSFetches.Load(); n != 2 {
		t.Fatalf("%d JWKS fetches, want 2 (the hung-up caller's must still complete)", n)
	}
	// Within MinRefetch of that fetch: the keys are the issuer's current ones.
	mustRefuse(t, f.v, f.iss.Sign(k1, f.claims(sub)), "signature not valid")
	mustVerify(t, f.v, f.iss.Sign(k2, f.claims(sub)), "triage-bot")
}

// Numeric claims are compared as the issuer wrote them. Read as float64,
// an id above 2^53 lost its last digits, so two runs with neighbouring ids
// were one instance, and a number was formatted as 1.234567e+06, so a
// binding on its decimal digits never matched.
func TestNumericClaimsKeepTheirDigits(t *testing.T) {
	f := setup(t, func(iss string) []workload.Binding {
		return []workload.Binding{{Identity: "build-bot", Issuer: iss, Claims: map[string]string{"project_id": "1234567"}}}
	})
	k := f.iss.AddKey(jose.ES256)
	run := func(id string) workload.Result {
		c := f.claims("project_path:acme/build")
		c["project_id"], c["run_id"] = json.Number("1234567"), json.Number(id)
		return mustVerify(t, f.v, f.iss.Sign(k, c), "build-bot")
	}
	a, b := run("9007199254740993"), run("9007199254740992")
	if a.Instance["run_id"] != "9007199254740993" || b.Instance["run_id"] != "9007199254740992" {
		t.Fatalf("instances %v and %v: the run ids lost their digits", a.Instance, b.Instance)
	}
}

// exp and nbf are NumericDates (RFC 7519 §2): a JSON number of seconds.
// One of another type or out of range is not read as absent, nor wrapped
// around into another date.
func TestDateClaimsMustBeDates(t *testing.T) {
	f := setup(t, defaultBindings)
	k := f.iss.AddKey(jose.RS256)
	later := f.clk.Now().Add(time.Hour).Unix()
	for name, tc := range map[string]struct {
		edit   func(c map[string]any)
		reason string
	}{
		"nbf as a string":  {func(c map[string]any) { c["nbf"] = strconv.FormatInt(later, 10) }, "nbf is not a date"},
		"nbf out of range": {func(c map[string]any) { c["nbf"] = 1e19 }, "nbf is not a date"},
		"exp out of range": {func(c map[string]any) { c["exp"] = 1e19 }, "exp is not a date"},
		"exp negative":     {func(c map[string]any) { c["exp"] = -1e19 }, "exp is not a date"},
		// go-oidc's own reading of the standard claims fails on this one.
		"nbf as an object": {func(c map[string]any) { c["nbf"] = map[string]any{"t": later} }, "claims not readable"},
	} {
		t.Run(name, func(t *testing.T) {
			c := f.claims("repo:acme/triage:ref:refs/heads/main")
			tc.edit(c)
			mustRefuse(t, f.v, f.iss.Sign(k, c), tc.reason)
		})
	}
	// A fractional NumericDate is a date.
	c := f.claims("repo:acme/triage:ref:refs/heads/main")
	c["exp"] = float64(later) + 0.5
	mustVerify(t, f.v, f.iss.Sign(k, c), "triage-bot")
}

// An issuer whose keys cannot be fetched is named as such, not as a bad
// signature: go-oidc wraps the key set's error with %v, so errors.Is
// never found errFetch and an outage read "signature not valid", sending
// agents and operators after their tokens.
func TestUnreachableIssuerNamed(t *testing.T) {
	f := setup(t, defaultBindings)
	k := f.iss.AddKey(jose.RS256)
	f.iss.Down.Store(true)
	mustRefuse(t, f.v, f.iss.Sign(k, f.claims("repo:acme/triage:ref:refs/heads/main")), "could not be fetched")
}

// While the issuer cannot be reached, the keys fetched last stay in use,
// so that an outage does not lock every agent out, but only for
// MaxStaleKeyAge: they used to stay for as long as every refetch failed,
// so a withdrawn key went on being accepted while anything kept Airlock
// from reaching the issuer.
func TestStaleKeysServedOnlyForABoundedTime(t *testing.T) {
	f := setup(t, defaultBindings)
	sub := "repo:acme/triage:ref:refs/heads/main"
	k := f.iss.AddKey(jose.RS256)
	mustVerify(t, f.v, f.iss.Sign(k, f.claims(sub)), "triage-bot")

	f.iss.Down.Store(true)
	f.clk.Advance(workload.MaxKeyAge)
	mustVerify(t, f.v, f.iss.Sign(k, f.claims(sub)), "triage-bot") // an outage: the cached keys serve
	if n := f.iss.JWKSFetches.Load(); n != 2 {
		t.Fatalf("%d JWKS fetches, want 2 (the refetch that failed)", n)
	}
	f.clk.Advance(workload.MaxStaleKeyAge - workload.MaxKeyAge)
	mustRefuse(t, f.v, f.iss.Sign(k, f.claims(sub)), "could not be fetched")

	f.iss.Down.Store(false)
	f.clk.Advance(workload.MinRefetch)
	mustVerify(t, f.v, f.iss.Sign(k, f.claims(sub)), "triage-bot")
}

// The cause of a refusal reaches the server's log, which the client's
// message leaves out: the log line of a refused token (httpapi) carries
// the *Error, whose Error() is the client's message only, so an audience
// mismatch or an issuer outage was logged as a bare reason.
func TestRefusalCauseLogged(t *testing.T) {
	f := setup(t, defaultBindings)
	k := f.iss.AddKey(jose.RS256)
	c := f.claims("repo:acme/triage:ref:refs/heads/main")
	c["aud"] = "someone-else"
	_, err := f.v.Verify(context.Background(), f.iss.Sign(k, c))
	if err == nil {
		t.Fatal("accepted")
	}
	var buf bytes.Buffer
	slog.New(slog.NewTextHandler(&buf, nil)).Warn("API call with a refused workload token", "err", err)
	if out := buf.String(); !strings.Contains(out, "audience not accepted") || !strings.Contains(out, "someone-else") {
		t.Fatalf("log line %q lacks the reason or its cause", out)
	}
	if strings.Contains(err.Error(), "someone-else") {
		t.Fatalf("the client's message %q holds what the token held", err.Error())
	}
}

// An issuer's jwks_uri is discovered again at every refetch: it used to be
// discovered once, so when an issuer moved its key set, Airlock went on
// trusting whatever the old address served (the withdrawn keys, or anyone
// who took the address over) and never saw the new keys until a restart.
func TestMovedKeySetFollowed(t *testing.T) {
	f := setup(t, defaultBindings)
	sub := "repo:acme/triage:ref:refs/heads/main"
	old := f.iss.AddKey(jose.RS256)
	mustVerify(t, f.v, f.iss.Sign(old, f.claims(sub)), "triage-bot")

	// The issuer's keys move to a new address, with a new key; the old
	// address still serves the old key.
	moved := issuertest.New(t)
	moved.NewKey(jose.RS256) // another kid than old's
	k := moved.AddKey(jose.ES256)
	f.iss.MoveKeys(moved.URL + "/keys")
	f.clk.Advance(workload.MaxKeyAge)
	mustVerify(t, f.v, moved.Sign(k, f.claims(sub)), "triage-bot")
	mustRefuse(t, f.v, f.iss.Sign(old, f.claims(sub)), "signature not valid")
}

// A refetch in flight does not hold up tokens of keys already known. The
// key set's lock used to be held through the fetch, so a token with a
// made-up kid (anyone can send one; it starts a refetch every MinRefetch)
// made every agent's sign-in wait for the issuer to answer: against a
// slow or unreachable issuer, up to the fetch's timeout, every
// MinRefetch. Tokens of the new key still share the one fetch.
func TestRefetchDoesNotHoldKnownKeys(t *testing.T) {
	f := setup(t, defaultBindings)
	sub := "repo:acme/triage:ref:refs/heads/main"
	k1 := f.iss.AddKey(jose.RS256)
	mustVerify(t, f.v, f.iss.Sign(k1, f.claims(sub)), "triage-bot")

	f.clk.Advance(workload.MinRefetch)
	k2 := f.iss.AddKey(jose.ES256)
	entered, release := f.iss.Hold()
	// Only a watchdog, well inside the fetch's own 10 s timeout: the
	// verification of a known key below must not need it.
	var released atomic.Bool
	watchdog := time.AfterFunc(5*time.Second, func() { released.Store(true); release() })
	defer watchdog.Stop()

	newKey := make(chan error, 2)
	verifyNew := func() {
		_, err := f.v.Verify(context.Background(), f.iss.Sign(k2, f.claims(sub)))
		newKey <- err
	}
	go verifyNew() // k2's kid is unknown: it fetches, and the issuer holds it
	<-entered

	mustVerify(t, f.v, f.iss.Sign(k1, f.claims(sub)), "triage-bot")
	if released.Load() {
		t.Fatal("a token of a known key waited for the refetch in flight")
	}
	go verifyNew() // a second token of the new key waits for the same fetch
	release()
	for range 2 {
		if err := <-newKey; err != nil {
			t.Fatalf("a token of the new key: %v", err)
		}
	}
	if n := f.iss.JWKSFetches.Load(); n != 2 {
		t.Fatalf("%d JWKS fetches, want 2", n)
	}
}
