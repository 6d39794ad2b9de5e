package notify_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/airlock-dev/airlock/internal/model"
)

// TestSlackFollowsUpForbidDenial: a request posted with its buttons, then
// denied by the policy set because a forbid loaded since matches it (the
// operator's SIGHUP during an incident), is followed up in Slack as a
// person's denial elsewhere is: approvers reading the channel see it was
// denied by policy, and why, instead of buttons that still look
// approvable. A click on them is refused. Before, Slack heard nothing.
func TestSlackFollowsUpForbidDenial(t *testing.T) {
	w, f := newSlackWorld(t)
	g := w.request(w.bot, humanScope, "billing errors too")
	if g.Status != model.Pending {
		t.Fatalf("status %s", g.Status)
	}
	_, approve, _ := buttons(t, next(t, f.incoming, "request notification"))

	must(t, os.WriteFile(filepath.Join(w.dir, "policies", "incident.cedar"), []byte(`@id("freeze-log-secrets")
forbid (principal, action, resource) when { context.resource like "arn:aws:s3:::logs/secret/*" };
`), 0o644))
	must(t, w.srv.Service.ReloadPolicies(context.Background(), "SIGHUP"))
	if got := w.grant(g.ID); got.Status != model.Denied || got.EndedBy != "policy" {
		t.Fatalf("after the forbid: %s by %q", got.Status, got.EndedBy)
	}
	fu := next(t, f.incoming, "follow-up of the denial by policy")
	if txt := fmt.Sprint(fu["text"]); !strings.Contains(txt, g.ID) || !strings.Contains(txt, "Denied by *policy*") ||
		!strings.Contains(txt, `forbidden by policy "freeze-log-secrets"`) {
		t.Errorf("follow-up %q", txt)
	}
	if st, txt := w.clickAs(f, click{user: "U0ALICE", actionID: approve, trigger: "t-late"}); st != http.StatusOK || !strings.Contains(txt, "refused") {
		t.Errorf("approving from the old message: %d %q", st, txt)
	}
	next(t, f.replies, "refusal of the late approval")
	if got := w.grant(g.ID); got.Status != model.Denied {
		t.Fatalf("after a click on the old message: %s", got.Status)
	}

	rep, err := w.srv.Verify(context.Background())
	must(t, err)
	if !rep.OK || !rep.Rows {
		t.Errorf("verify: ok=%v rows=%v problems=%v", rep.OK, rep.Rows, rep.Problems)
	}
}

// TestSlackFollowsUpWithdrawnDenial: as TestSlackFollowsUpForbidDenial,
// for a request whose permit a reload withdrew (no forbid): denied by
// the policy set at the load, and followed up in Slack saying no policy
// permits it any more. Before, it stayed pending and Slack heard nothing.
func TestSlackFollowsUpWithdrawnDenial(t *testing.T) {
	w, f := newSlackWorld(t)
	g := w.request(w.bot, humanScope, "billing errors too")
	if g.Status != model.Pending {
		t.Fatalf("status %s", g.Status)
	}
	next(t, f.incoming, "request notification")

	p := filepath.Join(w.dir, "policies", "p.cedar")
	text, err := os.ReadFile(p)
	must(t, err)
	// The permit narrowed to another prefix: nothing permits logs/* now.
	without := strings.Replace(string(text), `context.resource like "arn:aws:s3:::logs/*"`, `context.resource like "arn:aws:s3:::other-logs/*"`, 1)
	if !strings.Contains(without, "other-logs") {
		t.Fatal("the test's policy edit did not apply")
	}
	must(t, os.WriteFile(p, []byte(without), 0o644))
	must(t, w.srv.Service.ReloadPolicies(context.Background(), "SIGHUP"))
	if got := w.grant(g.ID); got.Status != model.Denied || got.EndedBy != "policy" {
		t.Fatalf("after the withdrawal: %s by %q", got.Status, got.EndedBy)
	}
	fu := next(t, f.incoming, "follow-up of the denial by policy")
	if txt := fmt.Sprint(fu["text"]); !strings.Contains(txt, g.ID) || !strings.Contains(txt, "Denied by *policy*") ||
		!strings.Contains(txt, "no longer permitted by policy set") || !strings.Contains(txt, "no policy permits") {
		t.Errorf("follow-up %q", txt)
	}
}
