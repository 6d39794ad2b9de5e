package workload_test

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/airlock-dev/airlock/internal/clock"
	"github.com/airlock-dev/airlock/internal/workload"
	"github.com/airlock-dev/airlock/internal/workload/issuertest"
)

// setupIssuer is setup with the issuer's configuration edited by edit.
func setupIssuer(t *testing.T, edit func(is *workload.Issuer)) *fixture {
	t.Helper()
	iss := issuertest.New(t)
	clk := clock.NewFake(time.Now().Truncate(time.Second))
	is := workload.Issuer{URL: iss.URL, Audience: aud}
	edit(&is)
	v, err := workload.New([]workload.Issuer{is}, defaultBindings(iss.URL), workload.Options{Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{iss: iss, clk: clk, v: v}
}

// A token's lifetime is capped per issuer (DefaultMaxLifetime, 48 h,
// unless the issuer sets MaxLifetime): one with an exp years away was
// accepted for as long as it said, so a leaked one stayed good to its
// holder. Measured as exp − iat, or as exp − now without iat; an iat in
// the future beyond the skew is refused, and so is one that is not a date.
func TestTokenLifetimeCapped(t *testing.T) {
	f := setup(t, defaultBindings)
	k := f.iss.AddKey(jose.ES256)
	now := f.clk.Now()
	sub := "repo:acme/triage:ref:refs/heads/main"
	sign := func(edit func(c map[string]any)) string {
		c := f.claims(sub)
		edit(c)
		return f.iss.Sign(k, c)
	}
	dates := func(iat, exp time.Time) func(c map[string]any) {
		return func(c map[string]any) { c["iat"], c["exp"] = iat.Unix(), exp.Unix() }
	}
	noIat := func(exp time.Time) func(c map[string]any) {
		return func(c map[string]any) { delete(c, "iat"); c["exp"] = exp.Unix() }
	}
	year := 365 * 24 * time.Hour

	for name, tc := range map[string]struct {
		edit   func(c map[string]any)
		reason string // "" accepted
	}{
		// Real lifetimes: GitHub Actions, a Kubernetes projected token's
		// default, EKS IRSA's, and the longest Kubernetes allows when
		// configured to, issued a while ago.
		"10 minutes":          {dates(now, now.Add(10*time.Minute)), ""},
		"1 hour":              {dates(now.Add(-time.Minute), now.Add(59*time.Minute)), ""},
		"24 hours":            {dates(now.Add(-time.Hour), now.Add(23*time.Hour)), ""},
		"48 hours, exactly":   {dates(now.Add(-47*time.Hour), now.Add(time.Hour)), ""},
		"48 hours and 1 s":    {dates(now.Add(-47*time.Hour), now.Add(time.Hour+time.Second)), "exceeds the issuer's max_token_lifetime (48h0m0s)"},
		"a year":              {dates(now, now.Add(year)), "exceeds the issuer's max_token_lifetime"},
		"until 9999":          {func(c map[string]any) { c["exp"] = 253402300799 }, "exceeds the issuer's max_token_lifetime"},
		"no iat, 1 hour left": {noIat(now.Add(time.Hour)), ""},
		"no iat, 48 h left":   {noIat(now.Add(48 * time.Hour)), ""},
		"no iat, a year left": {noIat(now.Add(year)), "token without iat expires later than the issuer's max_token_lifetime (48h0m0s) from now"},
		"no iat, no exp":      {func(c map[string]any) { delete(c, "iat"); delete(c, "exp") }, "token has no expiry"},
		"iat 30 s ahead":      {dates(now.Add(30*time.Second), now.Add(10*time.Minute)), ""},
		"iat 2 minutes ahead": {dates(now.Add(2*time.Minute), now.Add(10*time.Minute)), "token issued in the future"},
		// An iat put ahead does not make a long stay look short: exp − iat
		// is an hour, but the token would be good for 25.
		"iat a day ahead, 1 hour": {dates(now.Add(24*time.Hour), now.Add(25*time.Hour)), "token issued in the future"},
		"iat as a string":         {func(c map[string]any) { c["iat"] = strconv.FormatInt(now.Unix(), 10) }, "iat is not a date"},
		"iat out of range":        {func(c map[string]any) { c["iat"] = 1e19 }, "iat is not a date"},
	} {
		t.Run(name, func(t *testing.T) {
			tok := sign(tc.edit)
			if tc.reason == "" {
				mustVerify(t, f.v, tok, "triage-bot")
				return
			}
			mustRefuse(t, f.v, tok, tc.reason)
			_, err := f.v.Verify(context.Background(), tok)
			if msg := err.Error(); strings.Contains(msg, tok) || strings.Contains(msg, tok[strings.LastIndex(tok, ".")+1:]) ||
				strings.Contains(msg, strconv.FormatInt(now.Unix(), 10)) {
				t.Fatalf("the refusal %q repeats the token or its dates", msg)
			}
		})
	}
}

// An issuer's own cap replaces the default, both ways.
func TestTokenLifetimeCapPerIssuer(t *testing.T) {
	f := setupIssuer(t, func(is *workload.Issuer) { is.MaxLifetime = time.Hour })
	k := f.iss.AddKey(jose.RS256)
	now := f.clk.Now()
	sub := "repo:acme/triage:ref:refs/heads/main"
	c := f.claims(sub)
	c["exp"] = now.Add(time.Hour).Unix()
	mustVerify(t, f.v, f.iss.Sign(k, c), "triage-bot")
	c["exp"] = now.Add(2 * time.Hour).Unix()
	mustRefuse(t, f.v, f.iss.Sign(k, c), "exceeds the issuer's max_token_lifetime (1h0m0s)")
	delete(c, "iat")
	mustRefuse(t, f.v, f.iss.Sign(k, c), "token without iat expires later than the issuer's max_token_lifetime (1h0m0s) from now")

	long := setupIssuer(t, func(is *workload.Issuer) { is.MaxLifetime = 7 * 24 * time.Hour })
	lk := long.iss.AddKey(jose.RS256)
	lc := long.claims(sub)
	lc["exp"] = long.clk.Now().Add(72 * time.Hour).Unix()
	mustVerify(t, long.v, long.iss.Sign(lk, lc), "triage-bot")
}
