package config

import (
	"slices"
	"strings"
	"testing"
)

// capCase is one way of writing cap keys: what follows the base file, the
// values it decodes to, or the error it makes.
type capCase struct {
	yaml          string
	want          []int
	wantErrSubstr string
}

// checkCaps parses base followed by each case and compares got's values.
func checkCaps(t *testing.T, base string, cases []capCase, got func(*Config) []int) {
	t.Helper()
	inConfigDir(t)
	for _, tc := range cases {
		c, err := Parse("airlock.yaml", []byte(base+tc.yaml))
		if tc.wantErrSubstr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErrSubstr) {
				t.Errorf("%q: err %v, want %q", tc.yaml, err, tc.wantErrSubstr)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tc.yaml, err)
			continue
		}
		if g := got(c); !slices.Equal(g, tc.want) {
			t.Errorf("%q: got %v; want %v", tc.yaml, g, tc.want)
		}
	}
}

// listen.max_connections and max_connections_per_host: a positive number,
// none (no cap: -1), or unset (the default: 0).
func TestListenConnectionCaps(t *testing.T) {
	checkCaps(t, "data_dir: d\npolicies: policies\nlisten:\n  api: 127.0.0.1:8700\n", []capCase{
		{"", []int{0, 0}, ""},
		{"  max_connections: 100\n  max_connections_per_host: 8\n", []int{100, 8}, ""},
		{"  max_connections: none\n  max_connections_per_host: none\n", []int{-1, -1}, ""},
		{"  max_connections: 0\n", nil, "listen.max_connections: expected a positive number of connections, or none"},
		{"  max_connections_per_host: -5\n", nil, "listen.max_connections_per_host: expected a positive number"},
		{"  max_connections: 1e3\n", nil, "expected a positive number"},
		{"  max_connections: [1]\n", nil, "listen.max_connections"},
	}, func(c *Config) []int { return []int{c.Listen.MaxConnections, c.Listen.MaxConnectionsPerHost} })
}

// targets[].max_sessions_per_grant: a positive number, none (no bound:
// -1), or unset (the gateway's default: 0).
func TestMaxSessionsPerGrant(t *testing.T) {
	checkCaps(t, "data_dir: d\npolicies: policies\ntargets:\n  - name: db\n    kind: postgres\n    account: dev\n    upstream: postgres://airlock_admin@127.0.0.1:5432/orders\n", []capCase{
		{"", []int{0}, ""},
		{"    max_sessions_per_grant: 4\n", []int{4}, ""},
		{"    max_sessions_per_grant: none\n", []int{-1}, ""},
		{"    max_sessions_per_grant: 0\n", nil, "targets[0].max_sessions_per_grant: expected a positive number of connections, or none"},
		{"    max_sessions_per_grant: -1\n", nil, "targets[0].max_sessions_per_grant: expected a positive number"},
		{"    max_sessions_per_grant: ten\n", nil, "targets[0].max_sessions_per_grant"},
	}, func(c *Config) []int { return []int{c.Targets[0].MaxSessionsPerGrant} })
}
