package config

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// The sso block and a person's email (DESIGN.md's optional keys).
func TestSSO(t *testing.T) {
	inConfigDir(t)
	doc := strings.Replace(quickstartYAML(), "    groups: [sre-leads]\n", "    groups: [sre-leads]\n    email: alice@example.com\n", 1) + `sso:
  issuer: https://login.example.com
  client_id: airlock
  client_secret_env: AIRLOCK_SSO_SECRET
`
	c, err := Parse("airlock.yaml", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	want := SSO{Issuer: "https://login.example.com", ClientID: "airlock", ClientSecretEnv: "AIRLOCK_SSO_SECRET", IdentityClaim: "email"}
	if c.SSO == nil || c.SSO.Issuer != want.Issuer || c.SSO.ClientID != want.ClientID || c.SSO.ClientSecretEnv != want.ClientSecretEnv ||
		c.SSO.IdentityClaim != want.IdentityClaim || c.SSO.GroupsClaim != "" || c.SSO.RequiredGroups != nil {
		t.Fatalf("sso = %+v, want %+v", c.SSO, want)
	}
	if c.Identities[1].Email != "alice@example.com" {
		t.Fatalf("alice's email = %q", c.Identities[1].Email)
	}
	env := map[string]string{"AWS_PROD_ACCESS_KEY_ID": "a", "AWS_PROD_SECRET_ACCESS_KEY": "b"}
	err = c.CheckEnv(func(k string) string { return env[k] })
	if err == nil || !strings.Contains(err.Error(), "sso.client_secret_env") || !strings.Contains(err.Error(), "AIRLOCK_SSO_SECRET") {
		t.Fatalf("CheckEnv without the secret: %v", err)
	}
	env["AIRLOCK_SSO_SECRET"] = "s"
	if err := c.CheckEnv(func(k string) string { return env[k] }); err != nil {
		t.Fatalf("CheckEnv with the secret: %v", err)
	}
	g, err := Parse("airlock.yaml", []byte(doc+"  required_groups: [airlock-approvers]\n"))
	if err != nil || g.SSO.GroupsClaim != "groups" || len(g.SSO.RequiredGroups) != 1 || g.SSO.RequiredGroups[0] != "airlock-approvers" {
		t.Fatalf("required_groups: %+v %v", g.SSO, err)
	}
	// groups_claim alone restricts nothing: whoever wrote it meant to.
	_, err = Parse("airlock.yaml", []byte(doc+"  groups_claim: roles\n"))
	if err == nil || !strings.Contains(err.Error(), "sso.groups_claim: only used with sso.required_groups") {
		t.Fatalf("groups_claim without required_groups: %v", err)
	}
	g, err = Parse("airlock.yaml", []byte(doc+"  groups_claim: roles\n  required_groups: [airlock-approvers]\n"))
	if err != nil || g.SSO.GroupsClaim != "roles" {
		t.Fatalf("groups_claim with required_groups: %+v %v", g.SSO, err)
	}
	_, err = Parse("airlock.yaml", []byte(quickstartYAML()+"sso:\n  issuer: https://login.example.com\n"))
	if err == nil || !strings.Contains(err.Error(), "sso.client_id") || !strings.Contains(err.Error(), "sso.client_secret_env") {
		t.Fatalf("incomplete sso: %v", err)
	}
}

// The issuer gets the client secret and gives the keys that sign ID
// tokens: https://, or plain http:// to a loopback provider only.
func TestSSOIssuer(t *testing.T) {
	inConfigDir(t)
	doc := func(issuer string) []byte {
		return []byte(quickstartYAML() + "sso:\n  issuer: " + issuer + "\n  client_id: airlock\n  client_secret_env: AIRLOCK_SSO_SECRET\n")
	}
	for _, ok := range []string{"https://login.example.com", "https://login.example.com/realms/acme", "http://127.0.0.1:9000", "http://[::1]:9000", "http://localhost:9000"} {
		if _, err := Parse("airlock.yaml", doc(ok)); err != nil {
			t.Errorf("issuer %s refused: %v", ok, err)
		}
	}
	for bad, why := range map[string]string{
		"http://login.example.com":          "loopback",
		"http://10.0.0.5:9000":              "loopback",
		"ftp://login.example.com":           "https://",
		"login.example.com":                 "https://",
		"https://u:p@login.example.com":     "credentials",
		"https://login.example.com/?tenant": "query",
		"https:///path":                     "no host",
	} {
		_, err := Parse("airlock.yaml", doc(bad))
		if err == nil || !strings.Contains(err.Error(), "sso.issuer") || !strings.Contains(err.Error(), why) {
			t.Errorf("issuer %s: %v, want an sso.issuer error about %s", bad, err, why)
		}
	}
}

// A person's email maps an SSO sign-in to them: it belongs to one person
// (compared without case, as the console matches it) and to people only.
func TestSSOEmailsUnique(t *testing.T) {
	inConfigDir(t)
	doc := "data_dir: d\npolicies: policies\nidentities:\n" +
		`  - {name: alice, kind: human, email: alice@example.com, key_sha256: "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"}
  - {name: bob, kind: human, email: Alice@Example.com, key_sha256: "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"}
  - {name: bot, kind: agent, owner: sre, email: bot@example.com, key_sha256: "cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc"}
`
	_, err := Parse("airlock.yaml", []byte(doc))
	if err == nil {
		t.Fatal("two people with one email, and an agent with one, were accepted")
	}
	for _, want := range []string{
		`identities[1].email: email "Alice@Example.com" is already identities[0] (alice)'s`,
		`identities[2].email: only people sign in with SSO`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
}

// An owner is an agent's: policies ignore a person's, so the file may not
// give one.
func TestHumanOwnerRefused(t *testing.T) {
	inConfigDir(t)
	doc := "data_dir: d\npolicies: policies\nidentities:\n" +
		`  - {name: alice, kind: human, owner: sre-team, key_sha256: "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"}
`
	_, err := Parse("airlock.yaml", []byte(doc))
	if err == nil || !strings.Contains(err.Error(), "identities[0].owner: only agents have an owner") {
		t.Fatalf("a person with an owner: %v", err)
	}
}

// The console looks a sign-in's claim up among the emails before the
// names, so an "email" that is another person's name would sign that
// person in as this one (with identity_claim: preferred_username, say).
// An email must be an address: something@domain, without spaces or
// control characters.
func TestSSOEmailIsAnAddress(t *testing.T) {
	inConfigDir(t)
	const doc = "data_dir: d\npolicies: policies\nidentities:\n" +
		`  - {name: alice, kind: human, key_sha256: "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"}
  - {name: mallory, kind: human, email: %s, key_sha256: "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"}
`
	for _, email := range []string{`alice`, `"@example.com"`, `"alice@"`, `"a@b@example.com"`, `"alice @example.com"`, `"alice@example.com\u0007"`} {
		_, err := Parse("airlock.yaml", []byte(fmt.Sprintf(doc, email)))
		if err == nil || !strings.Contains(err.Error(), "identities[1].email: ") || !strings.Contains(err.Error(), "not an email address") {
			t.Errorf("email %s: %v", email, err)
		}
		if err != nil && strings.ContainsRune(err.Error(), '\a') {
			t.Errorf("the error holds a control character: %q", err)
		}
	}
	if _, err := Parse("airlock.yaml", []byte(fmt.Sprintf(doc, "mallory+airlock@mail.example.com"))); err != nil {
		t.Fatal(err)
	}
}

// A person may sign in with SSO alone (DESIGN: "People sign in with the
// organisation's SSO (OIDC) or an API key"): with an sso section, a human
// identity needs no key_sha256. Before, every person had to have an API
// key, so the README's SSO example (alice with only an email) did not load.
func TestSSOOnlyPersonNeedsNoKey(t *testing.T) {
	inConfigDir(t)
	keyless := strings.Replace(quickstartYAML(), "    key_sha256: \""+strings.ToUpper(aliceHash)+"\"\n", "    email: alice@example.com\n", 1)
	if keyless == quickstartYAML() {
		t.Fatal("alice's key_sha256 not found in the quickstart")
	}
	sso := "sso:\n  issuer: https://login.example.com\n  client_id: airlock\n  client_secret_env: AIRLOCK_SSO_SECRET\n"
	c, err := Parse("airlock.yaml", []byte(keyless+sso))
	if err != nil {
		t.Fatalf("a person with SSO and no key: %v", err)
	}
	if c.Identities[1].Name != "alice" || c.Identities[1].KeySHA256 != "" {
		t.Fatalf("alice = %+v", c.Identities[1])
	}
	// Without sso she could not sign in at all, nor can an agent go keyless.
	_, err = Parse("airlock.yaml", []byte(keyless))
	if err == nil || !strings.Contains(err.Error(), "identities[1].key_sha256: required") {
		t.Fatalf("a person with neither key nor sso: %v", err)
	}
	noBotKey := strings.Replace(quickstartYAML(), "    key_sha256: \""+botHash+"\"\n", "", 1)
	_, err = Parse("airlock.yaml", []byte(noBotKey+sso))
	if err == nil || !strings.Contains(err.Error(), "identities[0].key_sha256: required") {
		t.Fatalf("an agent with neither key nor oidc: %v", err)
	}
}

// An oidc issuer that is also the SSO issuer may not take sso.client_id
// as its audience: the console's ID tokens carry aud = client_id, so a
// person's would be accepted as an agent's workload token wherever a
// binding matched its subject. The same issuer with an audience of its
// own is fine (the verifier then refuses tokens issued to the sign-in
// client, see workload.Issuer.SignInClientID).
func TestSSOClientIsNotAWorkloadAudience(t *testing.T) {
	inConfigDir(t)
	doc := func(issuer, audience string) []byte {
		return []byte(quickstartYAML() + "sso:\n  issuer: https://login.example.com/realms/acme\n  client_id: airlock\n  client_secret_env: AIRLOCK_SSO_SECRET\n" +
			"oidc:\n  - issuer: " + issuer + "\n    audience: " + audience + "\n")
	}
	for _, issuer := range []string{"https://login.example.com/realms/acme", "https://login.example.com/realms/acme/"} {
		_, err := Parse("airlock.yaml", doc(issuer, "airlock"))
		var errs *Errors
		if !errors.As(err, &errs) || len(errs.List) != 1 {
			t.Fatalf("issuer %s with audience airlock: %v", issuer, err)
		}
		e := errs.List[0]
		if e.Field != "oidc[0].audience" || e.Line == 0 || !strings.Contains(e.Msg, `"airlock" is also sso.client_id at the same issuer`) ||
			!strings.HasPrefix(e.Error(), "airlock.yaml:") {
			t.Fatalf("issuer %s with audience airlock: %q", issuer, e.Error())
		}
	}
	for _, ok := range [][2]string{{"https://login.example.com/realms/acme", "airlock-agents"}, {"https://token.actions.githubusercontent.com", "airlock"}} {
		if _, err := Parse("airlock.yaml", doc(ok[0], ok[1])); err != nil {
			t.Errorf("issuer %s with audience %s: %v", ok[0], ok[1], err)
		}
	}
}
