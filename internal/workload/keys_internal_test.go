package workload

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/airlock-dev/airlock/internal/clock"
	"github.com/airlock-dev/airlock/internal/workload/issuertest"
)

// A JWT is a JWS in compact serialization (RFC 7519 §7.2). The key set
// refuses the JSON serialization even when the issuer's key signed it:
// that form can carry several signatures and unprotected headers, which
// nothing here should have to reason about. go-oidc's verifier already
// splits the token into three parts before it asks the key set, so this
// holds the key set to it on its own.
func TestKeySetRefusesJSONSerialization(t *testing.T) {
	iss := issuertest.New(t)
	k := iss.AddKey(jose.ES256)
	ks := newKeySet(Issuer{URL: iss.URL, Audience: "airlock"}, NewFetcher(nil), clock.Real)
	claims, _ := json.Marshal(map[string]any{"iss": iss.URL, "aud": "airlock", "sub": "bot", "exp": time.Now().Add(time.Minute).Unix()})
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: k.Alg, Key: jose.JSONWebKey{Key: k.Priv, KeyID: k.ID}}, (&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		t.Fatal(err)
	}
	obj, err := s.Sign(claims)
	if err != nil {
		t.Fatal(err)
	}
	compact, err := obj.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ks.VerifySignature(context.Background(), compact); err != nil {
		t.Fatalf("the compact token was refused: %v", err)
	}
	if _, err := ks.VerifySignature(context.Background(), obj.FullSerialize()); err == nil {
		t.Fatal("a JWS in JSON serialization was verified as a JWT")
	}
}
