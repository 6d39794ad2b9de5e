package console

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/airlock-dev/airlock/internal/model"
)

// SSO configures sign-in with OpenID Connect: the authorization code flow
// with PKCE, a state bound to the browser, and a nonce bound to the ID
// token. The identity claim's value must be a human identity's name or
// configured email; anyone else is refused, never created.
type SSO struct {
	Issuer, ClientID, ClientSecret string
	// IdentityClaim is the ID token claim to map ("email" by default).
	IdentityClaim string
	// RedirectURL is the registered callback; derived from the request
	// when empty.
	RedirectURL string
	// GroupsClaim and RequiredGroups, if RequiredGroups is set, admit only
	// people whose ID token lists one of them in that claim.
	GroupsClaim    string
	RequiredGroups []string
	// Emails maps an email, folded by FoldEmail, to a human identity's
	// name.
	Emails map[string]string
	// HTTPClient talks to the issuer (tests); http.DefaultClient if nil.
	HTTPClient *http.Client
}

// ssoFlowTTL bounds how long a sign-in may take at the issuer.
const (
	ssoFlowTTL   = 10 * time.Minute
	ssoCookie    = "airlock_console_sso"
	callbackPath = CallbackPath
)

// CallbackPath is the path of the sign-in callback on listen.api; the
// registered redirect URL is the console's public address followed by it.
const CallbackPath = "/console/sso/callback"

// ssoFlow is one sign-in under way. It is kept in the starting browser's
// HttpOnly cookie, not on the server: a table of flows anyone may start
// without finishing would be one anyone can fill, locking everyone out
// of SSO. The cookie binds the state to the browser, as before; the
// issuer's authorization code is good once.
type ssoFlow struct {
	state, verifier, nonce, redirect string
	started                          time.Time
	// previous is the hash (hashID) of the session the browser held when
	// it started, ended once the sign-in succeeds: the callback arrives
	// by a navigation from the issuer's site, which does not carry the
	// SameSite=Strict session cookie, so the callback alone cannot see
	// it. Only its hash: the flow's cookie is not the session's. Zero:
	// none (no SHA-256 is all zeros).
	previous [32]byte
}

// encode is the flow as a cookie value: base64url fields joined by ".".
func (f ssoFlow) encode() string {
	b64 := base64.RawURLEncoding.EncodeToString
	prev := ""
	if f.previous != ([32]byte{}) {
		prev = b64(f.previous[:])
	}
	return strings.Join([]string{f.state, f.nonce, f.verifier, b64([]byte(f.redirect)), strconv.FormatInt(f.started.Unix(), 10), prev}, ".")
}

// decodeFlow reads a cookie value written by encode (or, without the
// previous session's field, by the version before it).
func decodeFlow(v string) (ssoFlow, bool) {
	p := strings.Split(v, ".")
	if (len(p) != 5 && len(p) != 6) || p[0] == "" || p[1] == "" || p[2] == "" {
		return ssoFlow{}, false
	}
	redirect, err := base64.RawURLEncoding.DecodeString(p[3])
	if err != nil {
		return ssoFlow{}, false
	}
	started, err := strconv.ParseInt(p[4], 10, 64)
	if err != nil {
		return ssoFlow{}, false
	}
	f := ssoFlow{state: p[0], nonce: p[1], verifier: p[2], redirect: string(redirect), started: time.Unix(started, 0)}
	if len(p) == 6 && p[5] != "" {
		prev, err := base64.RawURLEncoding.DecodeString(p[5])
		if err != nil || len(prev) != 32 {
			return ssoFlow{}, false
		}
		f.previous = [32]byte(prev)
	}
	return f, true
}

type ssoState struct {
	cfg SSO

	mu       sync.Mutex
	provider *oidc.Provider // discovered on first use, so the issuer need not be up at start
}

func (s *ssoState) ctx(ctx context.Context) context.Context {
	if s.cfg.HTTPClient != nil {
		return oidc.ClientContext(ctx, s.cfg.HTTPClient)
	}
	return ctx
}

func (s *ssoState) getProvider(ctx context.Context) (*oidc.Provider, error) {
	s.mu.Lock()
	p := s.provider
	s.mu.Unlock()
	if p != nil {
		return p, nil
	}
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	p, err := oidc.NewProvider(s.ctx(dctx), s.cfg.Issuer)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.provider = p
	s.mu.Unlock()
	return p, nil
}

func (s *ssoState) oauth(p *oidc.Provider, redirect string) *oauth2.Config {
	return &oauth2.Config{
		ClientID: s.cfg.ClientID, ClientSecret: s.cfg.ClientSecret, Endpoint: p.Endpoint(),
		RedirectURL: redirect, Scopes: []string{oidc.ScopeOpenID, "email", "profile"},
	}
}

