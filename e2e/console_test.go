package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/testenv"
)

// TestConsoleInBrowser drives the web console of a real `airlock serve`
// in Debian's Chromium (e2e/console/console.mjs, playwright-core): sign in
// with a key, see a request the CLI makes arrive in the open queue,
// approve it with a comment, read the review (for today, and for a
// window typed as since/until, a bad one refused beside the form), the
// grant and a session transcript, revoke, follow the grant's history a page at a time (each
// page's "next page" link), verify the log; a person cannot approve their own
// request and an agent's key cannot sign in. The test checks each
// decision through the CLI.
//
// Run with AIRLOCK_UPDATE_SCREENSHOTS=1 to refresh docs/img/console-*.png.
func TestConsoleInBrowser(t *testing.T) {
	node := testenv.Tool(t, "node", "install Node.js (apt-get install nodejs npm)")
	chromium := testenv.Tool(t, "chromium", "install Debian's chromium (apt-get install chromium)")
	if chromium != "/usr/bin/chromium" {
		t.Logf("chromium at %s; the script launches /usr/bin/chromium", chromium)
	}
	script, err := filepath.Abs("console/console.mjs")
	if err != nil {
		t.Fatal(err)
	}
	testenv.Tool(t, filepath.Join(filepath.Dir(script), "node_modules", ".bin", "playwright-core"), "run: (cd e2e/console && npm ci)")
	cli := testenv.AWSCLI(t)
	s3 := testenv.Versity(t)
	root := []string{"AWS_ACCESS_KEY_ID=" + s3.AccessKeyID, "AWS_SECRET_ACCESS_KEY=" + s3.SecretAccessKey, "AWS_DEFAULT_REGION=us-east-1"}
	seed := filepath.Join(t.TempDir(), "seed")
	write(t, seed, "GET /checkout 500\n")
	mustOK(t, awsRun(t, cli, root, "--endpoint-url", s3.URL, "s3", "mb", "s3://logs"), "make bucket")
	mustOK(t, awsRun(t, cli, root, "--endpoint-url", s3.URL, "s3", "cp", seed, "s3://logs/app/2026/12/01/api.log"), "seed")

	// bob, a second lead, may approve alice's own request, so that it
	// waits (for the self-approval step) rather than being denied as one
	// nobody may approve.
	e := writeSetupWith(t, setup{awsListen: testenv.FreeAddr(t), awsEndpoint: s3.URL, awsKey: s3.AccessKeyID, awsSecret: s3.SecretAccessKey,
		people: fmt.Sprintf("  - name: bob\n    kind: human\n    groups: [sre-leads]\n    key_sha256: %q\n", keygen(t).SHA)})
	e.start(t)

	failDir, err := os.MkdirTemp("", "airlock-console-shots-")
	if err != nil {
		t.Fatal(err)
	}
	docs := ""
	if os.Getenv("AIRLOCK_UPDATE_SCREENSHOTS") != "" {
		if docs, err = filepath.Abs("../docs/img"); err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(docs, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(node, script)
	cmd.Dir = filepath.Dir(script)
	cmd.Env = append(os.Environ(), "AIRLOCK_URL="+e.addr, "ALICE_KEY="+e.alice.Key, "BOT_KEY="+e.bot.Key, "FAIL_DIR="+failDir, "DOCS_IMG="+docs)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr syncBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// The browser never outlives the test.
	killer := time.AfterFunc(4*time.Minute, func() { _ = cmd.Process.Kill() })
	defer killer.Stop()
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	reply := func(arg string) {
		if _, err := io.WriteString(stdin, "GO "+arg+"\n"); err != nil {
			t.Fatalf("writing to the browser script: %v", err)
		}
	}
	failed := func(format string, args ...any) {
		t.Helper()
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatalf("%s\nscreenshots (on failure): %s\nscript stderr:\n%s\nserver:\n%s", fmt.Sprintf(format, args...), failDir, stderr.String(), e.stderr)
	}

	var gid, ownID string
	done := false
	for !done {
		var l string
		var ok bool
		select {
		case l, ok = <-lines:
		case <-time.After(2 * time.Minute):
			failed("the browser script went quiet")
		}
		if !ok {
			failed("the browser script ended without DONE")
		}
		t.Log("browser:", l)
		f := strings.Fields(l)
		switch {
		case l == "DONE":
			done = true
			stdin.Close()
		case strings.HasPrefix(l, "FAIL") || strings.HasPrefix(l, "screenshot:"):
			continue
		case len(f) >= 2 && f[0] == "STEP" && f[1] == "queue-open":
			// The page is open; the agent asks now, through the CLI.
			out := mustOK(t, airlock(t, e.addr, e.bot.Key, "request", "aws-prod", "--allow", "s3:GetObject arn:aws:s3:::logs/*",
				"--for", "30m", "--reason", "billing errors too"), "request")
			gid = strings.Fields(out)[0]
			reply(gid)
		case len(f) >= 3 && f[0] == "STEP" && f[1] == "approved":
			if f[2] != gid {
				failed("approved %s, want %s", f[2], gid)
			}
			var show struct {
				Grant struct {
					Status    string `json:"status"`
					Approvals []struct {
						Approver, Decision, Comment string
					} `json:"approvals"`
				} `json:"grant"`
			}
			if err := json.Unmarshal([]byte(mustOK(t, airlock(t, e.addr, e.alice.Key, "grant", "show", gid, "-o", "json"), "grant show")), &show); err != nil {
				failed("grant show: %v", err)
			}
			if a := show.Grant.Approvals; show.Grant.Status != "active" || len(a) != 1 || a[0].Approver != "alice" || a[0].Comment != "ok for the incident" {
				failed("after the console's approval the CLI shows %+v", show.Grant)
			}
			// A session under the grant: one read allowed, one refused.
			creds := credsEnv(t, mustOK(t, airlock(t, e.addr, e.bot.Key, "credentials", gid), "credentials"))
			endpoint := envValue(creds, "AWS_ENDPOINT_URL")
			mustOK(t, awsRun(t, cli, creds, "--endpoint-url", endpoint, "s3", "cp", "s3://logs/app/2026/12/01/api.log", "-"), "allowed read")
			if r := awsRun(t, cli, creds, "--endpoint-url", endpoint, "s3api", "get-object", "--bucket", "reports", "--key", "q3.csv", filepath.Join(t.TempDir(), "o")); r.code == 0 {
				failed("a read outside the grant succeeded")
			}
			// alice's own request, for the self-approval step.
			ownID = grantID(t, mustOK(t, airlock(t, e.addr, e.alice.Key, "request", "aws-prod", "--allow", "s3:GetObject arn:aws:s3:::reports/q3.csv",
				"--for", "5m", "--reason", "quarterly numbers"), "alice's request"))
			reply(ownID)
		case len(f) >= 3 && f[0] == "STEP" && f[1] == "revoked":
			var rows []row
			if err := json.Unmarshal([]byte(mustOK(t, airlock(t, e.addr, e.alice.Key, "grants", "--identity", "log-triage-bot", "-o", "json"), "grants")), &rows); err != nil {
				failed("grants: %v", err)
			}
			found := false
			for _, r := range rows {
				if r.Grant == gid {
					found = true
					if r.Status != "revoked" || r.EndedBy != "alice" || r.ApprovedBy != "alice" {
						failed("after the console's revoke the review row is %+v", r)
					}
				}
			}
			if !found {
				failed("%s not in the review", gid)
			}
			reply("")
		default:
			failed("unexpected line from the browser script: %q", l)
		}
	}
	if err := cmd.Wait(); err != nil {
		failed("browser script: %v", err)
	}
	// The self-approval attempt changed nothing.
	if out := mustOK(t, airlock(t, e.addr, e.alice.Key, "grant", "show", ownID), "grant show own"); !strings.Contains(out, "[pending]") {
		t.Fatalf("alice's own request after her approval attempt:\n%s", out)
	}
	os.RemoveAll(failDir)
}
