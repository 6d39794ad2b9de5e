package config

import (
	"strings"
	"testing"
)

// TestExplicitTagsRefused: a tag changes what YAML makes of a value, and
// the decoder would go by one reading or the other: identity_binding:
// !!null refuse read as unset is the weaker default, record. Tags are
// refused, but for !!str, which the decoder's reading (the value as
// written) already is.
func TestExplicitTagsRefused(t *testing.T) {
	for _, tc := range []struct{ yaml, line string }{
		{"identity_binding: !!null refuse\n", "airlock.yaml:3:"},
		{"tls: {allow_plaintext: !!null true}\n", "airlock.yaml:3:"},
		{"grants: !!map {require_reason: false}\n", "airlock.yaml:3:"},
		{"identities:\n  - {name: bot, kind: agent, owner: sre, key_sha256: !!binary qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqo=}\n", "airlock.yaml:4:"},
		{"identity_binding: !custom refuse\n", "airlock.yaml:3:"},
	} {
		inConfigDir(t)
		c, err := Parse("airlock.yaml", []byte("data_dir: d\npolicies: policies\n"+tc.yaml))
		if err == nil {
			t.Errorf("%q accepted: identity_binding %q, allow_plaintext %v", tc.yaml, c.Binding("bot"), c.TLS.AllowPlaintext)
			continue
		}
		if !strings.Contains(err.Error(), tc.line) || !strings.Contains(err.Error(), "tags") {
			t.Errorf("%q: %v", tc.yaml, err)
		}
	}
	inConfigDir(t)
	c, err := Parse("airlock.yaml", []byte("data_dir: d\npolicies: policies\nidentity_binding: !!str refuse\n"))
	if err != nil || c.IdentityBinding != BindingRefuse {
		t.Fatalf("!!str: %v", err)
	}
}
