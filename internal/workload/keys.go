package workload

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/airlock-dev/airlock/internal/clock"
)

// Bounds on what is read from an issuer.
const (
	maxDocument = 1 << 20 // discovery document or JWKS
	maxKeys     = 100
	// MinRefetch is the least time between two fetches of one issuer's
	// keys: an unknown key id triggers a refetch (key rotation), but a
	// stream of tokens with made-up key ids must not turn Airlock into a
	// load generator against the issuer.
	MinRefetch = 10 * time.Second
	// MaxKeyAge is how long fetched keys are used before they are fetched
	// again even if every key id is known (a key removed from the JWKS
	// stops being accepted within this time).
	MaxKeyAge = time.Hour
	// MaxStaleKeyAge is how long the keys fetched last stay in use while
	// every refetch fails: long enough for an issuer's outage not to lock
	// agents out, bounded so that a withdrawn key is not accepted for as
	// long as something keeps Airlock from reaching the issuer.
	MaxStaleKeyAge = 24 * time.Hour
)

var errFetch = errors.New("fetching the issuer's keys failed")

// Fetcher gets documents from issuers over HTTP with a timeout and a size
// bound.
type Fetcher struct{ client *http.Client }

// NewFetcher returns a Fetcher using client (nil: a client with a 10 s
// timeout). Whichever client it uses, it does not follow a redirect away
// from https, nor one to plain http other than on loopback: the keys must
// come over TLS, as a discovered jwks_uri must.
func NewFetcher(client *http.Client) *Fetcher {
	if client == nil {
		client = &http.Client{Timeout: 10 * time.Second}
	}
	c := *client
	next := c.CheckRedirect
	c.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		u := req.URL
		if u.Scheme != "https" && (via[0].URL.Scheme == "https" || u.Scheme != "http" || !isLoopback(u.Hostname())) {
			return fmt.Errorf("redirected to %s://%s: not followed (keys come over https only)", u.Scheme, u.Host)
		}
		if next != nil {
			return next(req, via)
		}
		if len(via) >= 10 {
			return errors.New("stopped after 10 redirects")
		}
		return nil
	}
	return &Fetcher{client: &c}
}

func (f *Fetcher) getJSON(ctx context.Context, url string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := f.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxDocument+1))
	if err != nil {
		return err
	}
	if len(body) > maxDocument {
		return fmt.Errorf("GET %s: larger than %d bytes", url, maxDocument)
	}
	return json.Unmarshal(body, v)
}

// keySet is one issuer's JWKS cache. It implements oidc.KeySet.
type keySet struct {
	cfg   Issuer
	fetch *Fetcher
	clk   clock.Clock

	mu      sync.Mutex
	keys    []jose.JSONWebKey
	fetched time.Time // last fetch attempt (success or not)
	loaded  time.Time // last successful fetch
	// fetching, while a fetch is in flight, is closed when it ends.
	fetching chan struct{}
}

func newKeySet(cfg Issuer, f *Fetcher, clk clock.Clock) *keySet {
	return &keySet{cfg: cfg, fetch: f, clk: clk}
}

// VerifySignature implements oidc.KeySet.
func (k *keySet) VerifySignature(ctx context.Context, jwt string) ([]byte, error) {
	algs := make([]jose.SignatureAlgorithm, len(Algorithms))
	for i, a := range Algorithms {
		algs[i] = jose.SignatureAlgorithm(a)
	}
	jws, err := jose.ParseSignedCompact(jwt, algs)
	if err != nil {
		return nil, fmt.Errorf("malformed jwt: %w", err)
	}
	if len(jws.Signatures) != 1 {
		return nil, errors.New("malformed jwt: exactly one signature expected")
	}
	kid := jws.Signatures[0].Header.KeyID
	keys, err := k.current(ctx, kid)
	if err != nil {
		return nil, err
	}
	for i := range keys {
		key := &keys[i]
		if kid != "" && key.KeyID != kid {
			continue
		}
		if payload, err := jws.Verify(key); err == nil {
			return payload, nil
		}
	}
	return nil, errors.New("no key of the issuer verifies the signature")
}

