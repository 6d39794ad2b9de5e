//go:build unix

package credenv

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/airlock-dev/airlock/internal/grants"
)

var testCA = grants.Credentials{Endpoint: &grants.Endpoint{CAPEM: "-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----\n"}}

// Without a cache directory the CA file goes into a directory of this
// user's in the shared temporary directory, which must be private: one
// another user made in advance (world-writable) would let them swap the
// CA the client trusts. Before, /tmp/airlock was used as found.
func TestWriteCARefusesSharedDirectory(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("HOME", "")
	t.Setenv("XDG_CACHE_HOME", "")
	t.Setenv("TMPDIR", tmp)
	dir := filepath.Join(tmp, "airlock-"+strconv.Itoa(os.Getuid()))
	if err := os.Mkdir(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o777); err != nil { // past the umask
		t.Fatal(err)
	}
	if p, err := WriteCA(testCA); err == nil || !strings.Contains(err.Error(), "may be written by others (mode drwxrwxrwx)") {
		t.Fatalf("WriteCA into a world-writable directory: %q, %v", p, err)
	}
	if err := os.Remove(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(t.TempDir(), dir); err != nil {
		t.Fatal(err)
	}
	if p, err := WriteCA(testCA); err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Fatalf("WriteCA through a symlink: %q, %v", p, err)
	}
	if err := os.Remove(dir); err != nil {
		t.Fatal(err)
	}
	p, err := WriteCA(testCA)
	if err != nil || filepath.Dir(p) != dir {
		t.Fatalf("WriteCA: %q, %v; want a file in %s", p, err, dir)
	}
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("%s: %v, %v; want mode 0700", dir, fi.Mode(), err)
	}
}

// TestEnviron: the command's environment keeps the caller's variables
// except AIRLOCK_TOKEN and those the grant sets; a grant variable without
// a value removes the caller's.
func TestEnviron(t *testing.T) {
	got := Environ([]string{"HOME=/h", "AIRLOCK_TOKEN=alk_secret", "AWS_SESSION_TOKEN=stale", "AIRLOCK_ADDR=http://x", "PGPASSWORD=old"},
		[]Var{{"AWS_ACCESS_KEY_ID", "AK"}, {"AWS_SESSION_TOKEN", ""}, {"PGPASSWORD", "new"}})
	want := []string{"HOME=/h", "AIRLOCK_ADDR=http://x", "AWS_ACCESS_KEY_ID=AK", "PGPASSWORD=new"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("Environ: %q, want %q", got, want)
	}
}

// TestEnvironReroutes: the caller's variables that would take precedence
// over the grant's endpoint are not passed on, for the target's kind only.
func TestEnvironReroutes(t *testing.T) {
	caller := []string{"HOME=/h", "AWS_ENDPOINT_URL_S3=https://s3.amazonaws.com", "AWS_ENDPOINT_URL_DYNAMODB=http://x",
		"AWS_IGNORE_CONFIGURED_ENDPOINT_URLS=true", "AWS_ENDPOINT_URLX=keep", "PGHOSTADDR=10.0.0.9", "PGSERVICE=prod",
		"PGSERVICEFILE=/etc/x", "PGAPPNAME=keep"}
	aws := Environ(caller, Env(grants.Credentials{TargetKind: "aws", AccessKeyID: "AK", SecretAccessKey: "s",
		Endpoint: &grants.Endpoint{URL: "http://127.0.0.1:8701"}}, "", ClientCert{}))
	want := "HOME=/h AWS_ENDPOINT_URLX=keep PGHOSTADDR=10.0.0.9 PGSERVICE=prod PGSERVICEFILE=/etc/x PGAPPNAME=keep"
	if got := strings.Join(aws[:6], " "); got != want {
		t.Errorf("aws: caller's variables kept %q, want %q", got, want)
	}
	pg := Environ(caller, Env(grants.Credentials{TargetKind: "postgres", AccessKeyID: "u", SecretAccessKey: "p",
		Endpoint: &grants.Endpoint{Host: "127.0.0.1", Port: 8702, Database: "d", SSLMode: "disable"}}, "", ClientCert{}))
	want = "HOME=/h AWS_ENDPOINT_URL_S3=https://s3.amazonaws.com AWS_ENDPOINT_URL_DYNAMODB=http://x AWS_IGNORE_CONFIGURED_ENDPOINT_URLS=true AWS_ENDPOINT_URLX=keep PGAPPNAME=keep"
	if got := strings.Join(pg[:6], " "); got != want {
		t.Errorf("postgres: caller's variables kept %q, want %q", got, want)
	}
	if !slices.Contains(pg, "PGREQUIREAUTH=scram-sha-256") {
		t.Errorf("postgres: no PGREQUIREAUTH in %q", pg)
	}
}

