package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/testenv"
)

// TestMCPTypeScriptClient: the official MCP TypeScript SDK (e2e/mcpjs, npm
// ci) drives `airlock mcp` over stdio and /mcp over streamable HTTP against
// a real `airlock serve` with both gateways: list tools, a line on the
// server's stdin that is not JSON (answered with a parse error; the session
// goes on), an auto-approved
// S3 grant used with the AWS CLI through run_with_grant, a request that
// waits until this test approves it from the CLI, sql_query through the
// PostgreSQL gateway (and refused outside the scope), end_grant. No secret
// of any grant, and no API key, appears in any response or server log line.
func TestMCPTypeScriptClient(t *testing.T) {
	node := testenv.Tool(t, "node", "install it with: apt-get install nodejs npm")
	dir, err := filepath.Abs("mcpjs")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "@modelcontextprotocol", "sdk")); err != nil {
		testenv.Tool(t, "e2e/mcpjs/node_modules", "run: (cd e2e/mcpjs && npm ci)")
	}
	cli := testenv.AWSCLI(t)
	s3 := testenv.Versity(t)
	root := []string{"AWS_ACCESS_KEY_ID=" + s3.AccessKeyID, "AWS_SECRET_ACCESS_KEY=" + s3.SecretAccessKey, "AWS_DEFAULT_REGION=us-east-1"}
	seed := filepath.Join(t.TempDir(), "seed")
	write(t, seed, "GET /checkout 500\n")
	mustOK(t, awsRun(t, cli, root, "--endpoint-url", s3.URL, "s3", "mb", "s3://logs"), "make bucket")
	mustOK(t, awsRun(t, cli, root, "--endpoint-url", s3.URL, "s3", "cp", seed, "s3://logs/app/api.log"), "seed")
	f := newPGFixture(t)
	pol := `
@id("agents-read-customers")
@approval("auto")
permit (principal in Group::"sre-team", action == Action::"pg:select", resource == Target::"orders-db");
`
	e := writeSetupWith(t, setup{awsListen: testenv.FreeAddr(t), awsEndpoint: s3.URL, awsKey: s3.AccessKeyID, awsSecret: s3.SecretAccessKey,
		pgListen: testenv.FreeAddr(t), pgUpstream: f.upstream, policies: pol})
	e.start(t)

	responses := filepath.Join(t.TempDir(), "responses.jsonl")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "mcp.mjs")
	cmd.Dir = dir
	// The agent's environment: its own key and the server's address, and
	// nothing of the gateway's upstream keys.
	cmd.Env = append(cleanEnv(), "AIRLOCK_BIN="+airlockBin, "AIRLOCK_ADDR="+e.addr, "AIRLOCK_TOKEN="+e.bot.Key,
		"AWS_CLI="+cli, "PG_DB="+f.db, "MCP_RESPONSES="+responses)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr := &syncBuffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	secrets := map[string]string{"the agent's key": e.bot.Key, "alice's key": e.alice.Key, "the upstream secret": s3.SecretAccessKey}
	var log []string
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		line := sc.Text()
		log = append(log, line)
		word, id, _ := strings.Cut(line, " ")
		switch word {
		case "ACTIVE":
			*f.grants = append(*f.grants, id)
			var cr struct {
				Secret  string `json:"secret_access_key"`
				Session string `json:"session_token"`
			}
			out := mustOK(t, airlock(t, e.addr, e.bot.Key, "credentials", id, "--format", "json"), "credentials "+id)
			if err := json.Unmarshal([]byte(out), &cr); err != nil || cr.Secret == "" {
				t.Fatalf("credentials of %s: %v %q", id, err, out)
			}
			secrets["the secret of "+id] = cr.Secret
			if cr.Session != "" {
				secrets["the session token of "+id] = cr.Session
			}
			io.WriteString(stdin, "ok\n")
		case "PENDING":
			mustOK(t, airlock(t, e.addr, e.alice.Key, "approve", id, "--comment", "approved for the MCP test"), "approve "+id)
		}
	}
	stdin.Close()
	if err := cmd.Wait(); err != nil || len(log) == 0 || log[len(log)-1] != "DONE" {
		t.Fatalf("mcp.mjs: %v\nstdout:\n%s\nstderr:\n%s\nserver:\n%s", err, strings.Join(log, "\n"), stderr, e.stderr)
	}
	if len(secrets) < 8 {
		t.Fatalf("only %d secrets collected: %v", len(secrets), log)
	}

	// The S3 grant's log history holds the command lines run under it.
	first := strings.Fields(log[0])[1]
	req, _ := http.NewRequest("GET", e.addr+"/v1/grants/"+first+"/history", nil)
	req.Header.Set("Authorization", "Bearer "+e.alice.Key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	hist, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var h struct {
		Events []struct {
			Type  string          `json:"type"`
			Entry json.RawMessage `json:"entry"`
		} `json:"events"`
	}
	if err := json.Unmarshal(hist, &h); err != nil {
		t.Fatal(err)
	}
	var commands []string
	for _, ev := range h.Events {
		if ev.Type == "grant.command" {
			commands = append(commands, string(ev.Entry))
		}
	}
	if len(commands) != 3 || !strings.Contains(commands[0], "s3 ls s3://logs/app/") {
		t.Fatalf("the grant's history lacks the commands: %v", commands)
	}

	data, err := os.ReadFile(responses)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(data), "\n"); n < 20 {
		t.Fatalf("only %d responses recorded", n)
	}
	for what, secret := range secrets {
		if strings.Contains(string(data), secret) {
			t.Errorf("%s appears in an MCP response", what)
		}
		if strings.Contains(e.stderr.String(), secret) || strings.Contains(stderr.String(), secret) {
			t.Errorf("%s appears in a log line", what)
		}
	}
	if r := airlock(t, e.addr, e.alice.Key, "audit", "verify"); r.code != 0 {
		t.Fatalf("audit verify: %s %s", r.stdout, r.stderr)
	}
}