func (h *Handler) redirectURL(r *http.Request) string {
	if h.sso.cfg.RedirectURL != "" {
		return h.sso.cfg.RedirectURL
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host + callbackPath
}

// ssoStart sends the browser to the issuer.
func (h *Handler) ssoStart(w http.ResponseWriter, r *http.Request) {
	p, err := h.sso.getProvider(r.Context())
	if err != nil {
		h.logger.Error("SSO issuer discovery failed", "issuer", h.sso.cfg.Issuer, "err", err)
		h.fail(w, r, nil, http.StatusBadGateway, "The sign-in provider cannot be reached right now. Try again, or sign in with your key.")
		return
	}
	state, nonce, verifier := randomToken(), randomToken(), oauth2.GenerateVerifier()
	redirect := h.redirectURL(r)
	flow := ssoFlow{state: state, verifier: verifier, nonce: nonce, redirect: redirect, started: h.clk.Now()}
	if c := h.cookie(r, sessionCookie); c != nil && c.Value != "" {
		flow.previous = hashID(c.Value)
	}
	// The issuer sends the browser back with a cross-site navigation, so
	// this cookie must be Lax to come back with it; it binds the state
	// (and the flow's PKCE verifier and nonce) to this browser.
	h.setCookieSite(w, r, ssoCookie, flow.encode(), int(ssoFlowTTL/time.Second), http.SameSiteLaxMode)
	http.Redirect(w, r, h.sso.oauth(p, redirect).AuthCodeURL(state, oidc.Nonce(nonce), oauth2.S256ChallengeOption(verifier)), http.StatusFound)
}

// ssoCallback finishes the flow: state, code exchange with the PKCE
// verifier, ID token signature, audience, expiry, nonce and authorized
// party, then the identity claim mapped to a known person.
func (h *Handler) ssoCallback(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	refuse := func(status int, msg, why string, args ...any) {
		h.logger.Warn("console SSO sign-in refused", append([]any{"remote", r.RemoteAddr, "why", why}, args...)...)
		h.fail(w, r, nil, status, msg)
	}
	c := h.cookie(r, ssoCookie)
	state := q.Get("state")
	var flow ssoFlow
	ok := false
	if c != nil {
		flow, ok = decodeFlow(c.Value)
	}
	if !ok || !tokenOK(flow.state, state) {
		refuse(http.StatusForbidden, "This sign-in did not start in this browser. Start again from the sign-in page.", "state mismatch")
		return
	}
	h.setCookieSite(w, r, ssoCookie, "", -1, http.SameSiteLaxMode)
	// The provider's error is shown only once the state proved that this
	// browser started the sign-in: checked first, anyone could link to
	// the console with a message of their choosing on its error page.
	if e := q.Get("error"); e != "" {
		refuse(http.StatusUnauthorized, "The sign-in provider did not sign you in ("+oauthError(e)+").", "provider error", "error", oauthError(e))
		return
	}
	if h.clk.Now().Sub(flow.started) > ssoFlowTTL {
		refuse(http.StatusForbidden, "This sign-in has expired. Start again from the sign-in page.", "unknown or expired state")
		return
	}
	p, err := h.sso.getProvider(r.Context())
	if err != nil {
		refuse(http.StatusBadGateway, "The sign-in provider cannot be reached right now.", "discovery", "err", err)
		return
	}
	ctx := h.sso.ctx(r.Context())
	tok, err := h.sso.oauth(p, flow.redirect).Exchange(ctx, q.Get("code"), oauth2.VerifierOption(flow.verifier))
	if err != nil {
		refuse(http.StatusUnauthorized, "The sign-in provider did not accept the sign-in.", "code exchange", "err", err)
		return
	}
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		refuse(http.StatusUnauthorized, "The sign-in provider sent no ID token.", "no id_token")
		return
	}
	idt, err := p.Verifier(&oidc.Config{ClientID: h.sso.cfg.ClientID, Now: h.clk.Now}).Verify(ctx, raw)
	if err != nil {
		refuse(http.StatusUnauthorized, "The ID token from the sign-in provider is not valid.", "id token", "err", err)
		return
	}
	if !tokenOK(flow.nonce, idt.Nonce) {
		refuse(http.StatusUnauthorized, "The ID token does not belong to this sign-in.", "nonce mismatch")
		return
	}
	var claims map[string]any
	if err := idt.Claims(&claims); err != nil {
		refuse(http.StatusUnauthorized, "The ID token's claims cannot be read.", "claims", "err", err)
		return
	}
	if why := authorizedParty(idt.Audience, claims, h.sso.cfg.ClientID); why != "" {
		refuse(http.StatusUnauthorized, "The ID token was not issued to Airlock's sign-in.", why)
		return
	}
	id, err := h.ssoIdentity(claims)
	if err != nil {
		refuse(http.StatusForbidden, err.Error(), "unknown person", "subject", idt.Subject)
		return
	}
	// The session lasts as long as the provider's word does: until the
	// ID token expires (Verify refused one already expired), within the
	// console's own lifetime. Signing in again asks the provider afresh,
	// so a person it disabled or took out of required_groups since is
	// refused then.
	// The session this browser held ends: the one it had when it started
	// (flow.previous), and the one this request carries, should the
	// issuer be on this site, so that its Strict cookie came along.
	if flow.previous != ([32]byte{}) {
		h.ses.dropHashed(flow.previous)
	}
	h.endPrevious(r)
	cookie, _ := h.ses.create(id.Name, "sso", "", idt.Expiry, model.SignIn{Method: model.SignInSSO, Issuer: idt.Issuer, Subject: idt.Subject})
	maxAge := h.ses.ttl
	if left := idt.Expiry.Sub(h.clk.Now()); !idt.Expiry.IsZero() && left < maxAge {
		maxAge = max(left, time.Second)
	}
	h.setCookie(w, r, sessionCookie, cookie, int(maxAge/time.Second))
	h.logger.Info("console sign-in", "identity", id.Name, "via", "sso", "remote", r.RemoteAddr)
	// A page rather than a redirect: the browser arrived here from the
	// issuer's site, and a SameSite=Strict cookie is sent only on a
	// navigation that starts on this site.
	h.render(w, r, nil, http.StatusOK, "signed-in", "Signed in", map[string]any{"Name": id.Name})
}

