package notify_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/model"
	"github.com/airlock-dev/airlock/internal/notify"
)

const decideSecret = "whsec-decide-0123456789abcdef"

// newDecidingWorld is a running Airlock with one webhook whose receiver
// (a local stand-in that accepts every event) may decide when decisions
// is true.
func newDecidingWorld(t *testing.T, decisions bool) *world {
	t.Helper()
	recv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) { io.Copy(io.Discard, r.Body) }))
	t.Cleanup(recv.Close)
	t.Setenv("HOOK_DECIDE_SECRET", decideSecret)
	return newWorld(t, fmt.Sprintf("notify:\n  webhooks:\n    - url: %s/hook\n      secret_env: HOOK_DECIDE_SECRET\n      decisions: %v\n", recv.URL, decisions))
}

// decide posts a decision body signed with secret at ts (notify.Sign, as
// a receiver signs what it sends back) and returns the status and body.
func (w *world) decide(body any, secret string, ts time.Time) (int, string, string) {
	w.t.Helper()
	b, err := json.Marshal(body)
	must(w.t, err)
	sig := ""
	if secret != "" {
		sig = notify.Sign([]byte(secret), b, ts)
	}
	return w.postDecision(b, sig)
}

func (w *world) postDecision(b []byte, sig string) (int, string, string) {
	w.t.Helper()
	req, _ := http.NewRequest("POST", w.api+"/v1/integrations/webhook/actions", bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	if sig != "" {
		req.Header.Set(notify.SignatureHeader, sig)
	}
	resp, err := http.DefaultClient.Do(req)
	must(w.t, err)
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(out), sig
}

// TestWebhookDecisions: a webhook's receiver that may decide approves and
// denies pending requests as the person it names, signed with the
// webhook's secret; everything it is not entitled to is refused, recorded,
// and changes nothing.
func TestWebhookDecisions(t *testing.T) {
	w := newDecidingWorld(t, true)
	now := time.Now()
	g := w.request(w.bot, humanScope, "INC-11")
	approve := map[string]string{"grant_id": g.ID, "decision": "approve", "approver": "alice", "comment": "from the chat"}

	for _, c := range []struct {
		name   string
		body   any
		secret string
		at     time.Time
		status int
		want   string
	}{
		{"unsigned", approve, "", now, 401, "not signed"},
		{"another secret", approve, "not-the-webhook-secret", now, 401, "not signed"},
		{"stale", approve, decideSecret, now.Add(-10 * time.Minute), 401, "five minutes"},
		{"unknown field", map[string]string{"grant_id": g.ID, "decision": "approve", "approver": "alice", "role": "admin"}, decideSecret, now, 400, "not a decision"},
		{"bad verb", map[string]string{"grant_id": g.ID, "decision": "yes", "approver": "alice"}, decideSecret, now, 400, "want approve or deny"},
		{"an agent", map[string]string{"grant_id": g.ID, "decision": "approve", "approver": "log-triage-bot"}, decideSecret, now, 403, "not an enabled human"},
		{"nobody", map[string]string{"grant_id": g.ID, "decision": "approve", "approver": "mallory"}, decideSecret, now, 403, "not an enabled human"},
	} {
		st, body, _ := w.decide(c.body, c.secret, c.at)
		if st != c.status || !strings.Contains(body, c.want) {
			t.Errorf("%s: %d %s, want %d and %q", c.name, st, body, c.status, c.want)
		}
	}
	if got := w.grant(g.ID); got.Status != model.Pending {
		t.Fatalf("after the refused decisions the grant is %s", got.Status)
	}

	st, body, sig := w.decide(approve, decideSecret, now)
	if st != 200 || !strings.Contains(body, `"status":"active"`) {
		t.Fatalf("approve: %d %s", st, body)
	}
	got := w.grant(g.ID)
	if got.Status != model.Active || len(got.Approvals) != 1 || got.Approvals[0].Approver != "alice" ||
		got.Approvals[0].Via != "webhook" || got.Approvals[0].Comment != "from the chat" {
		t.Fatalf("approved grant: %s %+v", got.Status, got.Approvals)
	}
	// The same signed request again is a replay.
	b, _ := json.Marshal(approve)
	if st, body, _ := w.postDecision(b, sig); st != 401 || !strings.Contains(body, "already handled") {
		t.Errorf("replay: %d %s", st, body)
	}

	// A denial, with the default reason.
	g2 := w.request(w.bot, humanScope, "INC-12")
	if st, body, _ := w.decide(map[string]string{"grant_id": g2.ID, "decision": "deny", "approver": "carol"}, decideSecret, now); st != 200 || !strings.Contains(body, `"status":"denied"`) {
		t.Fatalf("deny: %d %s", st, body)
	}
	if got := w.grant(g2.ID); got.Status != model.Denied || got.EndComment != "denied through a webhook by carol" {
		t.Fatalf("denied grant: %s %q", got.Status, got.EndComment)
	}
	// The approve policies hold as for the API: nobody decides their own
	// request.
	own := w.request(w.alice, "s3:GetObject arn:aws:s3:::audit/2026/*", "own")
	if st, body, _ := w.decide(map[string]string{"grant_id": own.ID, "decision": "approve", "approver": "alice"}, decideSecret, now); st != 403 || !strings.Contains(body, "self_approval") {
		t.Fatalf("self-approval through the webhook: %d %s", st, body)
	}

	var verified, unverified int
	for _, e := range w.entries("integration.refused") {
		if strings.Contains(string(e.Data), decideSecret) {
			t.Errorf("a refusal holds the secret: %s", e.Data)
		}
		var entry struct {
			Data struct {
				Channel  string `json:"channel"`
				Verified bool   `json:"verified"`
			} `json:"data"`
		}
		must(t, json.Unmarshal(e.Data, &entry))
		d := entry.Data
		if d.Channel != "webhook" {
			t.Errorf("refusal channel %q: %s", d.Channel, e.Data)
		}
		if d.Verified {
			verified++
		} else {
			unverified++
		}
	}
	// unsigned, another secret, stale, replay; unknown field, bad verb,
	// agent, nobody, self-approval.
	if unverified != 4 || verified != 5 {
		t.Errorf("refusals recorded: %d unverified, %d verified; want 4 and 5", unverified, verified)
	}
}

// TestWebhookWithoutDecisions: the secret of a webhook that only receives
// events authorises nothing.
func TestWebhookWithoutDecisions(t *testing.T) {
	w := newDecidingWorld(t, false)
	g := w.request(w.bot, humanScope, "INC-13")
	st, body, _ := w.decide(map[string]string{"grant_id": g.ID, "decision": "approve", "approver": "alice"}, decideSecret, time.Now())
	if st != 401 || !strings.Contains(body, "notify.webhooks[].decisions") {
		t.Fatalf("decision with a receive-only webhook's secret: %d %s", st, body)
	}
	if got := w.grant(g.ID); got.Status != model.Pending {
		t.Fatalf("grant is %s", got.Status)
	}
}
