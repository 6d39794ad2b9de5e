package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/model"
)

// pendingScope is a scope the demo policies send to a person (the bot's
// automatic approval covers logs/app/* only).
const pendingScope = "s3:GetObject arn:aws:s3:::logs/*"

var grantIDRE = regexp.MustCompile(`\bg_[a-z0-9]+\b`)

// grantOf returns the grant exec announced on stderr, as alice sees it.
func (l *liveServer) grantOf(stderr string) model.Grant {
	l.t.Helper()
	id := grantIDRE.FindString(stderr)
	if id == "" {
		l.t.Fatalf("no grant id in exec's stderr: %q", stderr)
	}
	code, out, errOut := l.as(l.aliceKey, "grant", "show", id, "-o", "json")
	var shown struct {
		Grant model.Grant `json:"grant"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &shown) != nil || shown.Grant.ID != id {
		l.t.Fatalf("grant show %s: exit %d: %s %s", id, code, out, errOut)
	}
	return shown.Grant
}

// TestExecWithdrawsWhenItGivesUp: exec that stops waiting for approval
// withdraws its request, so that an approval given later activates
// nothing: before, the request stayed pending and alice's approve made an
// active grant that no process held.
func TestExecWithdrawsWhenItGivesUp(t *testing.T) {
	l := startServer(t, nil)
	code, _, errOut := l.as(l.botKey, "exec", "aws-prod", "--allow", pendingScope, "--for", "5m", "--reason", "give up",
		"--wait-timeout", "1s", "--", "true")
	if code != 1 || !strings.Contains(errOut, "still pending after 1s") || !strings.Contains(errOut, "withdrawn") {
		t.Fatalf("exec: exit %d, stderr %q; want 1, still pending and withdrawn", code, errOut)
	}
	g := l.grantOf(errOut)
	if g.Status != model.Cancelled || g.EndedBy != "log-triage-bot" || !strings.Contains(g.EndComment, "airlock exec: gave up waiting for approval") {
		t.Fatalf("grant after exec gave up: status %s, ended by %q, comment %q", g.Status, g.EndedBy, g.EndComment)
	}
	if code, _, errOut := l.as(l.aliceKey, "approve", g.ID); code == 0 {
		t.Fatalf("approving the withdrawn request succeeded: %s", errOut)
	}
	if g := l.grantOf(errOut); g.Status != model.Cancelled {
		t.Fatalf("after the approval attempt: %s", g.Status)
	}
}

// TestExecWithdrawsWhenInterrupted: a SIGINT (Ctrl-C) while exec waits
// for approval withdraws the request and exits 130; before, the signal
// killed the process and left the request pending.
func TestExecWithdrawsWhenInterrupted(t *testing.T) {
	l := startServer(t, nil)
	// Keep SIGINT from killing the test binary should it arrive before
	// exec listens for it.
	guard := make(chan os.Signal, 16)
	signal.Notify(guard, os.Interrupt)
	defer signal.Stop(guard)

	var out, errOut bytes.Buffer
	done := make(chan int, 1)
	env := map[string]string{EnvAddr: "http://" + l.apiAddr, EnvToken: l.botKey}
	go func() {
		done <- Main(context.Background(), []string{"exec", "aws-prod", "--allow", pendingScope, "--for", "5m", "--reason", "interrupt",
			"--wait-timeout", "60s", "--", "true"}, &out, &errOut, func(k string) string { return env[k] })
	}()
	// Wait for the request, then interrupt until exec returns: a signal
	// sent before exec listens is missed, so send one every 100 ms.
	deadline := time.Now().Add(20 * time.Second)
	for {
		code, pending, _ := l.as(l.aliceKey, "pending", "-o", "json")
		if code == 0 && strings.Contains(pending, `"interrupt"`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("exec's request never became pending")
		}
		time.Sleep(50 * time.Millisecond)
	}
	var code int
	for tick := time.NewTicker(100 * time.Millisecond); ; {
		if err := syscall.Kill(os.Getpid(), syscall.SIGINT); err != nil {
			t.Fatal(err)
		}
		select {
		case code = <-done:
		case <-tick.C:
			if time.Now().After(deadline) {
				t.Fatal("exec did not return after SIGINT")
			}
			continue
		}
		tick.Stop()
		break
	}
	if code != 130 || !strings.Contains(errOut.String(), "withdrawn") {
		t.Fatalf("exec after SIGINT: exit %d, stderr %q; want 130 and withdrawn", code, errOut.String())
	}
	g := l.grantOf(errOut.String())
	if g.Status != model.Cancelled || !strings.Contains(g.EndComment, "airlock exec: interrupted (interrupt) while waiting for approval") {
		t.Fatalf("grant after the interrupted exec: status %s, comment %q", g.Status, g.EndComment)
	}
}

// TestCredentialsOutputJSON: -o json, which every listing and show command
// takes, gives the credentials as JSON (it printed shell exports), the
// same as --format json; with a --format that says otherwise it is a usage
// error rather than a silent choice.
func TestCredentialsOutputJSON(t *testing.T) {
	l := startServer(t, nil)
	id := l.activeGrant("json")
	_, want, _ := l.as(l.botKey, "credentials", id, "--format", "json")
	code, got, errOut := l.as(l.botKey, "credentials", id, "-o", "json")
	var cr struct {
		GrantID string `json:"grant_id"`
	}
	if code != 0 || json.Unmarshal([]byte(got), &cr) != nil || cr.GrantID != id || got != want {
		t.Fatalf("credentials -o json: exit %d, %q (--format json: %q) %s", code, got, want, errOut)
	}
	if code, _, errOut := l.as(l.botKey, "credentials", id, "-o", "json", "--format", "env"); code != 2 || !strings.Contains(errOut, "give one") {
		t.Fatalf("credentials -o json --format env: exit %d, %s", code, errOut)
	}
}

// TestExecLeavesOutAirlockToken: the command exec runs gets the grant's
// credentials, not the caller's own key. Before, exec passed its whole
// environment on, AIRLOCK_TOKEN included, so CMD (a script, a third-party
// tool) held a long-lived key that could request more grants and outlive
// the grant; MCP's run_with_grant already left it out.
func TestExecLeavesOutAirlockToken(t *testing.T) {
	l := startServer(t, nil)
	t.Setenv(EnvToken, l.botKey) // as the real CLI has it: in the process's environment
	t.Setenv("AWS_SESSION_TOKEN", "stale-session-token")
	code, out, errOut := l.as(l.botKey, "exec", "aws-prod", "--allow", "s3:GetObject arn:aws:s3:::logs/app/*", "--for", "5m", "--reason", "env",
		"--", "sh", "-c", `echo "token=${AIRLOCK_TOKEN-unset} id=${AWS_ACCESS_KEY_ID-unset} st=${AWS_SESSION_TOKEN-unset}"`)
	if code != 0 {
		t.Fatalf("exec: exit %d: %s %s", code, out, errOut)
	}
	if !strings.Contains(out, "token=unset ") || strings.Contains(out, l.botKey) {
		t.Fatalf("the command saw AIRLOCK_TOKEN: %q", out)
	}
	if strings.Contains(out, "id=unset") || strings.Contains(out, "stale-session-token") {
		t.Fatalf("the command did not get the grant's credentials alone: %q", out)
	}
}

// TestExecForwardsHangup: a SIGHUP (the terminal closed) while CMD runs
// goes to CMD, and exec ends the grant when CMD exits. Before, only
// SIGINT and SIGTERM were caught: SIGHUP killed exec at once and left the
// grant active, its credentials in a command nobody watched.
func TestExecForwardsHangup(t *testing.T) {
	l := startServer(t, nil)
	// Keep SIGHUP from killing the test binary should it arrive while
	// exec does not listen for it.
	guard := make(chan os.Signal, 16)
	signal.Notify(guard, syscall.SIGHUP)
	defer signal.Stop(guard)

	ready := filepath.Join(t.TempDir(), "ready")
	var out, errOut bytes.Buffer
	done := make(chan int, 1)
	env := map[string]string{EnvAddr: "http://" + l.apiAddr, EnvToken: l.botKey}
	go func() {
		done <- Main(context.Background(), []string{"exec", "aws-prod", "--allow", "s3:GetObject arn:aws:s3:::logs/app/*", "--for", "5m", "--reason", "hangup",
			"--", "sh", "-c", `trap 'exit 7' HUP; : > "$1"; sleep 30 >/dev/null 2>&1 & wait`, "sh", ready}, &out, &errOut, func(k string) string { return env[k] })
	}()
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, err := os.Stat(ready); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the command never started: %s", errOut.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	var code int
	for tick := time.NewTicker(100 * time.Millisecond); ; {
		if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		select {
		case code = <-done:
		case <-tick.C:
			if time.Now().After(deadline) {
				t.Fatal("the command did not get the SIGHUP (exec did not return)")
			}
			continue
		}
		tick.Stop()
		break
	}
	if code != 7 {
		t.Fatalf("exec after SIGHUP: exit %d, stderr %q; want the command's 7", code, errOut.String())
	}
	if g := l.grantOf(errOut.String()); g.Status != model.Ended || !strings.Contains(g.EndComment, "command exited with status 7") {
		t.Fatalf("grant after the SIGHUP: status %s, comment %q", g.Status, g.EndComment)
	}
}

// TestWaitTimeoutMustBePositive: a zero or negative --wait-timeout is a
// usage error, refused before anything is requested. Before, it meant "no
// limit": request --wait and exec then waited until the request's
// decision deadline (an hour by default) instead of giving up at once.
func TestWaitTimeoutMustBePositive(t *testing.T) {
	l := startServer(t, nil)
	for _, args := range [][]string{
		{"request", "aws-prod", "--allow", pendingScope, "--for", "5m", "--reason", "r", "--wait", "--wait-timeout", "-1s"},
		{"request", "aws-prod", "--allow", pendingScope, "--for", "5m", "--reason", "r", "--wait", "--wait-timeout", "0s"},
		{"exec", "aws-prod", "--allow", pendingScope, "--for", "5m", "--reason", "r", "--wait-timeout", "-1s", "--", "true"},
	} {
		done := make(chan struct{})
		var code int
		var errOut string
		go func() {
			defer close(done)
			code, _, errOut = l.as(l.botKey, args...)
		}()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			t.Fatalf("%v still waiting after 20s", args)
		}
		if code != 2 || !strings.Contains(errOut, "--wait-timeout must be a positive duration") || grantIDRE.MatchString(errOut) {
			t.Fatalf("%v: exit %d, stderr %q; want 2, a usage error and no request", args, code, errOut)
		}
	}
	// Without --wait nothing waits: a --wait-timeout is refused, not
	// ignored.
	if code, _, errOut := l.as(l.botKey, "request", "aws-prod", "--allow", pendingScope, "--for", "5m", "--reason", "r", "--wait-timeout", "5m"); code != 2 ||
		!strings.Contains(errOut, "--wait-timeout applies only with --wait") || grantIDRE.MatchString(errOut) {
		t.Fatalf("--wait-timeout without --wait: exit %d, stderr %q; want 2, a usage error and no request", code, errOut)
	}
	code, out, _ := l.as(l.aliceKey, "pending")
	if code != 0 || grantIDRE.MatchString(out) {
		t.Fatalf("pending after refused requests: exit %d %q", code, out)
	}
}