// authorizedParty checks azp as OpenID Connect Core 3.1.3.7 (5, 6) has
// it: an ID token with several audiences must name the party it was
// issued to in azp, and an azp, where present, must be our client id.
// go-oidc checks only that aud holds our client id, so a token issued to
// another client of the provider, and addressed to us too, signed a
// person in. It returns why the token is refused, "" if it is not.
func authorizedParty(aud []string, claims map[string]any, clientID string) string {
	raw, present := claims["azp"]
	azp, _ := raw.(string)
	switch {
	case present && azp != clientID:
		return "azp is not our client id"
	case !present && len(aud) > 1:
		return "several audiences and no azp"
	}
	return ""
}

// oauthError is a provider's error code as RFC 6749 (4.1.2.1) allows it
// (printable ASCII but '"' and '\\'), bounded; anything else is not an
// error code, and is not repeated.
func oauthError(e string) string {
	if len(e) > 64 {
		return "an error code too long to show"
	}
	for i := 0; i < len(e); i++ {
		if c := e[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' {
			return "an error code that is not one"
		}
	}
	return e
}

// ssoIdentity maps the identity claim to a known, enabled person.
func (h *Handler) ssoIdentity(claims map[string]any) (model.Identity, error) {
	claim := h.sso.cfg.IdentityClaim
	v, _ := claims[claim].(string)
	if v == "" {
		return model.Identity{}, fmt.Errorf("The ID token has no %q claim; Airlock cannot tell who you are.", claim)
	}
	if claim == "email" && !emailVerified(claims) {
		return model.Identity{}, errors.New("Your email address is not verified by the sign-in provider.")
	}
	if len(h.sso.cfg.RequiredGroups) > 0 && !inGroups(claims[h.sso.cfg.GroupsClaim], h.sso.cfg.RequiredGroups) {
		return model.Identity{}, fmt.Errorf("%s is not in a group allowed to use the console (%s).", v, strings.Join(h.sso.cfg.RequiredGroups, ", "))
	}
	name := v
	if n, ok := h.sso.cfg.Emails[FoldEmail(v)]; ok {
		name = n
	}
	id, ok := h.dir.Lookup(name)
	if !ok || id.Disabled || id.Kind != model.Human {
		return model.Identity{}, fmt.Errorf("%s is not a person Airlock knows. Ask an administrator to add you to identities in airlock.yaml (kind: human, with your name or email).", v)
	}
	return id, nil
}

// FoldEmail is an email address as SSO.Emails keys it: ASCII letters in
// lower case, every other character as it is. strings.ToLower would also
// fold non-ASCII look-alikes onto ASCII letters (the Kelvin sign U+212A
// becomes "k", U+0130 becomes "i̇"), so that a provider's verified address
// "ali\u212Ae@…", a mailbox of its own, would sign in as alike@….
func FoldEmail(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + ('a' - 'A')
		}
	}
	return string(b)
}

// emailVerified reports whether the ID token does not deny that its email
// is verified: an absent email_verified is accepted (many providers only
// issue verified addresses and omit it), a present one must be true, as a
// boolean or, from providers that send it so, the string "true". Anything
// else ("false", 0, null) is unverified.
func emailVerified(claims map[string]any) bool {
	v, ok := claims["email_verified"]
	if !ok {
		return true
	}
	switch ev := v.(type) {
	case bool:
		return ev
	case string:
		return strings.EqualFold(ev, "true")
	}
	return false
}

// inGroups reports whether a groups claim (a list of strings, or one
// string) holds one of want.
func inGroups(claim any, want []string) bool {
	var have []string
	switch c := claim.(type) {
	case string:
		have = []string{c}
	case []any:
		for _, g := range c {
			if s, ok := g.(string); ok {
				have = append(have, s)
			}
		}
	}
	for _, h := range have {
		for _, w := range want {
			if h == w {
				return true
			}
		}
	}
	return false
}
