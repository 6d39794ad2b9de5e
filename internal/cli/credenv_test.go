package cli

import (
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/airlock-dev/airlock/internal/credenv"
	"github.com/airlock-dev/airlock/internal/grants"
)

func envMap(vars []envVar) map[string]string {
	m := map[string]string{}
	for _, v := range vars {
		m[v.name] = v.value
	}
	return m
}

func TestCredentialEnvAWS(t *testing.T) {
	cr := grants.Credentials{GrantID: "g_1", TargetKind: "aws", AccessKeyID: "AKALX", SecretAccessKey: "sec", SessionToken: "tok",
		Endpoint: &grants.Endpoint{URL: "https://127.0.0.1:8701", Region: "us-east-1"}}
	m := envMap(credentialEnv(cr, "/tmp/ca.pem", credenv.ClientCert{}))
	want := map[string]string{"AIRLOCK_GRANT": "g_1", "AWS_ACCESS_KEY_ID": "AKALX", "AWS_SECRET_ACCESS_KEY": "sec", "AWS_SESSION_TOKEN": "tok",
		"AWS_ENDPOINT_URL": "https://127.0.0.1:8701", "AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1", "AWS_CA_BUNDLE": "/tmp/ca.pem"}
	for k, v := range want {
		if m[k] != v {
			t.Errorf("%s = %q, want %q", k, m[k], v)
		}
	}
	if _, ok := m["PGPASSWORD"]; ok {
		t.Error("aws credentials set PGPASSWORD")
	}
}

func TestCredentialEnvPostgres(t *testing.T) {
	cr := grants.Credentials{GrantID: "g_2", TargetKind: "postgres", AccessKeyID: "AKALY", SecretAccessKey: "pw",
		Endpoint: &grants.Endpoint{Host: "127.0.0.1", Port: 8702, Database: "orders", SSLMode: "require"}}
	m := envMap(credentialEnv(cr, "", credenv.ClientCert{}))
	want := map[string]string{"PGUSER": "AKALY", "PGPASSWORD": "pw", "PGHOST": "127.0.0.1", "PGPORT": "8702", "PGDATABASE": "orders", "PGSSLMODE": "require"}
	for k, v := range want {
		if m[k] != v {
			t.Errorf("%s = %q, want %q", k, m[k], v)
		}
	}
	if _, ok := m["PGSSLROOTCERT"]; ok {
		t.Error("PGSSLROOTCERT set without a CA")
	}
}

func TestWriteCA(t *testing.T) {
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	if p, err := writeCA(grants.Credentials{}); err != nil || p != "" {
		t.Fatalf("no CA: %q %v", p, err)
	}
	cr := grants.Credentials{Endpoint: &grants.Endpoint{CAPEM: "-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----\n"}}
	p1, err := writeCA(cr)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(p1)
	if err != nil || string(b) != cr.Endpoint.CAPEM {
		t.Fatalf("CA file: %q %v", b, err)
	}
	p2, err := writeCA(cr)
	if err != nil || p2 != p1 {
		t.Fatalf("second write: %q %v, want %q", p2, err, p1)
	}
}

// TestShellQuote round-trips values through a real shell.
func TestShellQuote(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh on PATH")
	}
	for _, v := range []string{"plain", "with space", "it's", "$HOME", "a'b'c", "`x`", "", "AIRLOCKab-_=+/"} {
		out, err := exec.Command(sh, "-c", "export X="+shellQuote(v)+"; printf %s \"$X\"").Output()
		if err != nil {
			t.Fatalf("%q: %v", v, err)
		}
		if string(out) != v {
			t.Errorf("shellQuote(%q) gave %q through sh", v, out)
		}
	}
	if !slices.Contains([]string{"plain"}, shellQuote("plain")) || strings.HasPrefix(shellQuote("plain"), "'") {
		t.Error("a safe value should stay unquoted")
	}
}

func TestCallLine(t *testing.T) {
	for _, tc := range []struct{ entry, want string }{
		{`{"type":"session.call","data":{"kind":"request","action":"s3:GetObject","resource":"arn:aws:s3:::logs/app/a.log","allowed":true,"params":{"key":"app/a.log"}}}`,
			`✓ s3:GetObject arn:aws:s3:::logs/app/a.log  key="app/a.log"`},
		{`{"type":"session.call","data":{"kind":"request","action":"s3:GetObject","resource":"arn:aws:s3:::logs/b","allowed":false,"error":"outside grant"}}`,
			`✗ DENIED s3:GetObject arn:aws:s3:::logs/b  (outside grant)`},
		{`{"type":"session.call","data":{"kind":"request","action":"pg:statement","resource":"orders","allowed":true,"params":{"statement":"select 1\nfrom t","$1":"x"}}}`,
			`✓ SQL> select 1 ↵ from t  $1="x"`},
		{`{"type":"session.call","data":{"kind":"result","status":"200","bytes_out":12,"duration_ns":1500000}}`,
			`   → 200, 0 B in, 12 B out, 1.5ms`},
		{`{"type":"session.call","data":{"kind":"result","rows":3,"error":"42501"}}`,
			`   → 3 rows, error: 42501`},
	} {
		got, ok := callLine([]byte(tc.entry))
		if !ok || got != tc.want {
			t.Errorf("callLine(%s)\n got %q\nwant %q", tc.entry, got, tc.want)
		}
	}
	if _, ok := callLine([]byte(`{"type":"session.started","data":{}}`)); ok {
		t.Error("a session.started entry rendered as a call")
	}
}
