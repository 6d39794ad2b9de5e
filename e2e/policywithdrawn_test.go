package e2e

import (
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestWithdrawnPermitReloadDeniesPending: the permit two pending requests
// were made under is narrowed by a SIGHUP, through the real airlock
// binary and CLI, with no forbid:
//
//   - the request for logs/*, which nothing permits any more, is denied by
//     policy at the reload, saying so (grant show); it leaves `airlock
//     pending`, and alice's approval is refused. Before, it stayed in her
//     queue, looking approvable, refused only when she tried;
//   - the request for logs/billing/*, which the narrowed permit now grants
//     with @approval("auto"), is left for a person: still pending, and
//     alice approves it.
//
// The log and the rows still verify.
func TestWithdrawnPermitReloadDeniesPending(t *testing.T) {
	e := writeSetup(t)
	e.start(t)
	request := func(scope string) string {
		out := mustOK(t, airlock(t, e.addr, e.bot.Key, "request", "aws-prod", "--allow", scope, "--for", "30m", "--reason", "billing errors too"), "request "+scope)
		if !strings.Contains(out, " pending ") {
			t.Fatalf("request for %s: %q, want pending", scope, out)
		}
		return grantID(t, out)
	}
	all := request("s3:GetObject arn:aws:s3:::logs/*")
	billing := request("s3:GetObject arn:aws:s3:::logs/billing/*")

	narrowed := strings.Replace(policies, `@id("sre-reads-all-logs-with-approval")
@approval("human")
permit (principal in Group::"sre-team", action in [Action::"s3:GetObject", Action::"s3:ListBucket"], resource == Target::"aws-prod")
when { context.resource like "arn:aws:s3:::logs/*" && context.duration_seconds <= 3600 };`, `@id("sre-reads-billing-logs")
@approval("auto")
permit (principal in Group::"sre-team", action == Action::"s3:GetObject", resource == Target::"aws-prod")
when { context.resource like "arn:aws:s3:::logs/billing/*" && context.duration_seconds <= 3600 };`, 1)
	if narrowed == policies {
		t.Fatal("the test's policy edit did not apply")
	}
	write(t, filepath.Join(e.dir, "policies", "aws-prod.cedar"), narrowed)
	if err := e.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	var show string
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		show = mustOK(t, airlock(t, e.addr, e.alice.Key, "grant", "show", all), "grant show")
		if !strings.Contains(show, "pending") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the request for logs/* was not denied within 30s of the reload:\n%s\nserver log:\n%s", show, e.stderr)
		}
	}
	if !strings.Contains(show, "denied") || !strings.Contains(show, "by policy") ||
		!strings.Contains(show, "no longer permitted by policy set sha256:") || !strings.Contains(show, "no policy permits s3:GetObject on arn:aws:s3:::logs/*") {
		t.Fatalf("grant show does not say the policy set denied the request because nothing permits it any more:\n%s", show)
	}
	q := mustOK(t, airlock(t, e.addr, e.alice.Key, "pending"), "pending")
	if strings.Contains(q, all) {
		t.Errorf("alice's queue still offers the request nothing permits:\n%s", q)
	}
	if !strings.Contains(q, billing) {
		t.Errorf("alice's queue lacks the request the new set would approve without her:\n%s", q)
	}
	if r := airlock(t, e.addr, e.alice.Key, "approve", all, "--comment", "ok"); r.code == 0 {
		t.Errorf("the denied request was approved: %s", r.stdout)
	}
	if show := mustOK(t, airlock(t, e.addr, e.alice.Key, "grant", "show", billing), "grant show"); !strings.Contains(show, "pending") {
		t.Fatalf("the request the new set would auto-approve was decided at the reload:\n%s", show)
	}
	mustOK(t, airlock(t, e.addr, e.alice.Key, "approve", billing, "--comment", "ok"), "approve the billing request")
	if show := mustOK(t, airlock(t, e.addr, e.alice.Key, "grant", "show", billing), "grant show"); !strings.Contains(show, "active") {
		t.Errorf("after alice's approval:\n%s", show)
	}
	if r := airlock(t, e.addr, e.alice.Key, "audit", "verify"); r.code != 0 {
		t.Fatalf("audit verify: %s %s", r.stdout, r.stderr)
	}
}
