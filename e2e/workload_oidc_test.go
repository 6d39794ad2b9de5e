package e2e

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/testenv"
)

// startProvider runs a node script from e2e/console (an OpenID provider
// built on the npm oidc-provider package) on a free loopback port, with
// env added to its environment, and returns its issuer once it says
// "READY <issuer>". It stops when the test ends; stderr holds what it
// wrote there.
func startProvider(t *testing.T, script string, env ...string) (issuer string, stderr *syncBuffer) {
	t.Helper()
	node := testenv.Tool(t, "node", "install Node.js (apt-get install nodejs npm)")
	dir, err := filepath.Abs("console")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "oidc-provider", "package.json")); err != nil {
		testenv.Tool(t, filepath.Join(dir, "node_modules", "oidc-provider", "package.json"), "run: (cd e2e/console && npm ci)")
	}
	addr := testenv.FreeAddr(t)
	op := exec.Command(node, script)
	op.Dir = dir
	op.Env = append(append(os.Environ(), "OP_PORT="+strings.TrimPrefix(addr, "127.0.0.1:")), env...)
	in, err := op.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := op.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr = &syncBuffer{}
	op.Stderr = stderr
	if err := op.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { in.Close(); _ = op.Process.Kill(); _ = op.Wait() })
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if l := sc.Text(); strings.HasPrefix(l, "READY ") {
				ready <- strings.TrimPrefix(l, "READY ")
			}
		}
		close(ready)
	}()
	select {
	case issuer = <-ready:
	case <-time.After(30 * time.Second):
	}
	if issuer != "http://"+addr {
		t.Fatalf("the provider did not start (issuer %q):\n%s", issuer, stderr.String())
	}
	return issuer, stderr
}

