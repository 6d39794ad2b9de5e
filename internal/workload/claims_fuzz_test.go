package workload_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/airlock-dev/airlock/internal/clock"
	"github.com/airlock-dev/airlock/internal/workload"
	"github.com/airlock-dev/airlock/internal/workload/issuertest"
)

// FuzzVerifyClaims has the trusted issuer sign arbitrary claim sets (the
// issuer is trusted for its signature, not for what a workload could get
// into its claims) and holds Verify to a reading of its own: a token is
// accepted only with iss the issuer, aud airlock (or a list holding it),
// a numeric exp not past and an nbf absent or not ahead (each within the
// skew), a subject, and the claims of exactly the identity it is mapped
// to, as strings equal to the binding's.
func FuzzVerifyClaims(f *testing.F) {
	iss := issuertest.New(f)
	k := iss.AddKey(jose.ES256)
	now := time.Unix(1748779200, 0)
	v, err := workload.New([]workload.Issuer{{URL: iss.URL, Audience: "airlock"}},
		[]workload.Binding{
			{Identity: "deployer", Issuer: iss.URL, Subject: "repo:org/app:ref:refs/heads/main", Claims: map[string]string{"repository": "org/app", "ref": "refs/heads/main"}},
			{Identity: "job", Issuer: iss.URL, Claims: map[string]string{"job/name": "nightly"}},
		}, workload.Options{Clock: clock.NewFake(now)})
	if err != nil {
		f.Fatal(err)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: k.Alg, Key: jose.JSONWebKey{Key: k.Priv, KeyID: k.ID}}, (&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		f.Fatal(err)
	}
	exp := strconv.FormatInt(now.Add(time.Hour).Unix(), 10)
	u := strconv.Quote(iss.URL)
	for _, c := range []string{
		`{"iss":` + u + `,"aud":"airlock","sub":"repo:org/app:ref:refs/heads/main","exp":` + exp + `,"repository":"org/app","ref":"refs/heads/main"}`,
		`{"iss":` + u + `,"aud":["x","airlock"],"sub":"s","exp":` + exp + `,"nbf":1748779250.5,"job":{"name":"nightly"}}`,
		`{"iss":` + u + `,"aud":"airlock","sub":"s","exp":"` + exp + `","job/name":"nightly"}`,
		`{"iss":` + u + `,"aud":"airlock","sub":"s","exp":1748779150,"job":{"name":"nightly"},"job/name":"nightly"}`,
		`{"iss":` + u + `,"aud":"airlock","sub":"s","exp":1e400,"job/name":"nightly"}`,
		`{"iss":` + u + `,"aud":"airlock","sub":"repo:org/app:ref:refs/heads/main","sub":"s","exp":` + exp + `,"repository":"org/app","ref":"refs/heads/main","job/name":"nightly"}`,
	} {
		f.Add([]byte(c))
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		jws, err := signer.Sign(payload)
		if err != nil {
			return
		}
		tok, err := jws.CompactSerialize()
		if err != nil {
			return
		}
		r, err := v.Verify(context.Background(), tok)
		if err != nil {
			var we *workload.Error
			if !errors.As(err, &we) {
				t.Fatalf("error %v is not a *workload.Error", err)
			}
			return
		}
		dec := json.NewDecoder(bytes.NewReader(payload))
		dec.UseNumber()
		var c map[string]any
		if err := dec.Decode(&c); err != nil {
			t.Fatalf("accepted claims encoding/json cannot read: %v", err)
		}
		fail := func(why string) { t.Helper(); t.Fatalf("accepted as %q with %s: %s", r.Identity, why, payload) }
		if c["iss"] != iss.URL {
			fail("another iss")
		}
		switch a := c["aud"].(type) {
		case string:
			if a != "airlock" {
				fail("another aud")
			}
		case []any:
			found := false
			for _, e := range a {
				found = found || e == "airlock"
			}
			if !found {
				fail("no aud airlock")
			}
		default:
			fail("no aud")
		}
		date := func(name string) (float64, bool) {
			n, ok := c[name].(json.Number)
			if !ok {
				return 0, false
			}
			x, err := n.Float64()
			return x, err == nil
		}
		skew := workload.DefaultSkew.Seconds()
		if e, ok := date("exp"); !ok || float64(now.Unix()) >= e+skew+1 {
			fail("no exp in the future")
		}
		if _, has := c["nbf"]; has {
			if n, ok := date("nbf"); !ok || n > float64(now.Unix())+skew+1 {
				fail("nbf ahead")
			}
		}
		sub, _ := c["sub"].(string)
		str := func(v any) string { s, _ := v.(string); return s }
		switch r.Identity {
		case "deployer":
			if sub != "repo:org/app:ref:refs/heads/main" || str(c["repository"]) != "org/app" || str(c["ref"]) != "refs/heads/main" {
				fail("other claims")
			}
		case "job":
			job, _ := c["job"].(map[string]any)
			if sub == "" || (str(c["job/name"]) != "nightly" && (c["job/name"] != nil || str(job["name"]) != "nightly")) {
				fail("other claims")
			}
		default:
			fail("an identity not bound")
		}
		if r.Subject != sub {
			fail("subject " + strconv.Quote(r.Subject))
		}
	})
}
