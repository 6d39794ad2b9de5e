package config

import (
	"strings"
	"testing"
)

// TestListenPublic: listen.public names the addresses clients use behind a
// load balancer; each is checked, and a URL loses its trailing slash.
func TestListenPublic(t *testing.T) {
	inConfigDir(t)
	const base = "data_dir: d\npolicies: policies\nlisten:\n  aws: 127.0.0.1:8701\n  postgres: 127.0.0.1:8702\n  public:\n"
	c, err := Parse("airlock.yaml", []byte(base+"    api: https://airlock.example.com/\n    aws: https://aws.airlock.example.com:8443\n    postgres: pg.airlock.example.com:5432\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := Public{API: "https://airlock.example.com", AWS: "https://aws.airlock.example.com:8443", Postgres: "pg.airlock.example.com:5432"}
	if c.Listen.Public != want {
		t.Fatalf("Public = %+v, want %+v", c.Listen.Public, want)
	}
	if c, err := Parse("airlock.yaml", []byte(quickstartYAML())); err != nil || c.Listen.Public != (Public{}) {
		t.Fatalf("quickstart: %v %+v", err, c.Listen.Public)
	}

	for _, tc := range []struct{ name, yaml, msg string }{
		{"api with a path", base + "    api: https://airlock.example.com/x\n", "listen.public.api"},
		{"api not a URL", base + "    api: airlock.example.com:8700\n", "must be an http:// or https:// URL"},
		{"aws with a query", base + "    aws: https://aws.example.com?x=1\n", "listen.public.aws"},
		{"aws with a user", base + "    aws: https://u:p@aws.example.com\n", "listen.public.aws"},
		{"aws bad port", base + "    aws: https://aws.example.com:99999\n", "listen.public.aws"},
		{"aws ftp", base + "    aws: ftp://aws.example.com\n", "listen.public.aws"},
		{"postgres without port", base + "    postgres: pg.example.com\n", "is not host:port"},
		{"postgres port 0", base + "    postgres: pg.example.com:0\n", "from 1 to 65535"},
		{"postgres a URL", base + "    postgres: postgres://pg.example.com:5432\n", "listen.public.postgres"},
		{"unknown key", base + "    s3: https://s3.example.com\n", "s3"},
		{"aws without its gateway", "data_dir: d\npolicies: policies\nlisten:\n  public:\n    aws: https://aws.example.com\n", "listen.aws is not"},
		{"postgres without its gateway", "data_dir: d\npolicies: policies\nlisten:\n  public:\n    postgres: pg.example.com:5432\n", "listen.postgres is not"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("airlock.yaml", []byte(tc.yaml))
			if err == nil || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("Parse: %v, want an error containing %q", err, tc.msg)
			}
			// A URL with a user part is refused without repeating it.
			if strings.Contains(err.Error(), "u:p@") || strings.Contains(err.Error(), ":p@") {
				t.Fatalf("the error echoes the URL's password: %v", err)
			}
		})
	}
}