// TestWorkloadTokenFromRealProvider signs an agent in with JWT access
// tokens that a real OpenID provider issues (the npm oidc-provider
// package, e2e/console/workload-op.mjs, by the client credentials grant),
// its keys found by OpenID discovery: ES256 and RS256 tokens for Airlock's
// audience map to the bound agent and carry it through a request, and so
// does one good for 24 hours; a token for another audience, one of a
// client no identity is bound to, and one good for a year (beyond the
// default max_token_lifetime) are refused with the check that failed; no
// token reaches the server's log.
func TestWorkloadTokenFromRealProvider(t *testing.T) {
	const secret = "workload-client-secret-never-logged"
	issuer, opErr := startProvider(t, "workload-op.mjs", "CLIENT_SECRET="+secret)

	token := func(client, resource string) string {
		t.Helper()
		req, err := http.NewRequest("POST", issuer+"/token", strings.NewReader(url.Values{
			"grant_type": {"client_credentials"}, "scope": {"agent"}, "resource": {resource},
		}.Encode()))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth(client, secret)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		var tr struct {
			AccessToken string `json:"access_token"`
		}
		if resp.StatusCode != 200 || json.Unmarshal(body, &tr) != nil || strings.Count(tr.AccessToken, ".") != 2 {
			t.Fatalf("token for %s at %s: %s %s\nprovider:\n%s", client, resource, resp.Status, body, opErr.String())
		}
		return tr.AccessToken
	}

	e := writeSetup(t)
	cfg, err := os.ReadFile(e.cfg)
	if err != nil {
		t.Fatal(err)
	}
	botKey := `key_sha256: "` + e.bot.SHA + `"` + "\n"
	if !strings.Contains(string(cfg), botKey) {
		t.Fatal("the bot's entry not found in the configuration")
	}
	doc := strings.Replace(string(cfg), botKey, botKey+"    oidc: { issuer: \""+issuer+"\", subject: triage-agent }\n", 1) +
		"oidc:\n  - issuer: " + issuer + "\n    audience: airlock\n"
	write(t, e.cfg, doc)
	e.start(t)

	var used []string
	for _, resource := range []string{"https://airlock.example/es", "https://airlock.example/rs"} {
		tok := token("triage-agent", resource)
		used = append(used, tok)
		out := mustOK(t, airlock(t, e.addr, tok, "whoami"), "whoami with a token for "+resource)
		if !strings.HasPrefix(out, "log-triage-bot (agent") || !strings.Contains(out, "authenticated by oidc:"+issuer+" triage-agent") {
			t.Fatalf("whoami with a token for %s:\n%s", resource, out)
		}
	}
	tok := token("triage-agent", "https://airlock.example/es")
	used = append(used, tok)
	g := grantID(t, mustOK(t, airlock(t, e.addr, tok, "request", "aws-prod", "--allow", "s3:GetObject arn:aws:s3:::logs/app/*",
		"--for", "10m", "--reason", "triage checkout errors"), "request with a workload token"))
	var show struct {
		Grant struct {
			Identity string `json:"identity"`
			Auth     string `json:"auth"`
		} `json:"grant"`
	}
	if err := json.Unmarshal([]byte(mustOK(t, airlock(t, e.addr, e.alice.Key, "grant", "show", g, "-o", "json"), "grant show")), &show); err != nil {
		t.Fatal(err)
	}
	rec := show.Grant
	if rec.Identity != "log-triage-bot" || rec.Auth != "oidc:"+issuer+" triage-agent" {
		t.Fatalf("grant %s: identity %q auth %q", g, rec.Identity, rec.Auth)
	}

	// A decision refused to the agent (agents do not revoke) records its
	// token as decisions record a credential: {"method": "oidc", …}. It
	// recorded the string "oidc:<issuer> <subject>".
	if r := airlock(t, e.addr, tok, "revoke", g, "--reason", "try"); r.code == 0 {
		t.Fatalf("the agent revoked its grant: %s", r.stdout)
	}
	var hist struct {
		History []struct {
			Type  string `json:"type"`
			Entry struct {
				Data struct {
					Auth json.RawMessage `json:"auth"` // grant.requested's is a string
				} `json:"data"`
			} `json:"entry"`
		} `json:"history"`
	}
	if err := json.Unmarshal([]byte(mustOK(t, airlock(t, e.addr, e.alice.Key, "grant", "show", g, "-o", "json"), "grant show")), &hist); err != nil {
		t.Fatal(err)
	}
	refused := 0
	for _, h := range hist.History {
		if h.Type != "decision.refused" {
			continue
		}
		refused++
		var a map[string]string
		if err := json.Unmarshal(h.Entry.Data.Auth, &a); err != nil || a["method"] != "oidc" || a["issuer"] != issuer || a["subject"] != "triage-agent" || len(a) != 3 {
			t.Errorf("decision.refused auth %s, want oidc %s triage-agent", h.Entry.Data.Auth, issuer)
		}
	}
	if refused != 1 {
		t.Errorf("%d decision.refused entries on the grant, want 1", refused)
	}

	// A token good for 24 hours (EKS IRSA's lifetime) is within the
	// default max_token_lifetime, 48 hours.
	tok = token("triage-agent", "https://airlock.example/day")
	used = append(used, tok)
	if out := mustOK(t, airlock(t, e.addr, tok, "whoami"), "whoami with a 24-hour token"); !strings.HasPrefix(out, "log-triage-bot (agent") {
		t.Fatalf("whoami with a 24-hour token:\n%s", out)
	}

	for _, c := range []struct{ client, resource, want string }{
		{"triage-agent", "https://other.example/", "audience not accepted"},
		{"stranger", "https://airlock.example/es", "no identity is bound"},
		// The provider signs it, for the right audience and client, but
		// it would be good for a year to whoever holds it.
		{"triage-agent", "https://airlock.example/year", "token lifetime (exp - iat) exceeds the issuer's max_token_lifetime (48h0m0s)"},
	} {
		tok := token(c.client, c.resource)
		used = append(used, tok)
		r := airlock(t, e.addr, tok, "whoami")
		if r.code == 0 || !strings.Contains(r.stderr, c.want) {
			t.Fatalf("whoami as %s for %s: exit %d, stderr %q; want refused with %q", c.client, c.resource, r.code, r.stderr, c.want)
		}
	}
	logs := e.stderr.String()
	for _, tok := range used {
		if strings.Contains(logs, tok) || strings.Contains(logs, tok[strings.LastIndex(tok, ".")+1:]) {
			t.Fatal("a workload token is in the server's log")
		}
	}
	if strings.Contains(logs, secret) || strings.Contains(opErr.String(), secret) {
		t.Fatal("the client secret is in a log")
	}
}
