package notify_test

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/airlock-dev/airlock/internal/model"
)

// TestSlackForgedButtonRefused: a click Slack signed on a button Airlock
// did not post (a message someone posted through the incoming webhook with
// Airlock's action ids and a grant id of their choosing) is refused and
// recorded, whatever value the button carries; a click on the button
// Airlock posted still decides. The signing secret only proves a click
// came from Slack, and a click was matched by its action id alone, so any
// such message approved as the person who clicked it.
func TestSlackForgedButtonRefused(t *testing.T) {
	w, f := newSlackWorld(t)

	g := w.request(w.bot, humanScope, "INC-31")
	section, approve, deny := buttons(t, next(t, f.incoming, "the request"))
	other := w.request(w.bot, humanScope, "INC-32")
	_, otherApprove, otherDeny := buttons(t, next(t, f.incoming, "the other request"))

	// A value of the right form, over what the message showed, under a key
	// that is not Airlock's.
	shown := sha256.Sum256([]byte(section))
	m := hmac.New(sha256.New, []byte("a key that is not airlock's, 32 bytes or more"))
	m.Write([]byte("airlock slack button v1\napprove\n" + g.ID + "\n"))
	m.Write(shown[:])
	enc := base64.RawURLEncoding
	otherKey := "v1." + enc.EncodeToString(shown[:]) + "." + enc.EncodeToString(m.Sum(nil))

	const forgedText, legacyText = "not one Airlock posted", "before Airlock signed its buttons"
	for _, tc := range []struct {
		name, actionID, value, want string
		grant                       model.Grant
	}{
		{"no value", approve, "", forgedText, g},
		{"the grant id, as older Airlocks posted it", approve, g.ID, legacyText, g},
		{"a value of the right form that is not Airlock's", approve, otherKey, forgedText, g},
		{"garbage after the version", approve, "v1.AAAA.BBBB", forgedText, g},
		{"another request's Approve value", approve, f.postedValue(otherApprove), forgedText, g},
		{"the Deny button's value on Approve", approve, f.postedValue(deny), forgedText, g},
		{"the Approve button's value on Deny", otherDeny, f.postedValue(otherApprove), forgedText, other},
		{"Deny without a value", otherDeny, "", forgedText, other},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, txt := w.clickAs(f, click{user: "U0ALICE", actionID: tc.actionID, trigger: "t-" + tc.name, forged: true, value: tc.value})
			if st != http.StatusOK || !strings.Contains(txt, tc.want) || !strings.Contains(txt, tc.grant.ID) {
				t.Errorf("click: %d %q, want a refusal saying %q and naming %s", st, txt, tc.want, tc.grant.ID)
			}
			next(t, f.replies, "the refusal")
			if got := w.grant(tc.grant.ID); got.Status != model.Pending || len(got.Approvals) != 0 {
				t.Errorf("a click on a button Airlock did not post decided: %s %+v", got.Status, got.Approvals)
			}
		})
	}

	// The buttons Airlock posted still decide.
	if st, txt := w.clickAs(f, click{user: "U0ALICE", actionID: approve, trigger: "t-real-approve"}); st != http.StatusOK || txt != "" {
		t.Fatalf("approve on Airlock's message: %d %q", st, txt)
	}
	if got := w.grant(g.ID); got.Status != model.Active || len(got.Approvals) != 1 || got.Approvals[0].Approver != "alice" {
		t.Fatalf("after the click on Airlock's message: %s %+v", got.Status, got.Approvals)
	}
	if st, txt := w.clickAs(f, click{user: "U0CAROL", actionID: otherDeny, trigger: "t-real-deny"}); st != http.StatusOK || txt != "" {
		t.Fatalf("deny on Airlock's message: %d %q", st, txt)
	}
	if got := w.grant(other.ID); got.Status != model.Denied {
		t.Fatalf("after the deny on Airlock's message: %s", got.Status)
	}

	// Each refusal is in the log, with the grant and who clicked; the
	// buttons' values are not.
	refused := map[string]int{}
	for _, e := range w.entries("integration.refused") {
		var d struct {
			Data map[string]any `json:"data"`
		}
		must(t, json.Unmarshal(e.Data, &d))
		if d.Data["reason"] == "unverified_button" && d.Data["slack_user"] == "U0ALICE" && d.Data["identity"] == "alice" && d.Data["detail"] != nil {
			refused[e.GrantID]++
		}
		for _, v := range []string{f.postedValue(approve), f.postedValue(otherApprove), otherKey} {
			if bytes.Contains(e.Data, []byte(v[3:])) {
				t.Errorf("entry %d holds a button's value: %s", e.Seq, e.Data)
			}
		}
	}
	if refused[g.ID] != 6 || refused[other.ID] != 2 {
		t.Errorf("unverified_button refusals recorded: %v, want 6 for %s and 2 for %s", refused, g.ID, other.ID)
	}
}
