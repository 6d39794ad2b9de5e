package workload_test

import (
	"testing"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/airlock-dev/airlock/internal/workload"
)

// A person's ID token from the console's sign-in client at the same
// issuer is not a workload token, even where the issuer puts the workload
// audience in it too, or names the sign-in client as azp only: with the
// subject bound to an agent, it signed in as that agent.
func TestSignInClientTokensRefused(t *testing.T) {
	f := setupIssuer(t, func(is *workload.Issuer) { is.SignInClientID = "airlock-console" })
	k := f.iss.AddKey(jose.RS256)
	sub := "repo:acme/triage:ref:refs/heads/main"
	for name, edit := range map[string]func(c map[string]any){
		"aud holds the sign-in client": func(c map[string]any) { c["aud"] = []string{"airlock-console", aud} },
		"azp is the sign-in client":    func(c map[string]any) { c["azp"] = "airlock-console" },
	} {
		t.Run(name, func(t *testing.T) {
			c := f.claims(sub)
			edit(c)
			mustRefuse(t, f.v, f.iss.Sign(k, c), "issued to the console's sign-in client")
		})
	}
	// An agent's own token from the same issuer: another azp.
	c := f.claims(sub)
	c["aud"], c["azp"] = []string{aud, "something-else"}, "triage-agent"
	mustVerify(t, f.v, f.iss.Sign(k, c), "triage-bot")
}
