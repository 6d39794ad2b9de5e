package config

import (
	"strings"
	"testing"
)

// listen.max_connections and max_connections_per_host: a positive number,
// none (no cap: -1), or unset (the default: 0).
func TestListenConnectionCaps(t *testing.T) {
	inConfigDir(t)
	base := "data_dir: d\npolicies: policies\nlisten:\n  api: 127.0.0.1:8700\n"
	for _, tc := range []struct {
		yaml          string
		max, per      int
		wantErrSubstr string
	}{
		{"", 0, 0, ""},
		{"  max_connections: 100\n  max_connections_per_host: 8\n", 100, 8, ""},
		{"  max_connections: none\n  max_connections_per_host: none\n", -1, -1, ""},
		{"  max_connections: 0\n", 0, 0, "listen.max_connections: expected a positive number of connections, or none"},
		{"  max_connections_per_host: -5\n", 0, 0, "listen.max_connections_per_host: expected a positive number"},
		{"  max_connections: 1e3\n", 0, 0, "expected a positive number"},
		{"  max_connections: [1]\n", 0, 0, "listen.max_connections"},
	} {
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
		if c.Listen.MaxConnections != tc.max || c.Listen.MaxConnectionsPerHost != tc.per {
			t.Errorf("%q: got %d, %d; want %d, %d", tc.yaml, c.Listen.MaxConnections, c.Listen.MaxConnectionsPerHost, tc.max, tc.per)
		}
	}
}
