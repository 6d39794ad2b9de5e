package workload_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/airlock-dev/airlock/internal/clock"
	"github.com/airlock-dev/airlock/internal/workload"
	"github.com/airlock-dev/airlock/internal/workload/issuertest"
)

// FuzzVerify feeds arbitrary bearer tokens to a verifier whose issuer has a
// real key: nothing may panic, every refusal is a *workload.Error, and only
// the issuer's genuine token is accepted.
func FuzzVerify(f *testing.F) {
	iss := issuertest.New(f)
	k := iss.AddKey(jose.ES256)
	now := time.Now()
	good := iss.Sign(k, map[string]any{"iss": iss.URL, "aud": "airlock", "sub": "s", "exp": now.Add(time.Hour).Unix()})
	v, err := workload.New([]workload.Issuer{{URL: iss.URL, Audience: "airlock"}},
		[]workload.Binding{{Identity: "a", Issuer: iss.URL, Subject: "s"}}, workload.Options{Clock: clock.NewFake(now)})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add(good[:len(good)-3] + "AAA")
	f.Add("eyJhbGciOiJub25lIn0.eyJpc3MiOiJ4In0.")
	f.Add("a.b.c")
	f.Add("..")
	f.Add(strings.Replace(good, ".", "..", 1))
	f.Fuzz(func(t *testing.T, tok string) {
		r, err := v.Verify(context.Background(), tok)
		if err != nil {
			var we *workload.Error
			if !errors.As(err, &we) {
				t.Fatalf("error %v is not a *workload.Error", err)
			}
			return
		}
		// The signed part must be the genuine token's (the signature's own
		// base64 may differ in its unused trailing bits).
		if tok[:strings.LastIndex(tok, ".")] != good[:strings.LastIndex(good, ".")] || r.Identity != "a" {
			t.Fatalf("accepted %q as %q", tok, r.Identity)
		}
	})
}
