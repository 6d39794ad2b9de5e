package config

import (
	"errors"
	"os"
	"strings"
	"testing"
	"time"
)

func TestWorkloadIdentity(t *testing.T) {
	inConfigDir(t)
	c, err := Parse("airlock.yaml", []byte(`data_dir: d
policies: policies
identity_binding: refuse
findings_window: 5m
oidc:
  - issuer: https://token.actions.githubusercontent.com
    audience: airlock
  - issuer: http://127.0.0.1:9999/k8s
    audience: airlock
    jwks_url: http://127.0.0.1:9999/k8s/keys
    instance_claims: [kubernetes.io/pod/name]
identities:
  - name: triage
    kind: agent
    owner: sre
    oidc: { issuer: https://token.actions.githubusercontent.com, subject: "repo:acme/triage:ref:refs/heads/main" }
  - name: deploy
    kind: agent
    owner: sre
    identity_binding: record
    oidc:
      issuer: https://token.actions.githubusercontent.com
      claims: { repository: acme/deploy, workflow: release }
  - name: reader
    kind: agent
    owner: sre
    oidc:
      issuer: http://127.0.0.1:9999/k8s
      subject: system:serviceaccount:ops:reader
      claims: { kubernetes.io/namespace: ops }
`))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.OIDC) != 2 || c.OIDC[1].JWKSURL != "http://127.0.0.1:9999/k8s/keys" || c.OIDC[1].InstanceClaims[0] != "kubernetes.io/pod/name" {
		t.Fatalf("oidc = %+v", c.OIDC)
	}
	if c.Identities[1].OIDC.Claims["workflow"] != "release" || c.Identities[2].OIDC.Claims["kubernetes.io/namespace"] != "ops" {
		t.Fatalf("identities = %+v", c.Identities)
	}
	if c.Window() != 5*time.Minute || c.Binding("triage") != BindingRefuse || c.Binding("deploy") != BindingRecord {
		t.Fatalf("window %v, bindings %q %q", c.FindingsWindow, c.Binding("triage"), c.Binding("deploy"))
	}

	c, err = Parse("airlock.yaml", []byte("data_dir: d\npolicies: policies\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Window() != DefaultFindingsWindow || c.Binding("x") != BindingRecord {
		t.Fatalf("defaults: window %v binding %q", c.FindingsWindow, c.Binding("x"))
	}
}

