package notify_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/clock"
	"github.com/airlock-dev/airlock/internal/model"
	"github.com/airlock-dev/airlock/internal/notify"
)

const hookSecret = "whsec-test-0123456789"

// received is one delivery as the receiver saw it.
type received struct {
	body   []byte
	sig    string
	id     string
	event  string
	status int
}

// verifySig checks an X-Airlock-Signature the way a receiver would.
func verifySig(secret string, body []byte, header string, now time.Time) bool {
	var ts, v1 string
	for _, part := range strings.Split(header, ",") {
		k, v, _ := strings.Cut(part, "=")
		switch k {
		case "t":
			ts = v
		case "v1":
			v1 = v
		}
	}
	t, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || now.Sub(time.Unix(t, 0)).Abs() > 5*time.Minute {
		return false
	}
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(ts + "."))
	m.Write(body)
	want := m.Sum(nil)
	got, err := hex.DecodeString(v1)
	return err == nil && hmac.Equal(got, want)
}

// TestWebhookSignedAndRetried: every lifecycle change reaches the webhook
// as a signed event; a 500 is retried after the backoff (on the injected
// clock) with the same delivery id and a fresh, valid signature.
func TestWebhookSignedAndRetried(t *testing.T) {
	w := newWorld(t, "")
	var mu sync.Mutex
	var got []received
	failFirst := true
	recv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		rc := received{body: b, sig: r.Header.Get(notify.SignatureHeader), id: r.Header.Get("X-Airlock-Delivery"), event: r.Header.Get("X-Airlock-Event"), status: 200}
		if failFirst {
			failFirst = false
			rc.status = http.StatusInternalServerError
		}
		got = append(got, rc)
		rw.WriteHeader(rc.status)
	}))
	defer recv.Close()
	t0 := time.Now()
	fake := clock.NewFake(t0)
	n, err := notify.New(notify.Options{
		Service: w.srv.Service, Webhooks: []notify.Webhook{{URL: recv.URL + "/hook", Secret: []byte(hookSecret)}},
		Clock: fake, RetryBase: 2 * time.Second, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	must(t, err)
	defer n.Close()

	g := w.request(w.bot, humanScope, "INC-9")
	// The first delivery fails with 500; the sender then waits its backoff
	// on the fake clock, and nothing is retried before the clock moves.
	waitFor(t, "the backoff timer", func() bool { return fake.Pending() == 1 })
	mu.Lock()
	if len(got) != 1 || got[0].status != 500 {
		t.Fatalf("before the backoff: %d deliveries", len(got))
	}
	mu.Unlock()
	fake.Advance(2 * time.Second)
	waitFor(t, "the retry", func() bool { mu.Lock(); defer mu.Unlock(); return len(got) == 2 })

	if st := w.call("POST", "/v1/grants/"+g.ID+"/approve", w.alice, map[string]string{"comment": "ok"}, nil); st != 200 {
		t.Fatalf("approve: %d", st)
	}
	if st := w.call("POST", "/v1/grants/"+g.ID+"/revoke", w.alice, map[string]string{"reason": "done"}, nil); st != 200 {
		t.Fatalf("revoke: %d", st)
	}
	waitFor(t, "all deliveries", func() bool { mu.Lock(); defer mu.Unlock(); return len(got) == 5 })

	mu.Lock()
	defer mu.Unlock()
	if got[0].id != got[1].id || got[0].id == "" || string(got[0].body) != string(got[1].body) {
		t.Errorf("the retry is not the same delivery: %q %q", got[0].id, got[1].id)
	}
	if got[0].sig == got[1].sig {
		t.Errorf("the retry reused the first attempt's signature timestamp")
	}
	var types []string
	for i, rc := range got {
		if !verifySig(hookSecret, rc.body, rc.sig, fake.Now()) {
			t.Errorf("delivery %d: signature %q does not verify", i, rc.sig)
		}
		if verifySig("another secret", rc.body, rc.sig, fake.Now()) {
			t.Errorf("delivery %d verifies under any secret", i)
		}
		var ev notify.Event
		must(t, json.Unmarshal(rc.body, &ev))
		if ev.Grant.ID != g.ID || ev.Type != rc.event || ev.ID != rc.id {
			t.Errorf("delivery %d: event %+v headers %q %q", i, ev, rc.event, rc.id)
		}
		if i > 0 {
			types = append(types, ev.Type)
		}
		if strings.Contains(string(rc.body), "credential") {
			t.Errorf("delivery %d carries credential fields: %s", i, rc.body)
		}
	}
	want := []string{"grant.requested", "grant.approved", "grant.activated", "grant.revoked"}
	if strings.Join(types, " ") != strings.Join(want, " ") {
		t.Errorf("events %v, want %v", types, want)
	}
	var last notify.Event
	must(t, json.Unmarshal(got[4].body, &last))
	if last.Grant.Status != string(model.Revoked) || last.Actor != "alice" || last.Grant.Reason != "INC-9" || len(last.Grant.Approvals) != 1 {
		t.Errorf("revoked event %+v", last)
	}
}

// TestWebhookNeverDelaysRequest: a webhook that never answers does not
// delay requests, approvals or anything else on the lifecycle, even once
// its queue is full.
func TestWebhookNeverDelaysRequest(t *testing.T) {
	w := newWorld(t, "")
	release := make(chan struct{})
	arrived := make(chan struct{}, 100)
	recv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		<-release
	}))
	defer recv.Close()
	defer close(release)
	n, err := notify.New(notify.Options{
		Service: w.srv.Service, Webhooks: []notify.Webhook{{URL: recv.URL, Secret: []byte(hookSecret)}},
		QueueSize: 2, CloseGrace: 200 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	must(t, err)
	defer n.Close()

	// The lifecycle runs in its own goroutine so that, were deliveries on
	// its path, this test would fail at the deadline rather than hang.
	done := make(chan model.Grant, 1)
	go func() {
		first := w.request(w.bot, humanScope, "one")
		<-arrived // the delivery is in flight and hangs
		// Far more changes than the queue holds, while the first delivery hangs.
		for i := range 5 {
			g := w.request(w.bot, humanScope, "more "+strconv.Itoa(i))
			if st := w.call("POST", "/v1/grants/"+g.ID+"/deny", w.alice, map[string]string{"reason": "no"}, nil); st != 200 {
				t.Errorf("deny: %d", st)
			}
		}
		if st := w.call("POST", "/v1/grants/"+first.ID+"/approve", w.alice, map[string]string{}, nil); st != 200 {
			t.Errorf("approve: %d", st)
		}
		done <- first
	}()
	var first model.Grant
	select {
	case first = <-done:
	case <-time.After(5 * time.Second):
		// Each call would wait for the hanging receiver if delivery were
		// on the lifecycle's path; together they take milliseconds.
		t.Fatal("the lifecycle was held up by a hanging webhook")
	}
	if g := w.grant(first.ID); g.Status != model.Active {
		t.Errorf("status %s", g.Status)
	}
	// Nor does it hold up a shutdown past Close's grace.
	closed := make(chan struct{})
	go func() { n.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("Close waited past its grace for a receiver that never answers")
	}
}

// waitFor polls cond (bounded) for what a background goroutine does.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(2 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}
