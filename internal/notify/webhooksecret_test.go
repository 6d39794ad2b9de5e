package notify_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/model"
)

// TestWebhookSecretOfEventsOnlyDecidesNothing: the secret of a webhook
// that only receives events authorises nothing, even when a webhook that
// may decide has the same secret (one variable for every webhook, or the
// same value in two). Before, the events-only receiver (a log collector,
// say) signed a decision with the secret it verifies events with and
// approved a request as any person it named. Such a configuration is
// refused; if it were not, the decision must be.
func TestWebhookSecretOfEventsOnlyDecidesNothing(t *testing.T) {
	recv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) { io.Copy(io.Discard, r.Body) }))
	t.Cleanup(recv.Close)
	for _, c := range []struct{ name, otherEnv string }{
		{"one variable", "HOOK_DECIDE_SECRET"},
		{"the same value", "HOOK_EVENTS_SECRET"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Setenv("HOOK_DECIDE_SECRET", decideSecret)
			t.Setenv("HOOK_EVENTS_SECRET", decideSecret)
			w, err := openWorld(t, fmt.Sprintf("notify:\n  webhooks:\n"+
				"    - {url: %s/bridge, secret_env: HOOK_DECIDE_SECRET, decisions: true}\n"+
				"    - {url: %s/siem, secret_env: %s}\n", recv.URL, recv.URL, c.otherEnv), "")
			if err != nil {
				if !strings.Contains(err.Error(), "secret") {
					t.Fatalf("refused, but not for the shared secret: %v", err)
				}
				return
			}
			g := w.request(w.bot, humanScope, "INC-21")
			// The events-only receiver signs with the secret it was given.
			st, body, _ := w.decide(map[string]string{"grant_id": g.ID, "decision": "approve", "approver": "alice"}, decideSecret, time.Now())
			if got := w.grant(g.ID); got.Status != model.Pending {
				t.Fatalf("a decision signed with an events-only webhook's secret took effect: %d %s; grant %s approved by %+v", st, body, got.Status, got.Approvals)
			}
		})
	}
}

// TestWebhookSecretOfSlackDecidesNothing: a webhook that may decide must
// not have Slack's signing secret as its own. Slack (and whoever holds
// the app's secret) could then sign webhook decisions, which name any
// person, where its own clicks are taken only from the Slack users mapped
// to people (identities[].slack_user).
func TestWebhookSecretOfSlackDecidesNothing(t *testing.T) {
	recv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) { io.Copy(io.Discard, r.Body) }))
	t.Cleanup(recv.Close)
	t.Setenv("HOOK_DECIDE_SECRET", decideSecret)
	t.Setenv("TEST_SLACK_WEBHOOK", recv.URL+"/incoming")
	t.Setenv("TEST_SLACK_SECRET", decideSecret)
	w, err := openWorld(t, fmt.Sprintf("notify:\n"+
		"  slack: {webhook_url_env: TEST_SLACK_WEBHOOK, signing_secret_env: TEST_SLACK_SECRET}\n"+
		"  webhooks:\n"+
		"    - {url: %s/bridge, secret_env: HOOK_DECIDE_SECRET, decisions: true}\n", recv.URL), "")
	if err != nil {
		if !strings.Contains(err.Error(), "Slack") {
			t.Fatalf("refused, but not for the shared secret: %v", err)
		}
		return
	}
	g := w.request(w.bot, humanScope, "INC-22")
	st, body, _ := w.decide(map[string]string{"grant_id": g.ID, "decision": "approve", "approver": "alice"}, decideSecret, time.Now())
	if got := w.grant(g.ID); got.Status != model.Pending {
		t.Fatalf("a decision signed with Slack's signing secret took effect: %d %s; grant %s approved by %+v", st, body, got.Status, got.Approvals)
	}
}

// TestSlackSecretOfEventsWebhookDecidesNothing: no webhook, not even one
// that only receives events, may have Slack's signing secret as its own.
// Its receiver (a log collector, say) holds the secret it verifies events
// with, and with Slack's it signs a click as any mapped Slack user and
// approves as that person: only a webhook that may decide was refused
// Slack's secret, although an events-only webhook's secret must
// authorise nothing.
func TestSlackSecretOfEventsWebhookDecidesNothing(t *testing.T) {
	f := newFakeSlack(t)
	recv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) { io.Copy(io.Discard, r.Body) }))
	t.Cleanup(recv.Close)
	t.Setenv("TEST_SLACK_WEBHOOK", f.URL+"/incoming")
	t.Setenv("TEST_SLACK_SECRET", signingSecret)
	t.Setenv("HOOK_EVENTS_SECRET", signingSecret)
	w, err := openWorld(t, fmt.Sprintf("notify:\n"+
		"  slack: {webhook_url_env: TEST_SLACK_WEBHOOK, signing_secret_env: TEST_SLACK_SECRET}\n"+
		"  webhooks:\n"+
		"    - {url: %s/siem, secret_env: HOOK_EVENTS_SECRET}\n", recv.URL), "")
	if err != nil {
		if !strings.Contains(err.Error(), "Slack") || strings.Contains(err.Error(), signingSecret) {
			t.Fatalf("refused, but not for the shared secret (or naming it): %v", err)
		}
		return
	}
	g := w.request(w.bot, humanScope, "INC-24")
	// The events receiver signs a click as alice with the secret it holds.
	st, txt := w.clickAs(f, click{user: "U0ALICE", actionID: "airlock_approve:" + g.ID, trigger: "t-siem"})
	if got := w.grant(g.ID); got.Status != model.Pending {
		t.Fatalf("a click signed with an events-only webhook's secret took effect: %d %q; grant %s approved by %+v", st, txt, got.Status, got.Approvals)
	}
}
