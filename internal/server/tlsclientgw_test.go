package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/airlock-dev/airlock/internal/cli"
	"github.com/airlock-dev/airlock/internal/client"
	"github.com/airlock-dev/airlock/internal/credenv"
	"github.com/airlock-dev/airlock/internal/httpapi"
	"github.com/airlock-dev/airlock/internal/mcpserver"
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

// bearer adds an API key to every request.
type bearer struct {
	key string
	rt  http.RoundTripper
}

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.key)
	return b.rt.RoundTrip(r)
}

// mcpCall calls tool on cs and decodes its result's text into out.
func mcpCall(t *testing.T, cs *mcp.ClientSession, tool string, args map[string]any, out any) {
	t.Helper()
	res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: tool, Arguments: args})
	if err != nil {
		t.Fatal(err)
	}
	if res.IsError || len(res.Content) == 0 {
		t.Fatalf("%s: %+v", tool, res.Content)
	}
	if err := json.Unmarshal([]byte(res.Content[0].(*mcp.TextContent).Text), out); err != nil {
		t.Fatal(err)
	}
}

// mcpRequestPG requests a grant of orders-db through the MCP session cs and
// runs select 1 with sql_query; it returns the grant's id.
func (e *idEnv) mcpRequestPG(cs *mcp.ClientSession) string {
	e.t.Helper()
	var g struct {
		GrantID string `json:"grant_id"`
		Status  string `json:"status"`
	}
	mcpCall(e.t, cs, "request_access", map[string]any{"target": "orders-db", "allow": []string{"pg:select postgres.public.*"},
		"duration": "10m", "reason": "INC-1"}, &g)
	e.grants = append(e.grants, g.GrantID)
	if g.Status != "active" {
		e.t.Fatalf("grant %+v", g)
	}
	var rows struct {
		Rows [][]any `json:"rows"`
	}
	mcpCall(e.t, cs, "sql_query", map[string]any{"grant_id": g.GrantID, "statement": "select 1"}, &rows)
	if len(rows.Rows) != 1 {
		e.t.Fatalf("rows %v", rows.Rows)
	}
	return g.GrantID
}

// TestTLSClientCertMCPRelay: sql_query over /mcp from an agent presenting
// a client certificate opens its gateway session through the control
// plane's relay, which cannot present the agent's certificate (it does
// not hold the key) and names it instead, as it names the agent's
// address: the session records the certificate the agent presented to
// /mcp. Before, the relayed session had none.
func TestTLSClientCertMCPRelay(t *testing.T) {
	e := newIDEnv(t, "refuse")
	api := e.serveTLS()
	a := newClientCert(t, "agent-a")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	hc := e.tlsClient(&a)
	hc.Transport = bearer{key: e.bot, rt: hc.Transport}
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "remote-agent", Version: "1"}, nil).Connect(ctx,
		&mcp.StreamableClientTransport{Endpoint: api + "/mcp", HTTPClient: hc, DisableStandaloneSSE: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	id := e.mcpRequestPG(cs)
	if got := e.sessionTLSClients(id); len(got) != 1 || got[0] != a.Fingerprint {
		t.Fatalf("the relayed session's client certificates = %q, want the agent's %s", got, a.Fingerprint)
	}
	if f := e.grant(id).Findings; len(f) != 0 {
		t.Fatalf("findings %+v", f)
	}
	e.verify()
}

// TestTLSClientCertMCPStdio: the MCP server `airlock mcp` runs on the
// agent's machine, with AIRLOCK_CLIENT_CERT and AIRLOCK_CLIENT_KEY set
// (Options.ClientCert), presents the agent's certificate to the PostgreSQL
// gateway from sql_query, and has psql run by run_with_grant present it
// too; the key here is in the certificate's file, which pgx alone (sslkey)
// could not read. Before, both sessions had no certificate.
func TestTLSClientCertMCPStdio(t *testing.T) {
	if _, err := exec.LookPath("psql"); err != nil {
		t.Fatal("psql is not installed (the CI installs postgresql-client)")
	}
	e := newIDEnv(t, "refuse")
	api := e.serveTLS()
	a := newClientCert(t, "agent-a")
	both := filepath.Join(t.TempDir(), "agent.pem")
	cb, err1 := os.ReadFile(a.CertFile)
	kb, err2 := os.ReadFile(a.KeyFile)
	if err := errors.Join(err1, err2, os.WriteFile(both, append(cb, kb...), 0o600)); err != nil {
		t.Fatal(err)
	}
	t.Setenv("HOME", t.TempDir()) // no ~/.postgresql of this machine's
	ctx := context.Background()
	c := client.New(api, e.bot).TrustCA(filepath.Join(e.dataDir, tlscert.CAFile)).UseClientCert(both, "")
	srv, err := mcpserver.New(ctx, c, mcpserver.Options{AllowRun: true, ClientCert: credenv.ClientCert{Cert: both}})
	if err != nil {
		t.Fatal(err)
	}
	st, ct := mcp.NewInMemoryTransports()
	ss, err := srv.Connect(ctx, st, nil)
	if err != nil {
		t.Fatal(err)
	}
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "test", Version: "1"}, nil).Connect(ctx, ct, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { cs.Close(); ss.Wait() }()
	id := e.mcpRequestPG(cs)
	var run struct {
		ExitCode int    `json:"exit_code"`
		Stdout   string `json:"stdout"`
		Stderr   string `json:"stderr"`
	}
	mcpCall(t, cs, "run_with_grant", map[string]any{"grant_id": id, "argv": []string{"psql", "-X", "-At", "-c", "select 2"}}, &run)
	if run.ExitCode != 0 || strings.TrimSpace(run.Stdout) != "2" {
		t.Fatalf("run_with_grant psql: %+v", run)
	}
	if got := e.sessionTLSClients(id); len(got) != 2 || got[0] != a.Fingerprint || got[1] != a.Fingerprint {
		t.Fatalf("the sessions' client certificates = %q, want the agent's %s twice (sql_query, psql)", got, a.Fingerprint)
	}
	if f := e.grant(id).Findings; len(f) != 0 {
		t.Fatalf("findings %+v", f)
	}
	e.verify()
}