// current returns the cached keys, fetching them first when none are
// loaded, when they are older than MaxKeyAge, or when kid is not among
// them (rotation), but never more often than MinRefetch. Keys older than
// MaxStaleKeyAge (every refetch since failed) are not returned.
//
// One fetch at a time per issuer, made without holding k.mu: a caller
// that needs it (its kid unknown, or the keys aged) waits for the fetch in
// flight, so concurrent tokens of a new key share one request; a caller
// whose kid is among fresh keys does not wait. The lock used to be held
// through the fetch, so anyone could make every agent's sign-in wait for
// the issuer: a token with a made-up kid starts a refetch every
// MinRefetch, and against a slow or unreachable issuer (up to the
// fetch's timeout) the keys Airlock already had went unused.
func (k *keySet) current(ctx context.Context, kid string) ([]jose.JSONWebKey, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	for k.fetching != nil {
		now := k.clk.Now()
		if !k.loaded.IsZero() && now.Sub(k.loaded) < MaxKeyAge && (kid == "" || hasKid(k.keys, kid)) {
			return k.keys, nil
		}
		ch := k.fetching
		k.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			k.mu.Lock()
			return nil, ctx.Err()
		}
		k.mu.Lock()
	}
	now := k.clk.Now()
	stale := k.loaded.IsZero() || now.Sub(k.loaded) >= MaxKeyAge || (kid != "" && !hasKid(k.keys, kid))
	if stale && (k.fetched.IsZero() || now.Sub(k.fetched) >= MinRefetch) {
		k.fetched = now
		done := make(chan struct{})
		k.fetching = done
		k.mu.Unlock()
		keys, err := k.load(ctx)
		k.mu.Lock()
		k.fetching = nil
		close(done)
		if err != nil {
			if k.loaded.IsZero() || now.Sub(k.loaded) >= MaxStaleKeyAge {
				return nil, fmt.Errorf("%w: %v", errFetch, err)
			}
			// Keep serving the keys we have: an issuer that is down for a
			// moment must not lock every agent out.
		} else {
			k.keys, k.loaded = keys, now
		}
	}
	if k.loaded.IsZero() || now.Sub(k.loaded) >= MaxStaleKeyAge {
		return nil, errFetch
	}
	return k.keys, nil
}

func hasKid(keys []jose.JSONWebKey, kid string) bool {
	for _, key := range keys {
		if key.KeyID == kid {
			return true
		}
	}
	return false
}

// load discovers the JWKS URL unless it is configured and fetches the
// keys, keeping only public asymmetric signing keys. Discovery runs at
// every load, not once: an issuer may move its key set, and the old
// address must not go on being trusted (serving withdrawn keys, or
// taken over by someone else) while the new keys are never seen.
func (k *keySet) load(ctx context.Context) ([]jose.JSONWebKey, error) {
	// The fetch is every caller's, not only the one whose token triggered
	// it: a client that hangs up must not fail it, or it counts as the
	// interval's fetch and the old keys stay (a withdrawn key accepted, a
	// new one refused) for as long as the client keeps doing so. The
	// timeout bounds it instead.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 15*time.Second)
	defer cancel()
	jwksURL := k.cfg.JWKSURL
	if jwksURL == "" {
		var doc struct {
			Issuer  string `json:"issuer"`
			JWKSURI string `json:"jwks_uri"`
		}
		if err := k.fetch.getJSON(ctx, strings.TrimSuffix(k.cfg.URL, "/")+"/.well-known/openid-configuration", &doc); err != nil {
			return nil, err
		}
		// OpenID Connect Discovery §4.3: the document must name the issuer
		// it was fetched for, or it could point at anyone's keys.
		if doc.Issuer != k.cfg.URL {
			return nil, fmt.Errorf("discovery document names issuer %q, not %q", doc.Issuer, k.cfg.URL)
		}
		if doc.JWKSURI == "" {
			return nil, errors.New("discovery document has no jwks_uri")
		}
		// The keys must come over TLS too (plain http only on loopback,
		// as for the issuer itself).
		if u, err := url.Parse(doc.JWKSURI); err != nil || !(u.Scheme == "https" || (u.Scheme == "http" && isLoopback(u.Hostname()))) {
			return nil, fmt.Errorf("discovery document's jwks_uri %q is not https", doc.JWKSURI)
		}
		jwksURL = doc.JWKSURI
	}
	var set jose.JSONWebKeySet
	if err := k.fetch.getJSON(ctx, jwksURL, &set); err != nil {
		return nil, err
	}
	var out []jose.JSONWebKey
	for _, key := range set.Keys {
		if len(out) == maxKeys {
			break
		}
		if key.Use != "" && key.Use != "sig" {
			continue
		}
		// Only public keys: a symmetric key in a JWKS must never become
		// an HMAC secret.
		if !key.Valid() || !key.IsPublic() {
			continue
		}
		out = append(out, key)
	}
	return out, nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// unverifiedIssuer reads the iss claim of a compact JWT without checking
// anything, only to pick the issuer whose keys check it.
func unverifiedIssuer(tok string) (string, error) {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return "", errors.New("not three parts")
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return "", err
	}
	var c struct {
		Iss string `json:"iss"`
	}
	if err := json.Unmarshal(payload, &c); err != nil {
		return "", err
	}
	if c.Iss == "" {
		return "", errors.New("no iss")
	}
	return c.Iss, nil
}