// TestVerifyFullWithoutCANamesSystemRoots: a gateway with the operator's
// own certificate (no CA handed out) is checked against the machine's
// trusted roots; libpq has none of its own, so PGSSLROOTCERT names them.
func TestVerifyFullWithoutCANamesSystemRoots(t *testing.T) {
	roots := t.TempDir() + "/roots.pem"
	t.Setenv("SSL_CERT_FILE", roots)
	cr := grants.Credentials{TargetKind: "postgres", AccessKeyID: "u", SecretAccessKey: "p",
		Endpoint: &grants.Endpoint{Host: "pg.example.test", Port: 5432, Database: "d", SSLMode: "verify-full"}}
	env := Env(cr, "", ClientCert{})
	if !slices.Contains(env, Var{"PGSSLROOTCERT", roots}) || !slices.Contains(env, Var{"PGSSLMODE", "verify-full"}) {
		t.Fatalf("verify-full without a CA: %v", env)
	}
	if got := Env(cr, "/cache/gateway-ca.pem", ClientCert{}); !slices.Contains(got, Var{"PGSSLROOTCERT", "/cache/gateway-ca.pem"}) || slices.Contains(got, Var{"PGSSLROOTCERT", roots}) {
		t.Fatalf("with Airlock's CA: %v", got)
	}
	cr.Endpoint.SSLMode = "prefer"
	for _, v := range Env(cr, "", ClientCert{}) {
		if v.Name == "PGSSLROOTCERT" {
			t.Fatalf("a loopback endpoint got %v", v)
		}
	}
	t.Setenv("SSL_CERT_FILE", "")
	if got := SystemRoots(); got == "" || got == roots {
		t.Fatalf("SystemRoots without SSL_CERT_FILE = %q", got)
	}
}

// TestEnvClientCert: with the agent's client certificate, libpq gets it
// (PGSSLCERT, PGSSLKEY, the key defaulting to the certificate's file) and
// an sslmode that cannot fall back to plaintext without it; aws targets
// get nothing for it.
func TestEnvClientCert(t *testing.T) {
	pg := func(mode string, cc ClientCert) map[string]string {
		m := map[string]string{}
		for _, v := range Env(grants.Credentials{TargetKind: "postgres", AccessKeyID: "u", SecretAccessKey: "p",
			Endpoint: &grants.Endpoint{Host: "h", Port: 1, Database: "d", SSLMode: mode}}, "", cc) {
			m[v.Name] = v.Value
		}
		return m
	}
	for mode, want := range map[string]string{"prefer": "require", "allow": "require", "require": "require", "verify-full": "verify-full", "disable": "disable"} {
		m := pg(mode, ClientCert{Cert: "/c.pem", Key: "/k.pem"})
		if m["PGSSLMODE"] != want || m["PGSSLCERT"] != "/c.pem" || m["PGSSLKEY"] != "/k.pem" {
			t.Errorf("%s with a certificate: %v, want sslmode %s", mode, m, want)
		}
	}
	if m := pg("prefer", ClientCert{Cert: "/both.pem"}); m["PGSSLKEY"] != "/both.pem" {
		t.Errorf("key in the certificate's file: %v", m)
	}
	if m := pg("prefer", ClientCert{}); m["PGSSLMODE"] != "prefer" || m["PGSSLCERT"] != "" || m["PGSSLKEY"] != "" {
		t.Errorf("without a certificate: %v", m)
	}
	for _, v := range Env(grants.Credentials{TargetKind: "aws", AccessKeyID: "AK"}, "", ClientCert{Cert: "/c.pem"}) {
		if strings.Contains(v.Value, "/c.pem") {
			t.Errorf("aws: %v", v)
		}
	}
}
