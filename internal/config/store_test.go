package config

import (
	"errors"
	"strings"
	"testing"
)

func TestStore(t *testing.T) {
	inConfigDir(t)
	c, err := Parse("airlock.yaml", []byte(quickstartYAML()+"store: postgres://airlock@db.internal:5432/airlock?sslmode=verify-full\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Store != "postgres://airlock@db.internal:5432/airlock?sslmode=verify-full" {
		t.Fatalf("Store = %q", c.Store)
	}
	c, err = Parse("airlock.yaml", []byte(quickstartYAML()))
	if err != nil {
		t.Fatal(err)
	}
	if c.Store != "" {
		t.Fatalf("quickstart Store = %q, want empty (embedded SQLite)", c.Store)
	}
	if c, err = Parse("airlock.yaml", []byte("data_dir: d\npolicies: policies\nstore: postgresql://airlock@[::1]/airlock\n")); err != nil || c.Store == "" {
		t.Fatalf("postgresql:// with an IPv6 host: %v", err)
	}
}

func TestStoreErrors(t *testing.T) {
	inConfigDir(t)
	const secret = "s3cret-Pa55word"
	cases := []struct {
		name, store, msg string
	}{
		{"not postgres", "mysql://airlock@db/airlock", "must be a postgres:// or postgresql:// URL"},
		{"sqlite path", "./airlock.db", "must be a postgres:// or postgresql:// URL"},
		{"password in user part", "postgres://airlock:" + secret + "@db/airlock", "must not contain a password; set PGPASSWORD"},
		{"password parameter", "postgres://airlock@db/airlock?sslmode=require&password=" + secret, "must not contain a password"},
		{"no host", "postgres:///airlock", "has no host"},
		// The URL is echoed to say which part is wrong: never its query,
		// where libpq takes password and sslpassword.
		{"no host, password parameter", "postgres:///airlock?password=" + secret, "has no host"},
		{"no host, sslpassword parameter", "postgres:///airlock?sslpassword=" + secret, "has no host"},
		{"sslpassword parameter", "postgres://airlock@db:5432/airlock?sslpassword=" + secret, "must not contain a password"},
		{"no database", "postgres://airlock@db:5432/", "must name one database"},
		{"two path segments", "postgres://airlock@db:5432/a/b", "must name one database"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse("airlock.yaml", []byte("data_dir: d\npolicies: policies\nstore: \""+c.store+"\"\n"))
			if err == nil {
				t.Fatal("Parse succeeded")
			}
			var errs *Errors
			if !errors.As(err, &errs) {
				t.Fatalf("error is %T, not *Errors: %v", err, err)
			}
			checkErrors(t, errs, []loc{{"airlock.yaml:3:8: store", c.msg}})
			if strings.Contains(err.Error(), secret) {
				t.Fatalf("error echoes the password: %s", err)
			}
		})
	}
}

// TestUpstreamErrorsHideQuery: a postgres target's upstream is echoed in
// messages about its host or database, and its query may hold a password.
func TestUpstreamErrorsHideQuery(t *testing.T) {
	inConfigDir(t)
	const secret = "s3cret-Pa55word"
	for _, up := range []string{
		"postgres:///orders?password=" + secret,
		"postgres://admin@db.internal:5432/?password=" + secret,
		"postgres://admin@db.internal:5432/a/b?sslmode=require&PASSWORD=" + secret,
	} {
		_, err := Parse("airlock.yaml", []byte("data_dir: d\npolicies: policies\ntargets:\n  - {name: db, kind: postgres, account: dev, upstream: \""+up+"\"}\n"))
		if err == nil {
			t.Fatalf("upstream %q accepted", up)
		}
		if !strings.Contains(err.Error(), "targets[0].upstream") {
			t.Fatalf("upstream %q: %v", up, err)
		}
		if strings.Contains(err.Error(), secret) {
			t.Fatalf("error echoes the password: %s", err)
		}
	}
}

// TestUpstreamPassword: the admin role's password comes from password_env
// (or a password file), never from the file itself; and password_env
// needs a user in the URL for its password to be used at all.
func TestUpstreamPassword(t *testing.T) {
	inConfigDir(t)
	const secret = "s3cret-Pa55word"
	for _, tc := range []struct{ upstream, passwordEnv, msg string }{
		{"postgres://admin:" + secret + "@db.internal:5432/orders", "", "must not contain a password"},
		{"postgres://admin@db.internal:5432/orders?sslmode=require&password=" + secret, "", "must not contain a password"},
		{"postgres://admin@db.internal:5432/orders?Password=" + secret, "ADMIN_PW", "must not contain a password"},
		{"postgres://admin@db.internal:5432/orders?sslpassword=" + secret, "", "must not contain a password"},
		{"postgres://db.internal:5432/orders", "ADMIN_PW", "must name the admin role"},
	} {
		doc := "data_dir: d\npolicies: policies\ntargets:\n  - {name: db, kind: postgres, account: dev, upstream: \"" + tc.upstream + "\""
		if tc.passwordEnv != "" {
			doc += ", password_env: " + tc.passwordEnv
		}
		_, err := Parse("airlock.yaml", []byte(doc+"}\n"))
		if err == nil || !strings.Contains(err.Error(), "targets[0].upstream: "+tc.msg) {
			t.Fatalf("upstream %q: %v, want %q", tc.upstream, err, tc.msg)
		}
		if strings.Contains(err.Error(), secret) {
			t.Fatalf("the error echoes the password: %v", err)
		}
	}
	// Without password_env, a URL without a user is fine (PGUSER, trust).
	if _, err := Parse("airlock.yaml", []byte("data_dir: d\npolicies: policies\ntargets:\n  - {name: db, kind: postgres, account: dev, upstream: \"postgres://db.internal/orders?sslmode=verify-full\"}\n")); err != nil {
		t.Fatal(err)
	}
}
