package notify_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/airlock-dev/airlock/internal/model"
)

// TestSlackTeamID: with notify.slack.team_id set, a correctly signed click
// from another workspace by a user whose id matches a mapped person's is
// refused (wrong_team) and recorded with the workspace it came from; a
// click from the configured workspace, or from a workspace of the
// configured Enterprise Grid organisation, decides.
func TestSlackTeamID(t *testing.T) {
	w, f, g, approve := pendingFromTeam(t, "T0001")

	st, txt := w.clickAs(f, click{user: "U0ALICE", actionID: approve, trigger: "t-other", team: "T0EVIL"})
	if st != http.StatusOK || !strings.Contains(txt, "not the one Airlock takes decisions from") {
		t.Fatalf("click from another workspace: %d %q", st, txt)
	}
	if got := w.grant(g.ID); got.Status != model.Pending {
		t.Fatalf("a click from another workspace left the grant %s", got.Status)
	}
	if st, txt := w.clickAs(f, click{user: "U0ALICE", actionID: approve, trigger: "t-home"}); st != http.StatusOK {
		t.Fatalf("click from the configured workspace: %d %q", st, txt)
	}
	if got := w.grant(g.ID); got.Status != model.Active {
		t.Fatalf("after the click from the configured workspace the grant is %s", got.Status)
	}
	found := false
	for _, e := range w.entries("integration.refused") {
		var d struct {
			Data map[string]any `json:"data"`
		}
		must(t, json.Unmarshal(e.Data, &d))
		if d.Data["reason"] == "wrong_team" && d.Data["slack_team"] == "T0EVIL" && d.Data["slack_user"] == "U0ALICE" && e.GrantID == g.ID {
			found = true
		}
	}
	if !found {
		t.Fatal("the refused click from another workspace is not in the log with its workspace")
	}

}

// TestSlackTeamIDOfTheUser: with team_id set, a click in the configured
// workspace by a user of another one (a channel shared with another
// organisation, Slack Connect: team is ours, user.team_id theirs) is
// refused too, since the user's id is only promised unique within their
// own workspace. Only the workspace the click came from was checked, so
// such a user whose id matched a mapped person's decided as that person.
// An Enterprise Grid user, whose user.team_id is the organisation's, still
// decides.
func TestSlackTeamIDOfTheUser(t *testing.T) {
	w, f, g, approve := pendingFromTeam(t, "T0001")
	st, txt := w.clickAs(f, click{user: "U0ALICE", actionID: approve, trigger: "t-connect", userTeam: "T0EVIL"})
	if st != http.StatusOK || !strings.Contains(txt, "not the one Airlock takes decisions from") {
		t.Errorf("click by a user of another workspace: %d %q", st, txt)
	}
	if got := w.grant(g.ID); got.Status != model.Pending {
		t.Fatalf("a click by a user of another workspace left the grant %s, approvals %+v", got.Status, got.Approvals)
	}
	found := false
	for _, e := range w.entries("integration.refused") {
		var d struct {
			Data map[string]any `json:"data"`
		}
		must(t, json.Unmarshal(e.Data, &d))
		if d.Data["reason"] == "wrong_team" && d.Data["slack_team"] == "T0001" && d.Data["slack_user_team"] == "T0EVIL" && e.GrantID == g.ID {
			found = true
		}
	}
	if !found {
		t.Error("the refused click is not in the log with the user's workspace")
	}

	w, f, g, approve = pendingFromTeam(t, "T0002")
	if st, txt := w.clickAs(f, click{user: "U0ALICE", actionID: approve, trigger: "t-grid", team: "T0002", enterprise: "E0ORG", userTeam: "E0ORG"}); st != http.StatusOK || txt != "" {
		t.Fatalf("click by a user of the workspace's Enterprise Grid organisation: %d %q", st, txt)
	}
	if got := w.grant(g.ID); got.Status != model.Active {
		t.Fatalf("after the Grid user's click the grant is %s", got.Status)
	}
}

// TestSlackEnterpriseID: team_id may name an Enterprise Grid organisation;
// a click from any of its workspaces counts.
func TestSlackEnterpriseID(t *testing.T) {
	w, f, g, approve := pendingFromTeam(t, "E0ORG")
	if st, txt := w.clickAs(f, click{user: "U0ALICE", actionID: approve, trigger: "t-noorg", team: "T0002"}); st != http.StatusOK || !strings.Contains(txt, "not the one") {
		t.Fatalf("click from outside the organisation: %d %q", st, txt)
	}
	if st, txt := w.clickAs(f, click{user: "U0ALICE", actionID: approve, trigger: "t-org", team: "T0002", enterprise: "E0ORG"}); st != http.StatusOK {
		t.Fatalf("click from the organisation: %d %q", st, txt)
	}
	if got := w.grant(g.ID); got.Status != model.Active {
		t.Fatalf("after the click from the organisation the grant is %s", got.Status)
	}
}

// pendingFromTeam starts a world whose Slack takes clicks from team only,
// requests access and returns the pending grant and its Approve action id.
func pendingFromTeam(t *testing.T, team string) (*world, *fakeSlack, model.Grant, string) {
	t.Helper()
	f := newFakeSlack(t)
	t.Setenv("TEST_SLACK_WEBHOOK", f.URL+"/incoming")
	t.Setenv("TEST_SLACK_SECRET", signingSecret)
	w := newWorld(t, "notify:\n  slack: {webhook_url_env: TEST_SLACK_WEBHOOK, signing_secret_env: TEST_SLACK_SECRET, team_id: "+team+"}\n")
	g := w.request(w.bot, humanScope, "INC-8")
	_, approve, _ := buttons(t, next(t, f.incoming, "request notification"))
	return w, f, g, approve
}
