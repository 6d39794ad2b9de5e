package workload_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/airlock-dev/airlock/internal/clock"
	"github.com/airlock-dev/airlock/internal/workload"
	"github.com/airlock-dev/airlock/internal/workload/issuertest"
)

// An https issuer's key set that redirects to plain http is not fetched:
// keys read in clear text could be anyone's (a network attacker's), and the
// fetcher promises not to follow a redirect to another scheme, as a
// discovered jwks_uri must be https.
func TestKeysNotFetchedThroughARedirectToPlainHTTP(t *testing.T) {
	plain := issuertest.New(t) // serves the keys over http
	k := plain.AddKey(jose.ES256)
	var tlsURL string
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]any{"issuer": tlsURL, "jwks_uri": tlsURL + "/keys"})
	})
	mux.HandleFunc("GET /keys", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, plain.URL+"/keys", http.StatusFound)
	})
	ts := httptest.NewTLSServer(mux)
	t.Cleanup(ts.Close)
	tlsURL = ts.URL

	clk := clock.NewFake(time.Now().Truncate(time.Second))
	v, err := workload.New([]workload.Issuer{{URL: tlsURL, Audience: aud}},
		[]workload.Binding{{Identity: "triage-bot", Issuer: tlsURL, Subject: "repo:acme/triage"}},
		workload.Options{Clock: clk, Fetcher: workload.NewFetcher(ts.Client())})
	if err != nil {
		t.Fatal(err)
	}
	now := clk.Now()
	tok := plain.Sign(k, map[string]any{"iss": tlsURL, "aud": aud, "sub": "repo:acme/triage",
		"iat": now.Unix(), "exp": now.Add(10 * time.Minute).Unix()})
	mustRefuse(t, v, tok, "")
	if n := plain.JWKSFetches.Load(); n != 0 {
		t.Errorf("the plain-http key set was fetched %d times", n)
	}
}
