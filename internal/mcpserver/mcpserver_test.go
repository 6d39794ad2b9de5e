package mcpserver_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/airlock-dev/airlock/internal/authn"
	"github.com/airlock-dev/airlock/internal/client"
	"github.com/airlock-dev/airlock/internal/config"
	"github.com/airlock-dev/airlock/internal/mcpserver"
	"github.com/airlock-dev/airlock/internal/server"
	"github.com/airlock-dev/airlock/internal/testenv"
)

const testPolicies = `@id("triage-reads-app-logs")
@approval("auto")
permit (principal in Group::"sre-team", action in [Action::"s3:GetObject", Action::"s3:ListBucket"], resource == Target::"aws-prod")
when { context.resource like "arn:aws:s3:::logs/app/*" && context.duration_seconds <= 900 };

@id("sre-reads-all-logs-with-approval")
@approval("human")
permit (principal in Group::"sre-team", action in [Action::"s3:GetObject", Action::"s3:ListBucket"], resource == Target::"aws-prod")
when { context.resource like "arn:aws:s3:::logs/*" && context.duration_seconds <= 3600 };

@id("agents-read-customers")
@approval("auto")
permit (principal in Group::"sre-team", action == Action::"pg:select", resource == Target::"orders-db");

@id("leads-approve-sre-agents")
permit (principal in Group::"sre-leads", action == Action::"approve", resource == Target::"aws-prod");
`

// lockedBuffer collects log output written concurrently.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// fixture is a running Airlock (API, AWS gateway before versitygw,
// PostgreSQL gateway before a real database) with an agent and a person.
type fixture struct {
	api             string
	srv             *server.Server
	botKey, aliceKy string
	db              string
	logs            *lockedBuffer
	// secrets that must never appear in a tool result or log line.
	secrets map[string]string
}

func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	awsCLI := testenv.AWSCLI(t)
	s3 := testenv.Versity(t)
	dsn := testenv.PostgresDSN(t)
	ctx := context.Background()

	// S3: a bucket with logs under app/ and something outside it.
	root := append(os.Environ(), "AWS_ACCESS_KEY_ID="+s3.AccessKeyID, "AWS_SECRET_ACCESS_KEY="+s3.SecretAccessKey, "AWS_DEFAULT_REGION=us-east-1")
	seed := filepath.Join(t.TempDir(), "seed")
	if err := os.WriteFile(seed, []byte("GET /checkout 500\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"s3", "mb", "s3://logs"}, {"s3", "cp", seed, "s3://logs/app/api.log"}, {"s3", "cp", seed, "s3://logs/billing/x.csv"}} {
		cmd := exec.Command(awsCLI, append([]string{"--endpoint-url", s3.URL}, args...)...)
		cmd.Env = root
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("aws %v: %v\n%s", args, err, out)
		}
	}

	// PostgreSQL: a database owned by a non-superuser admin role.
	suffix := randHex(4)
	db, admin := "orders_mcp_"+suffix, "airlock_admin_mcp_"+suffix
	su, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{"CREATE ROLE " + admin + " LOGIN CREATEROLE", "CREATE DATABASE " + db + " OWNER " + admin} {
		if _, err := su.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	su.Close(ctx)
	upstream := "postgres://" + admin + "@127.0.0.1:5432/" + db + "?sslmode=disable"
	adm, err := pgx.Connect(ctx, upstream)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		"CREATE TABLE customers (id int PRIMARY KEY, name text)",
		"INSERT INTO customers VALUES (1, 'ada'), (2, 'grace'), (3, 'edsger')",
		"CREATE TABLE payments (id int PRIMARY KEY, card text)",
		"INSERT INTO payments VALUES (1, '4111-1111')",
	} {
		if _, err := adm.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	adm.Close(ctx)

	t.Setenv("MCPTEST_AWS_KEY", s3.AccessKeyID)
	t.Setenv("MCPTEST_AWS_SECRET", s3.SecretAccessKey)
	srv, botKey, aliceKey, logs := openServer(t, s3.URL, upstream, "")
	gws, err := srv.StartGateways(ctx)
	if err != nil {
		srv.Close()
		t.Fatal(err)
	}
	// The gateway has read its upstream keys; the agent's side of this test
	// (the commands run_with_grant starts) runs in this process, which must
	// not hold them, as an agent's machine does not.
	os.Unsetenv("MCPTEST_AWS_KEY")
	os.Unsetenv("MCPTEST_AWS_SECRET")
	hs := httptest.NewServer(srv.Handler)
	f := &fixture{api: hs.URL, srv: srv, botKey: botKey, aliceKy: aliceKey, db: db, logs: logs, secrets: map[string]string{
		"the agent's API key": botKey, "the person's API key": aliceKey, "the upstream secret": s3.SecretAccessKey,
	}}
	t.Cleanup(func() {
		hs.Close()
		gws.Close()
		srv.Close()
		su, err := pgx.Connect(context.Background(), dsn)
		if err != nil {
			return
		}
		defer su.Close(context.Background())
		su.Exec(context.Background(), "DROP DATABASE IF EXISTS "+db+" WITH (FORCE)")
		rows, _ := su.Query(context.Background(), "SELECT rolname FROM pg_roles WHERE rolname LIKE 'airlock_g_%'")
		var roles []string
		for rows.Next() {
			var r string
			if rows.Scan(&r) == nil {
				roles = append(roles, r)
			}
		}
		rows.Close()
		for _, r := range roles {
			su.Exec(context.Background(), "DROP ROLE IF EXISTS "+pgx.Identifier{r}.Sanitize())
		}
		su.Exec(context.Background(), "DROP ROLE IF EXISTS "+admin)
	})
	return f
}

