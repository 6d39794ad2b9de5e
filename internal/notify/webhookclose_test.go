package notify_test

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/clock"
	"github.com/airlock-dev/airlock/internal/notify"
)

// TestWebhookCloseSendsWhatIsQueued: closing the notifier (a shutdown or
// a restart) still sends the events queued, each with one more attempt and
// no backoff, the one waiting for its retry included. Close used to cancel
// at once and drop them, so the last changes before a restart, such as a
// request a deciding receiver was to show, were never sent.
func TestWebhookCloseSendsWhatIsQueued(t *testing.T) {
	w := newWorld(t, "")
	var mu sync.Mutex
	var ids []string
	failFirst := true
	recv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		mu.Lock()
		defer mu.Unlock()
		if failFirst {
			failFirst = false
			rw.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		ids = append(ids, r.Header.Get("X-Airlock-Delivery"))
	}))
	defer recv.Close()
	fake := clock.NewFake(time.Now())
	n, err := notify.New(notify.Options{
		Service: w.srv.Service, Webhooks: []notify.Webhook{{URL: recv.URL + "/hook", Secret: []byte(hookSecret)}},
		Clock: fake, RetryBase: time.Minute, CloseGrace: time.Minute, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	must(t, err)
	defer n.Close()

	g := w.request(w.bot, humanScope, "INC-21")
	// grant.requested failed once and waits for its retry, a minute on the
	// fake clock, which does not move.
	waitFor(t, "the backoff timer", func() bool { return fake.Pending() == 1 })
	if st := w.call("POST", "/v1/grants/"+g.ID+"/approve", w.alice, map[string]string{}, nil); st != 200 {
		t.Fatalf("approve: %d", st)
	}
	n.Close() // grant.approved and grant.activated are queued

	mu.Lock()
	defer mu.Unlock()
	if len(ids) != 3 || ids[0] == ids[1] || ids[1] == ids[2] {
		t.Fatalf("delivered at close: %v, want the three events (requested, approved, activated)", ids)
	}
}
