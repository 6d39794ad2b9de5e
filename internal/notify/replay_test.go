package notify_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestWebhookReplayVariantsRefused: a captured signed decision sent again
// with the same signature written differently (upper-case hex, a "+" or
// leading zeros in the timestamp, all of which verify) is still a replay.
func TestWebhookReplayVariantsRefused(t *testing.T) {
	w := newDecidingWorld(t, true)
	now := time.Now()
	// A grant that does not exist: the first delivery is handled (404),
	// and must not be handled again in any spelling.
	b, _ := json.Marshal(map[string]string{"grant_id": "g_nosuchgrant1", "decision": "approve", "approver": "alice"})
	st, body, sig := w.decide(json.RawMessage(b), decideSecret, now)
	if st != http.StatusNotFound {
		t.Fatalf("first delivery: %d %s", st, body)
	}
	ts, hexSig, ok := strings.Cut(strings.TrimPrefix(sig, "t="), ",v1=")
	if !ok {
		t.Fatalf("signature %q", sig)
	}
	for _, v := range []string{
		"t=" + ts + ",v1=" + strings.ToUpper(hexSig),
		"t=+" + ts + ",v1=" + hexSig,
		"t=0" + ts + ",v1=" + hexSig,
	} {
		if st, body, _ := w.postDecision(b, v); st != http.StatusUnauthorized || !strings.Contains(body, "already handled") {
			t.Errorf("replay as %q: %d %s, want 401 already handled", v, st, body)
		}
	}
}

// TestSlackReplayVariantsRefused: the same for Slack's signature, whose
// hex is read in either case. (A click without a trigger id has only the
// signature to tell a replay.)
func TestSlackReplayVariantsRefused(t *testing.T) {
	f := newFakeSlack(t)
	t.Setenv("TEST_SLACK_WEBHOOK", f.URL+"/incoming")
	t.Setenv("TEST_SLACK_SECRET", signingSecret)
	w := newWorld(t, "notify:\n  slack: {webhook_url_env: TEST_SLACK_WEBHOOK, signing_secret_env: TEST_SLACK_SECRET, channel: \"#access\"}\n")
	ts := time.Now().Unix()
	body := f.body(click{user: "U0NOBODY", actionID: "airlock_approve:g_nosuchgrant1", forged: true})
	sig := sign(signingSecret, ts, body)
	if st, txt := w.post(body, ts, sig); st != http.StatusOK || !strings.Contains(txt, "not mapped") {
		t.Fatalf("first delivery: %d %q", st, txt)
	}
	upper := "v0=" + strings.ToUpper(strings.TrimPrefix(sig, "v0="))
	if st, txt := w.post(body, ts, upper); st != http.StatusUnauthorized || !strings.Contains(txt, "already handled") {
		t.Errorf("replay with upper-case hex: %d %q, want 401 already handled", st, txt)
	}
}
