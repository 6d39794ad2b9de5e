// Package workload verifies workload identity tokens: OpenID Connect JWTs
// that an agent's platform (a Kubernetes service account, GitHub Actions, any
// issuer with a JWKS) hands the agent, and that the agent presents to Airlock
// as its bearer token instead of an API key.
//
// A token is accepted only if an issuer the configuration trusts signed it
// with an asymmetric key it publishes (RS256, ES256 or EdDSA: "none" and the
// HMAC algorithms are never accepted, so a token "signed" with the public key
// as an HMAC secret fails), its iss and aud are the configured ones, exp and
// nbf hold within a bounded clock skew, iat is not in the future, its
// lifetime is within the issuer's cap, and its claims match exactly one
// agent identity's binding. Signature and iss/aud checks are go-oidc's; key
// discovery and the JWKS cache are this package's, so that a refetch on an
// unknown key id is rate-limited and every size read from the network is
// bounded.
package workload

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"

	"github.com/airlock-dev/airlock/internal/clock"
)

// Algorithms are the only signature algorithms accepted.
var Algorithms = []string{oidc.RS256, oidc.ES256, oidc.EdDSA}

// DefaultSkew is the clock skew allowed on exp and nbf.
const DefaultSkew = 60 * time.Second

// MaxTokenLength bounds a presented token; real workload tokens are a few KiB.
const MaxTokenLength = 16 << 10

// DefaultMaxLifetime caps a token's lifetime (exp − iat, or exp − now for
// a token without iat) when its issuer sets none. A bearer token is good
// to whoever holds it until it expires, so a leaked one with an exp years
// away (an issuer's misconfiguration, a "long-lived" token minted by hand)
// must not be. 48 hours accepts the real ones: GitHub Actions tokens live
// minutes, Kubernetes projected service account tokens an hour by default
// and up to 48 hours where the cluster allows it, EKS's IRSA tokens 24
// hours.
const DefaultMaxLifetime = 48 * time.Hour

// Issuer is one trusted token issuer.
type Issuer struct {
	// URL is the issuer identifier, exactly as the tokens' iss claim.
	URL string
	// Audience is the aud the tokens must carry.
	Audience string
	// JWKSURL, if set, is where the keys are; otherwise OpenID discovery
	// (URL + /.well-known/openid-configuration) finds them.
	JWKSURL string
	// InstanceClaims name claims (paths, see Claim) that tell one instance
	// of a workload from another, e.g. kubernetes.io/pod/name or run_id.
	InstanceClaims []string
	// MaxLifetime caps the tokens' lifetime: exp − iat, or, for a token
	// without iat, exp − now (less the clock skew). 0 is
	// DefaultMaxLifetime.
	MaxLifetime time.Duration
	// SignInClientID, if set, is the client id people sign in to the
	// console with at this same issuer (sso.client_id): a token whose aud
	// holds it, or whose azp is it, was issued to that client, and is a
	// person's ID token, never a workload token.
	SignInClientID string
}

// Binding maps tokens to an agent identity: the token's issuer must be
// Issuer, its sub Subject (if set), and every claim in Claims must equal
// the value given.
type Binding struct {
	Identity string
	Issuer   string
	Subject  string
	Claims   map[string]string
}

// Result is a verified and mapped token.
type Result struct {
	Identity string
	Issuer   string
	Subject  string
	// Instance holds the issuer's configured instance claims present in
	// the token.
	Instance map[string]string
}

// Auth is the "how it authenticated" string shown on records:
// "oidc:<issuer> <subject>".
func (r Result) Auth() string { return "oidc:" + r.Issuer + " " + r.Subject }

// Error is a refused token. Its message is safe to return to the client:
// it names the check that failed, never a claim value or key material.
type Error struct {
	Reason string
	err    error // the underlying cause, for the server's log only
}

func (e *Error) Error() string { return "workload token refused: " + e.Reason }
func (e *Error) Unwrap() error { return e.err }

// LogValue is how the server's log shows a refusal: the reason and its
// cause (go-oidc's or the fetch's message, which may name the token's
// aud or iss but never holds the token or key material).
func (e *Error) LogValue() slog.Value {
	if e.err == nil {
		return slog.StringValue(e.Error())
	}
	return slog.StringValue(e.Error() + ": " + e.err.Error())
}

