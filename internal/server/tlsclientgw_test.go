package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/cli"
	"github.com/airlock-dev/airlock/internal/httpapi"
	"github.com/airlock-dev/airlock/internal/tlscert"
)

// sessionTLSClients are the client certificate fingerprints that grant
// id's session.started entries record ("" for a session without one).
func (e *idEnv) sessionTLSClients(id string) []string {
	e.t.Helper()
	st, body := e.call(from("127.0.0.1"), "GET", "/v1/grants/"+id+"/history", e.alice, nil)
	var h httpapi.HistoryResponse
	if st != http.StatusOK || json.Unmarshal(body, &h) != nil {
		e.t.Fatalf("history: %d %s", st, body)
	}
	var out []string
	for _, ev := range h.Events {
		if ev.Type != "session.started" {
			continue
		}
		var d struct {
			Data struct {
				TLSClient string `json:"tls_client"`
			} `json:"data"`
		}
		if err := json.Unmarshal(ev.Entry, &d); err != nil {
			e.t.Fatal(err)
		}
		out = append(out, d.Data.TLSClient)
	}
	return out
}

var grantIDRe = regexp.MustCompile(`\bg_[a-z0-9]+\b`)

// TestTLSClientCertExecPsql: airlock exec running psql, with
// AIRLOCK_CLIENT_CERT and AIRLOCK_CLIENT_KEY set, has psql present the
// agent's certificate to the PostgreSQL gateway (PGSSLCERT, PGSSLKEY, and
// sslmode require rather than the loopback endpoint's prefer): the
// session is the instance that requested the grant, certificate included.
// Before, psql presented none, so the session's instance had no
// certificate although every API call of the same agent had one.
func TestTLSClientCertExecPsql(t *testing.T) {
	if _, err := exec.LookPath("psql"); err != nil {
		t.Fatal("psql is not installed (the CI installs postgresql-client)")
	}
	e := newIDEnv(t, "refuse")
	api := e.serveTLS()
	a := newClientCert(t, "agent-a")
	t.Setenv("HOME", t.TempDir()) // no ~/.postgresql of this machine's
	t.Setenv("PGSSLCERT", "")
	t.Setenv("PGSSLKEY", "")
	env := map[string]string{"AIRLOCK_ADDR": api, "AIRLOCK_TOKEN": e.bot, "AIRLOCK_CA": filepath.Join(e.dataDir, tlscert.CAFile),
		cli.EnvClientCert: a.CertFile, cli.EnvClientKey: a.KeyFile}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var stdout, stderr bytes.Buffer
	code := cli.Main(ctx, []string{"exec", "orders-db", "--allow", "pg:select postgres.public.*", "--for", "10m", "--reason", "INC-1",
		"--", "psql", "-X", "-At", "-c", "select 1"}, &stdout, &stderr, func(k string) string { return env[k] })
	id := grantIDRe.FindString(stderr.String())
	if id != "" {
		e.grants = append(e.grants, id)
	}
	if code != 0 || strings.TrimSpace(stdout.String()) != "1" || id == "" {
		t.Fatalf("airlock exec -- psql: %d %q %s", code, stdout.String(), stderr.String())
	}
	if got := e.sessionTLSClients(id); len(got) != 1 || got[0] != a.Fingerprint {
		t.Fatalf("the psql session's client certificates = %q, want the agent's %s", got, a.Fingerprint)
	}
	if f := e.grant(id).Findings; len(f) != 0 {
		t.Fatalf("findings %+v", f)
	}

	// A key libpq will not use (readable by others) fails psql's
	// connection; under prefer libpq went on without TLS, a session
	// silently without the certificate.
	if err := os.Chmod(a.KeyFile, 0o644); err != nil {
		t.Fatal(err)
	}
	stdout.Reset()
	stderr.Reset()
	code = cli.Main(ctx, []string{"exec", "orders-db", "--allow", "pg:select postgres.public.*", "--for", "10m", "--reason", "INC-2",
		"--", "psql", "-X", "-At", "-c", "select 1"}, &stdout, &stderr, func(k string) string { return env[k] })
	id2 := grantIDRe.FindString(stderr.String())
	if id2 != "" {
		e.grants = append(e.grants, id2)
	}
	if code == 0 || id2 == "" || !strings.Contains(stderr.String(), "private key file") {
		t.Fatalf("airlock exec -- psql with a key libpq refuses: %d %q %s", code, stdout.String(), stderr.String())
	}
	if got := e.sessionTLSClients(id2); len(got) != 0 {
		t.Fatalf("sessions without the certificate: %q", got)
	}
	e.verify()
}