func TestWorkloadIdentityErrors(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want []loc
	}{
		{"unknown keys", `oidc:
  - {issuer: "https://i.example", audience: a, jwks: x}
identities:
  - {name: a, kind: agent, owner: o, oidc: {issuer: "https://i.example", sub: x}}
`, []loc{
			{"airlock.yaml:4:48: oidc[0].jwks", `unknown key "jwks"`},
			{"airlock.yaml:6:74: identities[0].oidc.sub", `unknown key "sub"`},
		}},
		{"issuer urls", `identity_binding: block
oidc:
  - {issuer: "http://issuer.example.com", audience: a}
  - {issuer: "https://i.example"}
  - {issuer: "https://i.example", audience: b, jwks_url: "http://10.0.0.1/keys"}
`, []loc{
			{"airlock.yaml:3:19: identity_binding", `must be "record" or "refuse"`},
			{"airlock.yaml:5:14: oidc[0].issuer", "only for a loopback issuer"},
			{"airlock.yaml:6:5: oidc[1].audience", "required"},
			{"airlock.yaml:7:14: oidc[2].issuer", "already listed"},
			{"airlock.yaml:7:58: oidc[2].jwks_url", "only for a loopback issuer"},
		}},
		{"token lifetimes", `oidc:
  - {issuer: "https://a.example", audience: a, max_token_lifetime: 0s}
  - {issuer: "https://b.example", audience: a, max_token_lifetime: 169h}
  - {issuer: "https://c.example", audience: a, max_token_lifetime: 3600}
  - {issuer: "https://d.example", audience: a, max_token_lifetime: [1h]}
`, []loc{
			{"airlock.yaml:4:68: oidc[0].max_token_lifetime", "duration must be positive"},
			{"airlock.yaml:5:68: oidc[1].max_token_lifetime", `at most 168h (7 days), got "169h0m0s"`},
			{"airlock.yaml:6:68: oidc[2].max_token_lifetime", "has no unit"},
			{"airlock.yaml:7:68: oidc[3].max_token_lifetime", "expected"},
		}},
		{"bindings", `oidc:
  - {issuer: "https://i.example", audience: a}
identities:
  - {name: a, kind: agent, owner: o, oidc: {issuer: "https://i.example", subject: s}}
  - {name: b, kind: agent, owner: o, oidc: {issuer: "https://i.example", subject: s}}
  - {name: c, kind: agent, owner: o, oidc: {issuer: "https://other.example", subject: t}}
  - {name: d, kind: agent, owner: o, oidc: {issuer: "https://i.example"}}
  - {name: e, kind: human, oidc: {issuer: "https://i.example", subject: e}}
  - {name: f, kind: agent, owner: o}
`, []loc{
			{"airlock.yaml:7:44: identities[1].oidc", "same token binding as identities[0]"},
			{"airlock.yaml:8:53: identities[2].oidc.issuer", "not listed under oidc"},
			{"airlock.yaml:9:44: identities[3].oidc", "give a subject or claims"},
			{"airlock.yaml:10:34: identities[4].oidc", "only agents"},
			{"airlock.yaml:11:5: identities[5].key_sha256", "or for an agent an oidc binding"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			inConfigDir(t)
			if err := os.WriteFile("airlock.yaml", []byte("data_dir: d\npolicies: policies\n"+tt.yaml), 0o600); err != nil {
				t.Fatal(err)
			}
			c, err := Load("airlock.yaml")
			var errs *Errors
			if !errors.As(err, &errs) {
				t.Fatalf("Load = %+v, %v", c, err)
			}
			checkErrors(t, errs, tt.want)
		})
	}
}

// max_token_lifetime sets an issuer's cap; without it the default applies.
func TestTokenLifetimeSetting(t *testing.T) {
	inConfigDir(t)
	c, err := Parse("airlock.yaml", []byte(`data_dir: d
policies: policies
oidc:
  - issuer: https://token.actions.githubusercontent.com
    audience: airlock
    max_token_lifetime: 15m
  - issuer: https://oidc.eks.us-east-1.amazonaws.com/id/EXAMPLE
    audience: airlock
`))
	if err != nil {
		t.Fatal(err)
	}
	if got := c.OIDC[0].TokenLifetime(); got != 15*time.Minute {
		t.Fatalf("oidc[0]'s lifetime = %v, want 15m", got)
	}
	if got := c.OIDC[1].TokenLifetime(); got != 48*time.Hour {
		t.Fatalf("oidc[1]'s lifetime = %v, want the default 48h", got)
	}
}

// TestIssuerURLErrorsHideCredentials: an issuer or JWKS URL with a user
// part is refused without echoing its password.
func TestIssuerURLErrorsHideCredentials(t *testing.T) {
	inConfigDir(t)
	const secret = "s3cret-Pa55word"
	_, err := Parse("airlock.yaml", []byte(`data_dir: d
policies: policies
oidc:
  - {issuer: "https://ci:`+secret+`@i.example", audience: a}
  - {issuer: "https://j.example", audience: a, jwks_url: "https://ci:`+secret+`@j.example/keys"}
`))
	if err == nil || !strings.Contains(err.Error(), "oidc[0].issuer") || !strings.Contains(err.Error(), "oidc[1].jwks_url") {
		t.Fatalf("Parse: %v", err)
	}
	if strings.Contains(err.Error(), secret) {
		t.Fatalf("the error echoes the password: %v", err)
	}
}