func refuse(reason string, err error) *Error { return &Error{Reason: reason, err: err} }

// Options tune a Verifier.
type Options struct {
	// Clock is the time source for exp/nbf (default clock.Real).
	Clock clock.Clock
	// Skew bounds the clock skew allowed (default DefaultSkew).
	Skew time.Duration
	// Fetcher fetches discovery documents and key sets (default an HTTP
	// client with timeouts and size bounds).
	Fetcher *Fetcher
	Logger  *slog.Logger
}

// Verifier checks tokens against the trusted issuers and maps them.
type Verifier struct {
	issuers  map[string]*issuer
	bindings []Binding
	clk      clock.Clock
	skew     time.Duration
	log      *slog.Logger
}

type issuer struct {
	cfg  Issuer
	keys *keySet
	ver  *oidc.IDTokenVerifier
}

// New returns a Verifier. Two bindings that would match the same tokens
// are an error here (the configuration also refuses them); bindings that
// merely overlap (one's claims a subset of another's) are caught per token.
func New(issuers []Issuer, bindings []Binding, o Options) (*Verifier, error) {
	if o.Clock == nil {
		o.Clock = clock.Real
	}
	if o.Skew <= 0 {
		o.Skew = DefaultSkew
	}
	if o.Fetcher == nil {
		o.Fetcher = NewFetcher(nil)
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	v := &Verifier{issuers: map[string]*issuer{}, clk: o.Clock, skew: o.Skew, log: o.Logger}
	for _, c := range issuers {
		if c.MaxLifetime <= 0 {
			c.MaxLifetime = DefaultMaxLifetime
		}
		if _, dup := v.issuers[c.URL]; dup {
			return nil, fmt.Errorf("workload: issuer %s listed twice", c.URL)
		}
		ks := newKeySet(c, o.Fetcher, o.Clock)
		v.issuers[c.URL] = &issuer{cfg: c, keys: ks, ver: oidc.NewVerifier(c.URL, ks, &oidc.Config{
			ClientID:             c.Audience,
			SupportedSigningAlgs: Algorithms,
			// exp and nbf are checked below with this package's clock and
			// skew: go-oidc's own check allows 5 minutes on nbf and none on exp.
			SkipExpiryCheck: true,
		})}
	}
	seen := map[string]string{}
	for _, b := range bindings {
		if _, ok := v.issuers[b.Issuer]; !ok {
			return nil, fmt.Errorf("workload: identity %s is bound to issuer %s, which is not trusted", b.Identity, b.Issuer)
		}
		if b.Subject == "" && len(b.Claims) == 0 {
			return nil, fmt.Errorf("workload: identity %s's binding names neither a subject nor claims: it would match every token of %s", b.Identity, b.Issuer)
		}
		k := bindingKey(b)
		if other, dup := seen[k]; dup {
			return nil, fmt.Errorf("workload: identities %s and %s have the same binding", other, b.Identity)
		}
		seen[k] = b.Identity
		v.bindings = append(v.bindings, b)
	}
	return v, nil
}

func bindingKey(b Binding) string {
	keys := make([]string, 0, len(b.Claims))
	for k := range b.Claims {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var sb strings.Builder
	fmt.Fprintf(&sb, "%q %q", b.Issuer, b.Subject)
	for _, k := range keys {
		fmt.Fprintf(&sb, " %q=%q", k, b.Claims[k])
	}
	return sb.String()
}

// Describe is how a binding is shown on an identity's record:
// "oidc:<issuer>", then the subject if set, then each claim as
// <name>=<value> in name order, separated by spaces. For a subject-only
// binding it equals the Auth of the tokens it maps.
func (b Binding) Describe() string {
	parts := []string{"oidc:" + b.Issuer}
	if b.Subject != "" {
		parts = append(parts, b.Subject)
	}
	keys := make([]string, 0, len(b.Claims))
	for k := range b.Claims {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		parts = append(parts, k+"="+b.Claims[k])
	}
	return strings.Join(parts, " ")
}

// BindingsOf describes the bindings that map tokens to identity, in
// configuration order (none: the identity cannot use a workload token).
func (v *Verifier) BindingsOf(identity string) []string {
	var out []string
	for _, b := range v.bindings {
		if b.Identity == identity {
			out = append(out, b.Describe())
		}
	}
	return out
}

// LooksLikeJWT reports whether a bearer token has a JWT's compact shape
// (three base64url parts), so it is worth verifying as a workload token
// rather than hashing as an API key.
func LooksLikeJWT(tok string) bool {
	if len(tok) > MaxTokenLength || strings.Count(tok, ".") != 2 {
		return false
	}
	for _, c := range tok {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_', c == '.':
		default:
			return false
		}
	}
	return true
}

// Verify checks tok and maps it to exactly one bound identity.
func (v *Verifier) Verify(ctx context.Context, tok string) (Result, error) {
	if len(tok) > MaxTokenLength {
		return Result{}, refuse("token too large", nil)
	}
	iss, err := unverifiedIssuer(tok)
	if err != nil {
		return Result{}, refuse("not a well-formed JWT", err)
	}
	is := v.issuers[iss]
	if is == nil {
		return Result{}, refuse("issuer not trusted", nil)
	}
	idt, err := is.ver.Verify(ctx, tok)
	if err != nil {
		return Result{}, v.classify(err)
	}
	claims, err := readClaims(idt)
	if err != nil {
		return Result{}, refuse("claims not readable", err)
	}
	now := v.clk.Now()
	if _, ok := claims["exp"]; !ok {
		return Result{}, refuse("token has no expiry", nil)
	}
	exp, ok := numericDate(claims["exp"])
	if !ok {
		return Result{}, refuse("exp is not a date (a number of seconds)", nil)
	}
	if !now.Before(exp.Add(v.skew)) {
		return Result{}, refuse("token expired", nil)
	}
	// An nbf that is there but unreadable is refused, not skipped: read
	// as absent, a not-yet-valid token would be accepted.
	if raw, ok := claims["nbf"]; ok {
		nbf, ok := numericDate(raw)
		if !ok {
			return Result{}, refuse("nbf is not a date (a number of seconds)", nil)
		}
		if now.Add(v.skew).Before(nbf) {
			return Result{}, refuse("token not yet valid", nil)
		}
	}
	if err := v.checkLifetime(is.cfg.MaxLifetime, now, exp, claims); err != nil {
		return Result{}, err
	}
	if c := is.cfg.SignInClientID; c != "" {
		// The audience check above passed: aud holds the workload
		// audience. A token that was also (or on whose behalf it was)
		// issued to the console's sign-in client is a person's.
		if azp, _ := claims["azp"].(string); azp == c || slices.Contains(idt.Audience, c) {
			return Result{}, refuse("token was issued to the console's sign-in client: a person's ID token is not a workload token", nil)
		}
	}
	if idt.Subject == "" {
		return Result{}, refuse("token has no subject", nil)
	}
	var match []Binding
	for _, b := range v.bindings {
		if b.Issuer == iss && (b.Subject == "" || b.Subject == idt.Subject) && claimsMatch(claims, b.Claims) {
			match = append(match, b)
		}
	}
	switch len(match) {
	case 0:
		return Result{}, refuse("no identity is bound to this token's claims", nil)
	case 1:
	default:
		// Refusing is the only safe answer: picking one would make "who"
		// depend on configuration order.
		names := make([]string, len(match))
		for i, m := range match {
			names[i] = m.Identity
		}
		v.log.Warn("workload token matches several identities", "issuer", iss, "identities", names)
		return Result{}, refuse("token matches more than one identity", nil)
	}
	res := Result{Identity: match[0].Identity, Issuer: iss, Subject: idt.Subject}
	for _, c := range is.cfg.InstanceClaims {
		if s, ok := Claim(claims, c); ok {
			if res.Instance == nil {
				res.Instance = map[string]string{}
			}
			res.Instance[c] = s
		}
	}
	return res, nil
}

// checkLifetime refuses a token issued in the future (iat later than now
// beyond the skew) or living longer than maxLife: exp − iat, or, without
// iat, exp − now (less the skew, by which the issuer's clock may be
// ahead). The reason names the cap, not the token's dates; the cause, for
// the server's log, says by how much.
func (v *Verifier) checkLifetime(maxLife time.Duration, now, exp time.Time, claims map[string]any) *Error {
	raw, ok := claims["iat"]
	if !ok {
		if left := exp.Sub(now); left > maxLife+v.skew {
			return refuse(fmt.Sprintf("token without iat expires later than the issuer's max_token_lifetime (%s) from now", maxLife),
				fmt.Errorf("exp is %s from now", left))
		}
		return nil
	}
	iat, ok := numericDate(raw)
	if !ok {
		return refuse("iat is not a date (a number of seconds)", nil)
	}
	if now.Add(v.skew).Before(iat) {
		return refuse("token issued in the future (iat is ahead of this server's clock)", fmt.Errorf("iat is %s from now", iat.Sub(now)))
	}
	if life := exp.Sub(iat); life > maxLife {
		return refuse(fmt.Sprintf("token lifetime (exp - iat) exceeds the issuer's max_token_lifetime (%s)", maxLife),
			fmt.Errorf("exp is %s after iat", life))
	}
	return nil
}

// classify turns go-oidc's error into a refusal reason.
func (v *Verifier) classify(err error) *Error {
	msg := err.Error()
	switch {
	case strings.Contains(msg, "expected audience"):
		return refuse("audience not accepted", err)
	case strings.Contains(msg, "id token issued by a different provider"):
		return refuse("issuer not trusted", err)
	case strings.Contains(msg, "unexpected signature algorithm"), strings.Contains(msg, "malformed jwt"):
		return refuse("signature algorithm not accepted (RS256, ES256 or EdDSA)", err)
	case strings.Contains(msg, "failed to unmarshal claims"):
		// Signed, but a standard claim has the wrong type.
		return refuse("claims not readable", err)
	case errors.Is(err, errFetch), strings.Contains(msg, errFetch.Error()):
		// go-oidc wraps the key set's error with %v: only its text is left.
		return refuse("the issuer's keys could not be fetched", err)
	default:
		return refuse("signature not valid", err)
	}
}

// Claim looks up a claim by path: keys separated by "/" walk nested
// objects ("kubernetes.io/serviceaccount/name"); a top-level claim whose
// own name holds a "/" is found too. A number is its JSON text as the
// issuer wrote it (claims as readClaims decodes them), a boolean "true" or
// "false"; arrays, objects and null are no value.
func Claim(claims map[string]any, path string) (string, bool) {
	if v, ok := claims[path]; ok {
		return scalar(v)
	}
	var cur any = claims
	for _, k := range strings.Split(path, "/") {
		m, ok := cur.(map[string]any)
		if !ok {
			return "", false
		}
		if cur, ok = m[k]; !ok {
			return "", false
		}
	}
	return scalar(cur)
}

func scalar(v any) (string, bool) {
	switch x := v.(type) {
	case string:
		return x, true
	case json.Number:
		return x.String(), true
	case bool:
		return fmt.Sprint(x), true
	}
	return "", false
}

// readClaims decodes a verified token's claims, keeping numbers as the
// issuer wrote them (json.Number): as float64, an integer id above 2^53
// lost its last digits, so two instances with neighbouring ids were one,
// and 1234567 read as 1.234567e+06, which no binding's "1234567" matched.
func readClaims(idt *oidc.IDToken) (map[string]any, error) {
	var raw json.RawMessage
	if err := idt.Claims(&raw); err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var claims map[string]any
	if err := dec.Decode(&claims); err != nil {
		return nil, err
	}
	return claims, nil
}

func claimsMatch(claims map[string]any, want map[string]string) bool {
	for k, w := range want {
		if got, ok := Claim(claims, k); !ok || got != w {
			return false
		}
	}
	return true
}

// maxDate is the latest NumericDate read (the end of year 9999): past
// it, the conversion to int64 seconds is not defined, and a date in the
// far future could wrap around into the past.
const maxDate = 253402300799

// numericDate reads a NumericDate (RFC 7519 §2): a JSON number of seconds
// since the epoch, possibly with a fraction, between 0 and maxDate.
func numericDate(v any) (time.Time, bool) {
	n, ok := v.(json.Number)
	if !ok {
		return time.Time{}, false
	}
	f, err := n.Float64()
	if err != nil || f < 0 || f > maxDate {
		return time.Time{}, false
	}
	return time.Unix(int64(f), 0), true
}
