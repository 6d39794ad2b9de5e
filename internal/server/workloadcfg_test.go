package server

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/airlock-dev/airlock/internal/config"
	"github.com/airlock-dev/airlock/internal/workload"
	"github.com/airlock-dev/airlock/internal/workload/issuertest"
)

// verifyAs checks that tok maps to want ("" refused with reason).
func verifyAs(t *testing.T, v *workload.Verifier, tok, want, reason string) {
	t.Helper()
	r, err := v.Verify(context.Background(), tok)
	var we *workload.Error
	switch {
	case want != "" && (err != nil || r.Identity != want):
		t.Fatalf("token: %+v, %v; want %s", r, err, want)
	case want == "" && (!errors.As(err, &we) || !strings.Contains(we.Reason, reason)):
		t.Fatalf("token: %+v, %v; want refused with %q", r, err, reason)
	}
}

// An issuer's max_token_lifetime reaches the verifier the server builds;
// without it, the default (48 hours) applies.
func TestWorkloadVerifierTokenLifetime(t *testing.T) {
	short, def := issuertest.New(t), issuertest.New(t)
	cfg := &config.Config{
		OIDC: []config.OIDCIssuer{
			{Issuer: short.URL, Audience: "airlock", MaxTokenLifetime: config.Duration{Duration: time.Hour}},
			{Issuer: def.URL, Audience: "airlock"},
		},
		Identities: []config.Identity{
			{Name: "short-bot", Kind: "agent", OIDC: &config.IdentityOIDC{Issuer: short.URL, Subject: "bot"}},
			{Name: "def-bot", Kind: "agent", OIDC: &config.IdentityOIDC{Issuer: def.URL, Subject: "bot"}},
		},
	}
	v, err := workloadVerifier(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	sign := func(iss *issuertest.Issuer, k issuertest.Key, life time.Duration) string {
		return iss.Sign(k, map[string]any{"iss": iss.URL, "aud": "airlock", "sub": "bot", "iat": now.Unix(), "exp": now.Add(life).Unix()})
	}
	sk, dk := short.AddKey(jose.ES256), def.AddKey(jose.ES256)
	verifyAs(t, v, sign(short, sk, time.Hour), "short-bot", "")
	verifyAs(t, v, sign(short, sk, 2*time.Hour), "", "max_token_lifetime (1h0m0s)")
	verifyAs(t, v, sign(def, dk, 48*time.Hour), "def-bot", "")
	verifyAs(t, v, sign(def, dk, 49*time.Hour), "", "max_token_lifetime (48h0m0s)")
}

// With the SSO issuer also trusted for workload tokens (under an audience
// of its own), a token issued to the console's sign-in client, by aud or
// azp, is refused; an agent's own token of that issuer is not.
func TestWorkloadVerifierRefusesSignInClientTokens(t *testing.T) {
	iss := issuertest.New(t)
	cfg := &config.Config{
		SSO:        &config.SSO{Issuer: iss.URL + "/", ClientID: "airlock-console"},
		OIDC:       []config.OIDCIssuer{{Issuer: iss.URL, Audience: "airlock-agents"}},
		Identities: []config.Identity{{Name: "bot", Kind: "agent", OIDC: &config.IdentityOIDC{Issuer: iss.URL, Subject: "u-1"}}},
	}
	v, err := workloadVerifier(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	k := iss.AddKey(jose.RS256)
	now := time.Now()
	sign := func(aud any, azp string) string {
		c := map[string]any{"iss": iss.URL, "aud": aud, "sub": "u-1", "iat": now.Unix(), "exp": now.Add(5 * time.Minute).Unix()}
		if azp != "" {
			c["azp"] = azp
		}
		return iss.Sign(k, c)
	}
	verifyAs(t, v, sign([]string{"airlock-console", "airlock-agents"}, ""), "", "issued to the console's sign-in client")
	verifyAs(t, v, sign("airlock-agents", "airlock-console"), "", "issued to the console's sign-in client")
	verifyAs(t, v, sign("airlock-agents", "bot-client"), "bot", "")
}
