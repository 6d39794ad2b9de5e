package notify_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/airlock-dev/airlock/internal/model"
)

// TestSlackResponseURLOnlyToSlack: Airlock posts its replies to a click's
// response_url only on the host of the app's incoming webhook (Slack's).
// It took any https URL (or, with a loopback stand-in, any loopback one),
// so whoever holds the signing secret could have Airlock POST to any
// address it reaches, inside the network included.
func TestSlackResponseURLOnlyToSlack(t *testing.T) {
	f := newFakeSlack(t)
	var elsewhere atomic.Int32
	other := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		elsewhere.Add(1)
	}))
	t.Cleanup(other.Close)
	t.Setenv("TEST_SLACK_WEBHOOK", f.URL+"/incoming")
	t.Setenv("TEST_SLACK_SECRET", signingSecret)
	w := newWorld(t, "notify:\n  slack: {webhook_url_env: TEST_SLACK_WEBHOOK, signing_secret_env: TEST_SLACK_SECRET}\n")

	g := w.request(w.bot, humanScope, "INC-30")
	_, approve, _ := buttons(t, next(t, f.incoming, "request notification"))
	if st, txt := w.clickAs(f, click{user: "U0ALICE", actionID: approve, trigger: "t-1", responseURL: other.URL + "/internal"}); st != http.StatusOK || txt != "" {
		t.Fatalf("approve: %d %q", st, txt)
	}
	if got := w.grant(g.ID); got.Status != model.Active {
		t.Fatalf("grant %s", got.Status)
	}
	// A second click, with Slack's own response URL, is refused (decided
	// already) and answered there; replies go out in order, so one to the
	// other address would have gone first.
	if st, txt := w.clickAs(f, click{user: "U0CAROL", actionID: approve, trigger: "t-2"}); st != http.StatusOK || !strings.Contains(txt, "refused") {
		t.Fatalf("second click: %d %q", st, txt)
	}
	next(t, f.replies, "the refusal's reply")
	if n := elsewhere.Load(); n != 0 {
		t.Fatalf("Airlock posted %d replies to a response_url outside Slack", n)
	}
}