// openServer opens a control plane with an agent (log-triage-bot) and a
// person (alice), an aws target at awsEndpoint (its keys in
// MCPTEST_AWS_KEY and MCPTEST_AWS_SECRET) and a postgres target at
// upstream, under testPolicies; extra is appended to the configuration.
// The caller closes it.
func openServer(t *testing.T, awsEndpoint, upstream, extra string) (srv *server.Server, botKey, aliceKey string, logs *lockedBuffer) {
	t.Helper()
	dir := t.TempDir()
	botKey, botSHA := authn.NewKey()
	aliceKey, aliceSHA := authn.NewKey()
	if err := os.MkdirAll(filepath.Join(dir, "policies"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "policies", "p.cedar"), []byte(testPolicies), 0o644); err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(dir, "airlock.yaml")
	cfgText := fmt.Sprintf(`data_dir: %s
listen:
  api: 127.0.0.1:0
  aws: 127.0.0.1:0
  postgres: 127.0.0.1:0
identities:
  - name: log-triage-bot
    kind: agent
    owner: sre-team
    key_sha256: "%s"
  - name: alice
    kind: human
    groups: [sre-leads]
    key_sha256: "%s"
targets:
  - name: aws-prod
    kind: aws
    account: "111122223333"
    region: us-east-1
    endpoint: %s
    credentials:
      access_key_id_env: MCPTEST_AWS_KEY
      secret_access_key_env: MCPTEST_AWS_SECRET
  - name: orders-db
    kind: postgres
    account: "111122223333"
    upstream: %s
policies: %s
%s`, filepath.Join(dir, "data"), botSHA, aliceSHA, awsEndpoint, upstream, filepath.Join(dir, "policies"), extra)
	if err := os.WriteFile(cfgPath, []byte(cfgText), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	logs = &lockedBuffer{}
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	srv, err = server.Open(context.Background(), cfg, logger)
	if err != nil {
		t.Fatal(err)
	}
	return srv, botKey, aliceKey, logs
}

// session is an MCP client session that keeps every response it received.
type session struct {
	t         *testing.T
	cs        *mcp.ClientSession
	responses *[]string
}

func (f *fixture) connect(t *testing.T, key string, responses *[]string) *session {
	t.Helper()
	return &session{t: t, cs: stdioSession(t, f.api, key, f.logs), responses: responses}
}

// stdioSession is a client session of the server `airlock mcp` runs (with
// run_with_grant) for key against the API at api, logging to logs.
func stdioSession(t *testing.T, api, key string, logs *lockedBuffer) *mcp.ClientSession {
	t.Helper()
	ctx := context.Background()
	logger := slog.New(slog.NewTextHandler(logs, nil))
	srv, err := mcpserver.New(ctx, client.New(api, key), mcpserver.Options{Logger: logger, AllowRun: true})
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
	t.Cleanup(func() { cs.Close(); ss.Wait() })
	return cs
}

func (s *session) keep(v any, err error) {
	b, _ := json.Marshal(v)
	*s.responses = append(*s.responses, string(b))
	if err != nil {
		*s.responses = append(*s.responses, err.Error())
	}
}

// call calls a tool and decodes its structured result into out (if not
// nil); it returns the result's text and whether it is a tool error.
func (s *session) call(name string, args map[string]any, out any) (string, bool) {
	s.t.Helper()
	res, err := s.cs.CallTool(context.Background(), &mcp.CallToolParams{Name: name, Arguments: args})
	s.keep(res, err)
	if err != nil {
		s.t.Fatalf("%s: protocol error: %v", name, err)
	}
	var text string
	for _, c := range res.Content {
		if tc, ok := c.(*mcp.TextContent); ok {
			text += tc.Text
		}
	}
	if !res.IsError && out != nil {
		b, _ := json.Marshal(res.StructuredContent)
		if err := json.Unmarshal(b, out); err != nil {
			s.t.Fatalf("%s: decoding %s: %v", name, b, err)
		}
	}
	return text, res.IsError
}

func (s *session) mustCall(name string, args map[string]any, out any) {
	s.t.Helper()
	if text, isErr := s.call(name, args, out); isErr {
		s.t.Fatalf("%s(%v) failed: %s", name, args, text)
	}
}

func (s *session) mustFail(name string, args map[string]any, want string) string {
	s.t.Helper()
	text, isErr := s.call(name, args, nil)
	if !isErr || !strings.Contains(text, want) {
		s.t.Fatalf("%s(%v): error %v, text %q; want an error containing %q", name, args, isErr, text, want)
	}
	return text
}

func toolNames(t *testing.T, cs *mcp.ClientSession) []string {
	t.Helper()
	res, err := cs.ListTools(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tool := range res.Tools {
		names = append(names, tool.Name)
		if len(tool.Description) < 40 {
			t.Errorf("tool %s: description too thin for an LLM: %q", tool.Name, tool.Description)
		}
		if tool.OutputSchema == nil {
			t.Errorf("tool %s declares no output schema", tool.Name)
		}
		schema, _ := json.Marshal(tool.InputSchema)
		if !strings.Contains(string(schema), `"type":"object"`) {
			t.Errorf("tool %s: input schema %s", tool.Name, schema)
		}
	}
	return names
}

// TestAgentSession drives every tool as an agent, the error paths, a
// person's read-only view and the HTTP transport, then greps every
// response and log line for every secret.
func TestAgentSession(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	var responses []string
	bot := f.connect(t, f.botKey, &responses)
	botAPI := client.New(f.api, f.botKey)
	aliceAPI := client.New(f.api, f.aliceKy)

	got := strings.Join(toolNames(t, bot.cs), ",")
	if got != "end_grant,grant_status,list_targets,request_access,run_with_grant,sql_query" {
		t.Fatalf("agent tools: %s", got)
	}

	// list_targets: both targets, with the policies that match the agent.
	var targets mcpserver.ListTargetsOutput
	bot.mustCall("list_targets", nil, &targets)
	if len(targets.Targets) != 2 || targets.Targets[0].Name != "aws-prod" || targets.Targets[1].Kind != "postgres" {
		t.Fatalf("targets: %+v", targets)
	}
	if p := targets.Targets[0].Permits; len(p) != 2 || p[0].Approval != "auto" || !p[0].Conditional || strings.Join(p[0].Actions, ",") != "s3:GetObject,s3:ListBucket" {
		t.Fatalf("aws-prod permits: %+v", p)
	}

	// request_access that policy approves at once.
	var g mcpserver.Grant
	bot.mustCall("request_access", map[string]any{"target": "aws-prod", "allow": []string{"s3:GetObject,s3:ListBucket arn:aws:s3:::logs/app/*"},
		"duration": "10m", "reason": "triage checkout errors"}, &g)
	if g.Status != "active" || g.ExpiresAt == nil || !strings.Contains(g.Note, "run_with_grant") {
		t.Fatalf("auto-approved request: %+v", g)
	}
	cr, err := botAPI.Credentials(ctx, g.GrantID)
	if err != nil {
		t.Fatal(err)
	}
	f.secrets["the AWS secret key"], f.secrets["the AWS session token"] = cr.SecretAccessKey, cr.SessionToken

	// run_with_grant: the AWS CLI through the gateway, inside and outside the scope.
	awsCLI := testenv.AWSCLI(t)
	var run mcpserver.RunOutput
	bot.mustCall("run_with_grant", map[string]any{"grant_id": g.GrantID,
		"argv": []string{"sh", "-c", `"$0" --endpoint-url "$AWS_ENDPOINT_URL" s3 ls s3://logs/app/`, awsCLI}}, &run)
	if run.ExitCode != 0 || !strings.Contains(run.Stdout, "api.log") {
		t.Fatalf("aws s3 ls through the gateway: %+v", run)
	}
	bot.mustCall("run_with_grant", map[string]any{"grant_id": g.GrantID,
		"argv": []string{awsCLI, "--endpoint-url", cr.Endpoint.URL, "s3", "cp", "s3://logs/billing/x.csv", "-"}}, &run)
	if run.ExitCode == 0 || !strings.Contains(run.Stderr, "Forbidden") && !strings.Contains(run.Stderr, "AccessDenied") {
		t.Fatalf("read outside the scope: %+v", run)
	}
	// The command's environment holds the secrets; its output never shows them.
	bot.mustCall("run_with_grant", map[string]any{"grant_id": g.GrantID, "argv": []string{"env"}}, &run)
	if !strings.Contains(run.Stdout, "AWS_SECRET_ACCESS_KEY="+mcpserver.Redacted) || !strings.Contains(run.Stdout, "AWS_SESSION_TOKEN="+mcpserver.Redacted) ||
		strings.Contains(run.Stdout, "AIRLOCK_TOKEN=") {
		t.Errorf("env under the grant, scrubbed:\n%s", run.Stdout)
	}
	// stdin, bounded output and a timeout.
	bot.mustCall("run_with_grant", map[string]any{"grant_id": g.GrantID, "argv": []string{"sh", "-c", `cat; head -c 100000 /dev/zero | tr '\0' a; printf %s "$AWS_SECRET_ACCESS_KEY" >&2; exit 3`},
		"stdin": "hello "}, &run)
	if run.ExitCode != 3 || !strings.HasPrefix(run.Stdout, "hello aaa") || len(run.Stdout) != mcpserver.MaxOutput || !run.StdoutTruncated ||
		run.Stderr != mcpserver.Redacted || !strings.Contains(run.Note, "stdout truncated") {
		t.Fatalf("bounded run: exit %d, stdout %d bytes, truncated %v, stderr %q, note %q", run.ExitCode, len(run.Stdout), run.StdoutTruncated, run.Stderr, run.Note)
	}
	start := time.Now()
	bot.mustCall("run_with_grant", map[string]any{"grant_id": g.GrantID, "argv": []string{"sleep", "30"}, "timeout_seconds": 1}, &run)
	if run.ExitCode != -1 || !strings.Contains(run.Status, "timeout") || time.Since(start) > 10*time.Second {
		t.Fatalf("timeout: %+v after %s", run, time.Since(start))
	}
	// A huge timeout is the longest one, not a Duration that wrapped
	// negative and killed the command at once.
	bot.mustCall("run_with_grant", map[string]any{"grant_id": g.GrantID, "argv": []string{"true"}, "timeout_seconds": int64(9223372037)}, &run)
	if run.ExitCode != 0 || strings.Contains(run.Status, "timeout") {
		t.Fatalf("huge timeout_seconds: %+v", run)
	}
	// An agent that pastes its own API key into a command line does not
	// get it into the log (secrets are checked against every response and
	// the history below).
	bot.mustCall("run_with_grant", map[string]any{"grant_id": g.GrantID, "argv": []string{"sh", "-c", "true " + f.botKey}}, &run)
	bot.mustFail("run_with_grant", map[string]any{"grant_id": g.GrantID, "argv": []string{}}, "argv")
	// Each command line is on the grant's record.
	hist, err := aliceAPI.History(ctx, g.GrantID)
	if err != nil {
		t.Fatal(err)
	}
	commands := 0
	for _, e := range hist {
		if e.Type == "grant.command" {
			commands++
			if commands == 1 && !strings.Contains(string(e.Entry), `s3 ls s3://logs/app/`) {
				t.Errorf("recorded command: %s", e.Entry)
			}
			// Where it was run from: run_with_grant.
			var entry struct {
				Data struct {
					Via string `json:"via"`
				} `json:"data"`
			}
			if err := json.Unmarshal(e.Entry, &entry); err != nil || entry.Data.Via != "mcp" {
				t.Errorf("recorded command's via %q (%v): %s", entry.Data.Via, err, e.Entry)
			}
		}
	}
	if commands != 7 {
		t.Fatalf("%d commands recorded, want 7", commands)
	}
	for _, e := range hist {
		for what, secret := range f.secrets {
			if secret != "" && strings.Contains(string(e.Entry), secret) {
				t.Errorf("%s appears in the grant's %s entry", what, e.Type)
			}
		}
	}

	// A request that waits for a person: who can approve, then approved.
	bot.mustCall("request_access", map[string]any{"target": "aws-prod", "allow": []string{"s3:GetObject arn:aws:s3:::logs/billing/*"},
		"duration": "30m", "reason": "billing errors too", "wait_seconds": 1}, &g)
	if g.Status != "pending" || strings.Join(g.Approvers, ",") != "alice" || g.DecideBy == nil || !strings.Contains(g.Note, "alice") {
		t.Fatalf("pending request: %+v", g)
	}
	pendingID := g.GrantID
	bot.mustFail("run_with_grant", map[string]any{"grant_id": pendingID, "argv": []string{"true"}}, "pending")
	done := make(chan error, 1)
	go func() {
		time.Sleep(200 * time.Millisecond) // let grant_status start waiting
		_, err := aliceAPI.Approve(ctx, pendingID, "ok for billing")
		done <- err
	}()
	bot.mustCall("grant_status", map[string]any{"grant_id": pendingID, "wait_seconds": 30}, &g)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if g.Status != "active" || len(g.Approvals) != 1 || g.Approvals[0].Approver != "alice" {
		t.Fatalf("after approval: %+v", g)
	}

	// sql_query through the PostgreSQL gateway.
	bot.mustCall("request_access", map[string]any{"target": "orders-db", "allow": []string{"pg:select " + f.db + ".public.customers"},
		"duration": "10m", "reason": "count customers"}, &g)
	if g.Status != "active" {
		t.Fatalf("pg request: %+v", g)
	}
	pgID := g.GrantID
	pcr, err := botAPI.Credentials(ctx, pgID)
	if err != nil {
		t.Fatal(err)
	}
	f.secrets["the PostgreSQL password"] = pcr.SecretAccessKey
	var rows mcpserver.SQLOutput
	bot.mustCall("sql_query", map[string]any{"grant_id": pgID, "statement": "select id, name from customers order by id"}, &rows)
	if strings.Join(rows.Columns, ",") != "id,name" || rows.RowCount != 3 || fmt.Sprint(rows.Rows[2]) != "[3 edsger]" || rows.Command != "SELECT 3" {
		t.Fatalf("rows: %+v", rows)
	}
	// Numbers beyond 2^53 come back as PostgreSQL sent them, in the text
	// the model reads: the SDK's check of a typed result decoded them into
	// float64s and rounded them. (This client decodes the structured
	// result into float64s itself, so only the text is checked here.)
	text, _ := bot.call("sql_query", map[string]any{"grant_id": pgID, "statement": `select 9007199254740993::int8, '{"id": 12345678901234567890}'::jsonb`}, nil)
	if !strings.Contains(text, `"rows":[[9007199254740993,{"id":12345678901234567890}]]`) {
		t.Fatalf("big numbers: %s", text)
	}
	// Markup is shown as it is, not as \u003c escapes for HTML pages.
	text, _ = bot.call("sql_query", map[string]any{"grant_id": pgID, "statement": `select '<p class="x">a & b</p>' as html`}, nil)
	if !strings.Contains(text, `"rows":[["<p class=\"x\">a & b</p>"]]`) {
		t.Fatalf("markup: %s", text)
	}
	bot.mustCall("sql_query", map[string]any{"grant_id": pgID, "statement": "select g from generate_series(1, 5000) g"}, &rows)
	if rows.RowCount != mcpserver.MaxRows || !rows.Truncated || !strings.Contains(rows.Note, "truncated") {
		t.Fatalf("bounded rows: %d, truncated %v, note %q", rows.RowCount, rows.Truncated, rows.Note)
	}
	bot.mustFail("sql_query", map[string]any{"grant_id": pgID, "statement": "select card from payments"}, "permission denied")
	bot.mustFail("sql_query", map[string]any{"grant_id": pgID, "statement": "selec 1"}, "syntax error")
	bot.mustFail("sql_query", map[string]any{"grant_id": pgID, "statement": "select 1; select 2"}, "multiple commands")
	// A statement over the time limit is cancelled, and the agent told so.
	mcpserver.SetSQLTimeout(t, 2*time.Second)
	bot.mustFail("sql_query", map[string]any{"grant_id": pgID, "statement": "select pg_sleep(30)"}, "did not finish within sql_query's 2s limit")
	mcpserver.SetSQLTimeout(t, time.Minute)
	// COPY is refused with a way out: FROM STDIN waited for data until the
	// timeout, TO STDOUT returned no rows.
	bot.mustFail("sql_query", map[string]any{"grant_id": pgID, "statement": "/* dump */ -- all\n Copy customers TO STDOUT"}, "use SELECT")
	bot.mustFail("sql_query", map[string]any{"grant_id": pendingID, "statement": "select 1"}, "postgres target")
	// psql under the grant, through run_with_grant, too.
	if psql, err := exec.LookPath("psql"); err == nil {
		bot.mustCall("run_with_grant", map[string]any{"grant_id": pgID, "argv": []string{psql, "-X", "-A", "-t", "-c", "select count(*) from customers"}}, &run)
		if strings.TrimSpace(run.Stdout) != "3" {
			t.Fatalf("psql: %+v", run)
		}
	}

	// Unknown grants and bad input.
	bot.mustFail("grant_status", map[string]any{"grant_id": "g_doesnotexist"}, "no grant")
	bot.mustFail("end_grant", map[string]any{"grant_id": "g_doesnotexist"}, "no grant")
	bot.mustFail("run_with_grant", map[string]any{"grant_id": "g_doesnotexist", "argv": []string{"true"}}, "no grant")
	bot.mustFail("sql_query", map[string]any{"grant_id": "g_doesnotexist", "statement": "select 1"}, "no grant")
	bot.mustFail("request_access", map[string]any{"target": "nope", "allow": []string{"s3:GetObject arn:aws:s3:::x"}, "duration": "1m", "reason": "x"}, "unknown target")
	// The input schema is enforced before the tool runs.
	bot.mustFail("request_access", map[string]any{"target": "aws-prod"}, "allow")

	// Resources: the agent's own grant; an unknown one is not found.
	res, err := bot.cs.ReadResource(ctx, &mcp.ReadResourceParams{URI: "airlock://grants/" + pgID})
	bot.keep(res, err)
	if err != nil || len(res.Contents) != 1 || !strings.Contains(res.Contents[0].Text, `"id": "`+pgID+`"`) {
		t.Fatalf("grant resource: %v %+v", err, res)
	}
	if _, err := bot.cs.ReadResource(ctx, &mcp.ReadResourceParams{URI: "airlock://grants/g_doesnotexist"}); err == nil {
		t.Fatal("an unknown grant resource was read")
	}
	tmpls, err := bot.cs.ListResourceTemplates(ctx, nil)
	if err != nil || len(tmpls.ResourceTemplates) != 1 || tmpls.ResourceTemplates[0].URITemplate != "airlock://grants/{id}" {
		t.Fatalf("templates: %v %+v", err, tmpls)
	}

	// end_grant; the grant's credentials stop working.
	bot.mustCall("end_grant", map[string]any{"grant_id": pgID, "comment": "counted"}, &g)
	if g.Status != "ended" || g.EndComment != "counted" {
		t.Fatalf("ended: %+v", g)
	}
	bot.mustFail("sql_query", map[string]any{"grant_id": pgID, "statement": "select 1"}, "ended")

	// A person: read-only tools only; request_access is refused.
	alice := f.connect(t, f.aliceKy, &responses)
	if got := strings.Join(toolNames(t, alice.cs), ","); got != "grant_status,list_targets" {
		t.Fatalf("a person's tools: %s", got)
	}
	if _, err := alice.cs.CallTool(ctx, &mcp.CallToolParams{Name: "request_access", Arguments: map[string]any{"target": "aws-prod",
		"allow": []string{"s3:GetObject arn:aws:s3:::logs/app/*"}, "duration": "1m", "reason": "x"}}); err == nil {
		t.Fatal("a person called request_access")
	}
	alice.mustCall("grant_status", map[string]any{"grant_id": pgID}, &g)
	if g.Status != "ended" {
		t.Fatalf("person reads the grant: %+v", g)
	}

	// HTTP at /mcp: bearer key required; no run_with_grant there.
	if resp, err := http.Post(f.api+"/mcp", "application/json", strings.NewReader(`{}`)); err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("/mcp without a key: %v %v", resp.StatusCode, err)
	}
	for _, wrong := range []string{"Bearer nope", "Bearer no pe", "Bearer n\u00f6pe"} {
		req, _ := http.NewRequest("POST", f.api+"/mcp", strings.NewReader(`{}`))
		req.Header.Set("Authorization", wrong)
		if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("/mcp with a wrong key (%q): %v %v", wrong, resp.StatusCode, err)
		}
	}
	hc := &http.Client{Transport: bearer{f.botKey}}
	hcs, err := mcp.NewClient(&mcp.Implementation{Name: "test-http", Version: "1"}, nil).Connect(ctx,
		&mcp.StreamableClientTransport{Endpoint: f.api + "/mcp", HTTPClient: hc, DisableStandaloneSSE: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer hcs.Close()
	if got := strings.Join(toolNames(t, hcs), ","); got != "end_grant,grant_status,list_targets,request_access,sql_query" {
		t.Fatalf("HTTP tools: %s", got)
	}
	hs := &session{t: t, cs: hcs, responses: &responses}
	hs.mustCall("grant_status", map[string]any{"grant_id": pendingID}, &g)
	if g.Status != "active" {
		t.Fatalf("grant over HTTP: %+v", g)
	}
	hs.mustFail("grant_status", map[string]any{"grant_id": "g_doesnotexist"}, "no grant")

	// The log still verifies with the command entries in it.
	if rep, err := f.srv.Verify(ctx); err != nil || !rep.OK {
		t.Fatalf("audit verify: %+v %v", rep, err)
	}

	// No secret in any response or log line.
	all := strings.Join(responses, "\n")
	logs := f.logs.String()
	for what, secret := range f.secrets {
		if secret == "" {
			t.Fatalf("%s is empty", what)
		}
		if i := strings.Index(all, secret); i >= 0 {
			t.Errorf("%s appears in an MCP response: …%s…", what, all[max(0, i-80):i])
		}
		if strings.Contains(logs, secret) {
			t.Errorf("%s appears in the log output", what)
		}
	}
	if len(responses) < 30 {
		t.Fatalf("only %d responses kept", len(responses))
	}
}

type bearer struct{ key string }

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.key)
	return http.DefaultTransport.RoundTrip(r)
}
