package notify_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/httpapi"
	"github.com/airlock-dev/airlock/internal/model"
)

// readActions are real S3 actions an agent may ask for with a person's
// approval; the delete actions come last in the statement.
var readActions = []string{
	"s3:GetObject", "s3:GetObjectAcl", "s3:GetObjectAttributes", "s3:GetObjectLegalHold", "s3:GetObjectRetention",
	"s3:GetObjectTagging", "s3:GetObjectTorrent", "s3:GetObjectVersion", "s3:GetObjectVersionAcl",
	"s3:GetObjectVersionAttributes", "s3:GetObjectVersionForReplication", "s3:GetObjectVersionTagging",
	"s3:GetObjectVersionTorrent", "s3:ListBucket", "s3:ListBucketVersions", "s3:ListBucketMultipartUploads",
	"s3:ListMultipartUploadParts", "s3:GetBucketLocation", "s3:GetBucketTagging", "s3:GetBucketVersioning",
	"s3:GetBucketPolicy", "s3:GetBucketAcl",
}

// TestSlackShowsTheWholeScope: a person approving from Slack approves what
// the message showed. A request whose scope the message cannot show in
// full (a statement longer than a field, or more than a Slack section
// holds) must not be offered with an Approve button: before, a long list of
// harmless actions pushed the delete actions and the resource out of the
// message ("…"), and one click approved them; and a request with many
// statements was refused by Slack altogether.
func TestSlackShowsTheWholeScope(t *testing.T) {
	f := newFakeSlack(t)
	t.Setenv("TEST_SLACK_WEBHOOK", f.URL+"/incoming")
	t.Setenv("TEST_SLACK_SECRET", signingSecret)
	acts := append(append([]string{}, readActions...), "s3:DeleteObject", "s3:DeleteObjectVersion")
	var ents []string
	for _, a := range acts {
		ents = append(ents, fmt.Sprintf("Action::%q", a))
	}
	extra := `
@id("sre-orders-with-approval")
@approval("human")
permit (principal in Group::"sre-team", action in [` + strings.Join(ents, ", ") + `], resource == Target::"aws-prod")
when { context.resource like "arn:aws:s3:::orders/*" };
`
	w := newWorldWith(t, "notify:\n  slack: {webhook_url_env: TEST_SLACK_WEBHOOK, signing_secret_env: TEST_SLACK_SECRET}\n", extra)

	long := strings.Join(acts, ",") + " arn:aws:s3:::orders/*"
	many := make([]string, 64)
	for i := range many {
		many[i] = fmt.Sprintf("s3:GetObject,s3:ListBucket arn:aws:s3:::logs/team-%02d/service-%02d/*", i, i)
	}
	for _, tc := range []struct {
		name  string
		scope []string
	}{{"one long statement", []string{long}}, {"many statements", many}} {
		t.Run(tc.name, func(t *testing.T) {
			var out httpapi.GrantResponse
			if st := w.call("POST", "/v1/grants", w.bot, map[string]any{"target": "aws-prod", "scope": tc.scope, "duration": "30m", "reason": "INC-9 read order logs"}, &out); st != http.StatusCreated {
				t.Fatalf("request: status %d", st)
			}
			if out.Grant.Status != model.Pending {
				t.Fatalf("status %s", out.Grant.Status)
			}
			var m map[string]any
			select {
			case m = <-f.incoming:
			case <-time.After(10 * time.Second):
				t.Fatal("the request never reached Slack")
			}
			blocks, _ := m["blocks"].([]any)
			sec, _ := blocks[0].(map[string]any)
			txt, _ := sec["text"].(map[string]any)
			section, _ := txt["text"].(string)
			approve := false
			for _, b := range blocks[1:] {
				bm, _ := b.(map[string]any)
				els, _ := bm["elements"].([]any)
				for _, e := range els {
					em, _ := e.(map[string]any)
					if id, _ := em["action_id"].(string); id == "airlock_approve:"+out.Grant.ID {
						approve = true
					}
				}
			}
			if !approve {
				if !strings.Contains(section, "airlock grant show "+out.Grant.ID) {
					t.Errorf("no Approve button, and the message does not say where to see the request:\n%s", section)
				}
				// Nor does a click on an Approve button that Airlock never
				// posted (a message of someone else's through the incoming
				// webhook) approve it.
				st, txt := w.clickAs(f, click{user: "U0ALICE", actionID: "airlock_approve:" + out.Grant.ID, trigger: "t-forged-" + out.Grant.ID, forged: true})
				if st != http.StatusOK || !strings.Contains(txt, "larger than Slack can show") {
					t.Errorf("a click on an Approve button Airlock did not post: %d %q", st, txt)
				}
				if g := w.grant(out.Grant.ID); g.Status != model.Pending || len(g.Approvals) != 0 {
					t.Errorf("approved from Slack without being shown: %s %+v", g.Status, g.Approvals)
				}
				refused := false
				for _, e := range w.entries("integration.refused") {
					if e.GrantID == out.Grant.ID {
						refused = true
					}
				}
				if !refused {
					t.Error("the refused click is not in the log")
				}
				return
			}
			for _, s := range tc.scope {
				if !strings.Contains(section, "• `"+s+"`\n") {
					t.Errorf("Approve is offered, but the message does not show the statement %q in full:\n%s", s, section)
				}
			}
		})
	}
}
