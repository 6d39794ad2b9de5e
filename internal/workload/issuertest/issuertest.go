// Package issuertest runs a tiny OpenID Connect token issuer on loopback for
// tests: a discovery document, a JWKS whose keys can be added and removed
// while it runs (rotation), and a signer for RS256, ES256 and EdDSA tokens.
package issuertest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"

	jose "github.com/go-jose/go-jose/v4"
)

// Issuer is a running test issuer.
type Issuer struct {
	URL string
	// JWKSFetches counts requests for the key set.
	JWKSFetches atomic.Int64
	// Down, while set, makes the key set answer 503 (an issuer outage).
	Down atomic.Bool
	// hold, if set, holds the next key set request (Hold).
	hold atomic.Pointer[held]

	t    testing.TB
	srv  *httptest.Server
	mu   sync.Mutex
	keys map[string]Key // by kid, published in the JWKS
	// jwksURI, if set, is the jwks_uri discovery names instead of /keys.
	jwksURI string
	seq     int
}

// Key is a signing key.
type Key struct {
	ID   string
	Alg  jose.SignatureAlgorithm
	Priv crypto.Signer
}

// Public is the key's public JWK.
func (k Key) Public() jose.JSONWebKey {
	return jose.JSONWebKey{Key: k.Priv.Public(), KeyID: k.ID, Algorithm: string(k.Alg), Use: "sig"}
}

// New starts an issuer on 127.0.0.1; it stops when the test ends.
func New(t testing.TB) *Issuer {
	i := &Issuer{t: t, keys: map[string]Key{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		i.mu.Lock()
		jwks := i.jwksURI
		i.mu.Unlock()
		if jwks == "" {
			jwks = i.URL + "/keys"
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{
			"issuer": i.URL, "jwks_uri": jwks,
			"id_token_signing_alg_values_supported": []string{"RS256", "ES256", "EdDSA"},
			"response_types_supported":              []string{"id_token"},
			"subject_types_supported":               []string{"public"},
		})
	})
	mux.HandleFunc("GET /keys", func(w http.ResponseWriter, r *http.Request) {
		i.JWKSFetches.Add(1)
		if h := i.hold.Swap(nil); h != nil {
			close(h.entered)
			<-h.release
		}
		if i.Down.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		i.mu.Lock()
		var set jose.JSONWebKeySet
		for _, k := range i.keys {
			set.Keys = append(set.Keys, k.Public())
		}
		i.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(set)
	})
	i.srv = httptest.NewServer(mux)
	i.URL = i.srv.URL
	t.Cleanup(i.srv.Close)
	return i
}

type held struct{ entered, release chan struct{} }

// Hold makes the next key set request wait (a slow or hanging issuer):
// entered is closed when it arrives, and it is answered once release is
// called (release may be called more than once; the test's end calls it).
func (i *Issuer) Hold() (entered <-chan struct{}, release func()) {
	h := &held{entered: make(chan struct{}), release: make(chan struct{})}
	i.hold.Store(h)
	var once sync.Once
	release = func() { once.Do(func() { close(h.release) }) }
	i.t.Cleanup(release)
	return h.entered, release
}

// NewKey makes a key for alg (RS256, ES256 or EdDSA) without publishing it.
func (i *Issuer) NewKey(alg jose.SignatureAlgorithm) Key {
	i.mu.Lock()
	i.seq++
	kid := fmt.Sprintf("k%d", i.seq)
	i.mu.Unlock()
	var priv crypto.Signer
	var err error
	switch alg {
	case jose.RS256:
		priv, err = rsa.GenerateKey(rand.Reader, 2048)
	case jose.ES256:
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case jose.EdDSA:
		_, priv, err = ed25519.GenerateKey(rand.Reader)
	default:
		err = fmt.Errorf("unsupported alg %s", alg)
	}
	if err != nil {
		i.t.Fatal(err)
	}
	return Key{ID: kid, Alg: alg, Priv: priv}
}

// AddKey makes and publishes a key.
func (i *Issuer) AddKey(alg jose.SignatureAlgorithm) Key {
	k := i.NewKey(alg)
	i.Publish(k)
	return k
}

// Publish puts k in the JWKS.
func (i *Issuer) Publish(k Key) {
	i.mu.Lock()
	i.keys[k.ID] = k
	i.mu.Unlock()
}

// MoveKeys makes discovery name uri as the issuer's jwks_uri from now on
// (its own /keys goes on answering).
func (i *Issuer) MoveKeys(uri string) {
	i.mu.Lock()
	i.jwksURI = uri
	i.mu.Unlock()
}

// Remove takes a key out of the JWKS.
func (i *Issuer) Remove(kid string) {
	i.mu.Lock()
	delete(i.keys, kid)
	i.mu.Unlock()
}

// Sign returns a compact JWT of claims signed with k (kid in the header).
func (i *Issuer) Sign(k Key, claims map[string]any) string {
	i.t.Helper()
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: k.Alg, Key: jose.JSONWebKey{Key: k.Priv, KeyID: k.ID}},
		(&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		i.t.Fatal(err)
	}
	return SignWith(i.t, s, claims)
}

// SignWith signs claims with any go-jose signer (for HMAC forgeries).
func SignWith(t testing.TB, s jose.Signer, claims map[string]any) string {
	t.Helper()
	payload, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	obj, err := s.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	out, err := obj.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return out
}
