package config

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/airlock-dev/airlock/internal/tlscert"
)

// clearPGEnv unsets the libpq variables pgx fills a URL's gaps with, so
// that the machine's own PGSSLMODE cannot decide a case.
func clearPGEnv(t *testing.T) {
	t.Helper()
	for _, v := range []string{"PGHOST", "PGPORT", "PGSSLMODE", "PGSSLROOTCERT", "PGSSLCERT", "PGSSLKEY",
		"PGSSLNEGOTIATION", "PGSERVICE", "PGSERVICEFILE", "PGTARGETSESSIONATTRS"} {
		t.Setenv(v, "")
	}
}

// TestPostgresTLS: a postgres target's upstream and the store carry the
// admin role's password, the grant roles' SCRAM logins, every statement
// and result, and the log. Both loaded with any sslmode, none given
// meaning pgx's "prefer", which falls back to plaintext and verifies
// nothing. A host off this machine now needs TLS that verifies the server;
// loopback addresses and Unix sockets stay free.
func TestPostgresTLS(t *testing.T) {
	dir := inConfigDir(t)
	clearPGEnv(t)
	if _, _, err := tlscert.Ensure(dir, []string{"127.0.0.1"}); err != nil {
		t.Fatal(err)
	}
	ca := filepath.Join(dir, "ca.pem")
	const refused = "is not reached over TLS that verifies the server"
	cases := []struct {
		name, url string
		env       map[string]string
		msg       string // "" when the URL loads
	}{
		{"loopback, no sslmode", "postgres://a@127.0.0.1:5432/db", nil, ""},
		{"loopback 127/8, disable", "postgres://a@127.0.0.2/db?sslmode=disable", nil, ""},
		{"localhost, prefer", "postgres://a@localhost/db?sslmode=prefer", nil, ""},
		{"::1, require", "postgresql://a@[::1]:5432/db?sslmode=require", nil, ""},
		{"unix socket in host=", "postgres://a@localhost/db?host=/var/run/postgresql", nil, ""},
		{"verify-full", "postgres://a@db.internal:5432/db?sslmode=verify-full", nil, ""},
		{"verify-full, private CA", "postgres://a@db.internal/db?sslmode=verify-full&sslrootcert=" + ca, nil, ""},
		{"verify-ca", "postgres://a@db.internal/db?sslmode=verify-ca&sslrootcert=" + ca, nil, ""},
		// libpq and pgx verify the chain for require when a root
		// certificate is given, as for verify-ca.
		{"require with sslrootcert", "postgres://a@db.internal/db?sslmode=require&sslrootcert=" + ca, nil, ""},
		{"two hosts, verify-full", "postgres://a@db1.internal:5432,db2.internal:5433/db?sslmode=verify-full", nil, ""},
		{"PGSSLMODE=verify-full fills in", "postgres://a@db.internal/db", map[string]string{"PGSSLMODE": "verify-full"}, ""},

		{"no sslmode (prefer)", "postgres://a@db.internal:5432/db", nil, `host "db.internal" ` + refused},
		{"disable", "postgres://a@db.internal/db?sslmode=disable", nil, refused},
		{"allow", "postgres://a@db.internal/db?sslmode=allow", nil, refused},
		{"prefer", "postgres://a@db.internal/db?sslmode=prefer", nil, refused},
		{"require", "postgres://a@db.internal/db?sslmode=require", nil, refused},
		{"private address", "postgres://a@10.0.0.5/db?sslmode=require", nil, `host "10.0.0.5" ` + refused},
		{"localhost lookalike", "postgres://a@localhost.example.com/db", nil, refused},
		{"direct TLS without verification", "postgres://a@db.internal/db?sslnegotiation=direct", nil, refused},
		{"second host plaintext", "postgres://a@127.0.0.1,db.internal/db?sslmode=prefer", nil, `host "db.internal" ` + refused},
		{"host= in the query", "postgres://a@127.0.0.1/db?host=db.internal", nil, `host "db.internal" ` + refused},
		{"PGSSLMODE=require fills in", "postgres://a@db.internal/db", map[string]string{"PGSSLMODE": "require"}, refused},
		{"PGSSLMODE does not override the URL", "postgres://a@db.internal/db?sslmode=disable", map[string]string{"PGSSLMODE": "verify-full"}, refused},
		{"missing sslrootcert", "postgres://a@db.internal/db?sslmode=verify-full&sslrootcert=" + filepath.Join(dir, "nope.pem"), nil, "does not parse as a PostgreSQL URL: failed to configure TLS (unable to read CA file"},
		{"unknown sslmode", "postgres://a@db.internal/db?sslmode=verify", nil, "sslmode is invalid"},
	}
	for _, c := range cases {
		for _, key := range []string{"store", "upstream"} {
			t.Run(key+"/"+c.name, func(t *testing.T) {
				for k, v := range c.env {
					t.Setenv(k, v)
				}
				doc := "data_dir: d\npolicies: policies\nstore: \"" + c.url + "\"\n"
				at := "airlock.yaml:3:8: store"
				if key == "upstream" {
					doc = "data_dir: d\npolicies: policies\ntargets:\n  - name: db\n    kind: postgres\n    account: dev\n    upstream: \"" + c.url + "\"\n"
					at = "airlock.yaml:7:15: targets[0].upstream"
				}
				_, err := Parse("airlock.yaml", []byte(doc))
				if c.msg == "" {
					if err != nil {
						t.Fatalf("refused: %v", err)
					}
					return
				}
				errs := asErrors(t, err)
				checkErrors(t, errs, []loc{{at, c.msg}})
				if c.msg == refused || strings.HasPrefix(c.msg, "host ") {
					if !strings.Contains(err.Error(), "add ?sslmode=verify-full, with &sslrootcert=FILE for a private CA") {
						t.Errorf("the error does not say what to add: %v", err)
					}
				}
			})
		}
	}
}

// TestDocumentedPostgresURLsLoad: every store and upstream URL the README
// and docs/ show as a value loads under the TLS rule (sslrootcert pointing
// at a CA made here instead of /etc/airlock's), so that no example
// written before the rule is left refused.
func TestDocumentedPostgresURLsLoad(t *testing.T) {
	var text strings.Builder
	for _, glob := range []string{"../../README.md", "../../docs/*.md"} {
		files, err := filepath.Glob(glob)
		if err != nil || len(files) == 0 {
			t.Fatalf("%s: %v (%d files)", glob, err, len(files))
		}
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			text.Write(b)
		}
	}
	found := regexp.MustCompile(`(store|upstream): (postgres(?:ql)?://[^\s"`+"`"+`…]+)`).FindAllStringSubmatch(text.String(), -1)
	if len(found) < 3 {
		t.Fatalf("found %d documented URLs, want the README's and docs/replicas.md's", len(found))
	}
	dir := inConfigDir(t)
	clearPGEnv(t)
	if _, _, err := tlscert.Ensure(dir, []string{"127.0.0.1"}); err != nil {
		t.Fatal(err)
	}
	for _, m := range found {
		u := strings.ReplaceAll(m[2], "sslrootcert=/etc/airlock/db-ca.pem", "sslrootcert="+filepath.Join(dir, "ca.pem"))
		doc := "data_dir: d\npolicies: policies\nstore: \"" + u + "\"\n"
		if m[1] == "upstream" {
			doc = "data_dir: d\npolicies: policies\ntargets:\n  - {name: db, kind: postgres, account: dev, upstream: \"" + u + "\"}\n"
		}
		if _, err := Parse("airlock.yaml", []byte(doc)); err != nil {
			t.Errorf("%s: %s: %v", m[1], m[2], err)
		}
	}
}
