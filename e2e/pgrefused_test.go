package e2e

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/airlock-dev/airlock/internal/testenv"
)

// TestPostgresRefusedStatementIsDenied: under a pg:select grant, an INSERT
// the gateway cannot classify and forwards, which PostgreSQL refuses
// (42501: the grant's role may not insert), is a denied attempt in the
// review, not scope used: `airlock grants` showed `pg:insert …` on a
// select-only grant, which a reviewer reads as the agent having written.
// A SELECT that ran is still used, and so is one that sent rows before
// PostgreSQL refused it (it did read). Through the real airlock binary,
// psql and PostgreSQL; `audit verify` re-derives the review from the log
// and agrees.
func TestPostgresRefusedStatementIsDenied(t *testing.T) {
	psql := testenv.Tool(t, "psql", "install it with: apt-get install postgresql-client")
	f := newPGFixture(t)
	ctx := context.Background()
	adm, err := pgx.Connect(ctx, f.upstream)
	if err != nil {
		t.Fatal(err)
	}
	// A sequence the grant's role may not use: nextval is refused when a
	// row calls it, after the rows before it were sent.
	if _, err := adm.Exec(ctx, "CREATE SEQUENCE tickets"); err != nil {
		t.Fatal(err)
	}
	adm.Close(ctx)
	e := writeSetupWith(t, setup{pgListen: testenv.FreeAddr(t), pgUpstream: f.upstream, policies: `
@id("agents-read-customers")
@approval("auto")
permit (principal in Group::"sre-team", action == Action::"pg:select", resource == Target::"orders-db");
`})
	e.start(t)
	grant := func(reason string) (string, []string) {
		id := grantID(t, mustOK(t, airlock(t, e.addr, e.bot.Key, "request", "orders-db", "--allow", "pg:select "+f.db+".public.customers",
			"--for", "10m", "--reason", reason), "request"))
		*f.grants = append(*f.grants, id)
		return id, credsEnv(t, mustOK(t, airlock(t, e.addr, e.bot.Key, "credentials", id), "credentials"))
	}

	wrote, creds := grant("count customers")
	if got := mustOK(t, psqlRun(t, psql, creds, "-c", "select count(*) from customers"), "select"); strings.TrimSpace(got) != "3" {
		t.Fatalf("count = %q", got)
	}
	ins := psqlRun(t, psql, creds, "-c", "insert into customers values (4, 'barbara')")
	if ins.code == 0 || !strings.Contains(ins.stderr, "permission denied for table customers") {
		t.Fatalf("insert under pg:select: exit %d, stderr %s", ins.code, ins.stderr)
	}

	read, creds2 := grant("number tickets")
	rows := psqlRun(t, psql, creds2, "-c", "select id, case when id = 3 then nextval('tickets') end from customers")
	if rows.code == 0 || !strings.Contains(rows.stderr, "permission denied for sequence tickets") {
		t.Fatalf("nextval under pg:select: exit %d, stderr %s", rows.code, rows.stderr)
	}

	type row struct {
		Grant       string   `json:"grant"`
		ScopeUsed   []string `json:"scope_used"`
		Sessions    int64    `json:"sessions"`
		Calls       int64    `json:"calls"`
		DeniedCalls int64    `json:"denied_calls"`
		LogMismatch []string `json:"log_mismatch"`
	}
	want := map[string]row{
		// The SELECT ran; the INSERT was refused: one call, one denied.
		wrote: {ScopeUsed: []string{"pg:select " + f.db}, Calls: 1, DeniedCalls: 1},
		// Rows reached the client before the refusal: a read, used.
		read: {ScopeUsed: []string{"pg:select " + f.db}, Calls: 1, DeniedCalls: 0},
	}
	// The review, right after psql exits, once. Every statement is
	// counted before its answer reaches the client, and a read waits for
	// the ends of sessions being written (sessions.Recorder.Flush), so no
	// read may miss a call: without that wait the first read found 0
	// calls in 5 of 6 runs at load 20. A refusal is known from the
	// statement's result, which the gateway records before the client
	// has the error (pggw's upstreamLoop; a read flushes the queued
	// results), so this first read shows it too: it was read again until
	// the refusal was in.
	var review []row
	if err := json.Unmarshal([]byte(mustOK(t, airlock(t, e.addr, e.alice.Key, "grants", "--identity", "log-triage-bot", "-o", "json"), "grants")), &review); err != nil {
		t.Fatal(err)
	}
	for _, r := range review {
		w, ok := want[r.Grant]
		if !ok {
			continue
		}
		delete(want, r.Grant)
		if !slices.Equal(r.ScopeUsed, w.ScopeUsed) || r.Calls != w.Calls || r.DeniedCalls != w.DeniedCalls || len(r.LogMismatch) != 0 {
			t.Errorf("review of %s: scope used %q, %d calls, %d denied, mismatch %q; want scope used %q, %d calls, %d denied",
				r.Grant, r.ScopeUsed, r.Calls, r.DeniedCalls, r.LogMismatch, w.ScopeUsed, w.Calls, w.DeniedCalls)
		}
	}
	for id := range want {
		t.Errorf("%s is not in the review", id)
	}
	// The gateway's metrics count the refused INSERT under its own
	// outcome, not as allowed (the two SELECTs; the review read above
	// made their results durable, which is when they are counted).
	req, _ := http.NewRequest("GET", e.addr+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+e.alice.Key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`airlock_gateway_calls_total{gateway="postgres",outcome="allowed"} 2`,
		`airlock_gateway_calls_total{gateway="postgres",outcome="refused"} 1`,
		`airlock_gateway_calls_total{gateway="postgres",outcome="denied"} 0`,
	} {
		if !strings.Contains(string(metrics), want+"\n") {
			t.Errorf("metrics lack %s:\n%s", want, grepLines(string(metrics), "airlock_gateway_calls_total"))
		}
	}
	// The transcript still shows the attempt, and its refusal.
	rec := mustOK(t, airlock(t, e.addr, e.alice.Key, "session", "show", wrote), "session show")
	if !strings.Contains(rec, "insert into customers values (4, 'barbara')") || !strings.Contains(rec, "error: 42501 permission denied for table customers, ✗ DENIED by the upstream") {
		t.Errorf("the transcript lacks the refused insert:\n%s", rec)
	}
	if r := airlock(t, e.addr, e.alice.Key, "audit", "verify"); r.code != 0 {
		t.Fatalf("audit verify: %s %s", r.stdout, r.stderr)
	}
	// The day's evidence bundle is v5, whose documented derivation (as
	// v4's) counts the refused INSERT as denied, and verify-bundle
	// derives the same rows from its entries, with no warning.
	day := time.Now().UTC().Format("2006-01-02")
	file := filepath.Join(t.TempDir(), "review.json")
	mustOK(t, airlock(t, e.addr, e.alice.Key, "audit", "export", "--account", "111122223333", "--day", day, "-o", file), "audit export")
	b, err := os.ReadFile(file)
	if err != nil || !strings.HasPrefix(string(b), `{"format":"airlock-evidence-bundle/v5",`) {
		t.Fatalf("the bundle: %.60s, %v", b, err)
	}
	vb := airlock(t, e.addr, "", "audit", "verify-bundle", file, "--key", filepath.Join(e.dir, "airlock-data", "log-signing.pub"))
	if vb.code != 0 || vb.stderr != "" || !strings.Contains(vb.stdout, wrote+" log-triage-bot ") ||
		!strings.Contains(vb.stdout, `reason "count customers", approved by policy agents-read-customers, 2 sessions, 1 calls, 1 denied`) {
		t.Fatalf("verify-bundle: exit %d:\n%s%s", vb.code, vb.stdout, vb.stderr)
	}
}

// grepLines returns the lines of s that contain sub.
func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
