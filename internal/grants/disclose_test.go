package grants_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/gateway"
	"github.com/airlock-dev/airlock/internal/model"
	"github.com/airlock-dev/airlock/internal/store"
)

// heldStore holds write transactions at Begin while stall is set (a
// disk whose write has not returned), and fails them while fail is set.
type heldStore struct {
	store.Store
	stall, fail *atomic.Bool
	entered     chan struct{} // a transaction reached Begin while stalled
	release     chan struct{}
}

func (s heldStore) Begin(ctx context.Context) (store.Tx, error) {
	if s.stall.Load() {
		select {
		case s.entered <- struct{}{}:
		default:
		}
		<-s.release
	}
	if s.fail.Load() {
		return nil, errors.New("injected: disk unavailable")
	}
	return s.Store.Begin(ctx)
}

// TestRequestAsyncDurableBeforeDisclosure: through the real control plane
// and log, a read's Pending says durable only once its entry is committed,
// and a failed commit fails it and leaves the call out of the log and the
// session's summary.
func TestRequestAsyncDurableBeforeDisclosure(t *testing.T) {
	t.Parallel()
	var stall, fail atomic.Bool
	ss := heldStore{stall: &stall, fail: &fail, entered: make(chan struct{}, 1), release: make(chan struct{})}
	h := newHarness(t, harnessOptions{LogStore: func(st store.Store) store.Store { ss.Store = st; return ss }})
	g := h.request(bot, autoReq("10m"), model.Active)
	c := h.creds(bot, g.ID)
	gg, err := h.Svc.Authority().Authenticate(c.AccessKeyID, c.SecretAccessKey)
	if err != nil {
		t.Fatal(err)
	}
	ses, err := h.Svc.Authority().StartSession(h.ctx, gg, "127.0.0.1:50000 test")
	if err != nil {
		t.Fatal(err)
	}
	call := gateway.Call{Action: "s3:GetObject", Resource: appObj, Allowed: true, Params: map[string]string{"request_id": "R1"}}

	stall.Store(true)
	p := ses.RequestAsync(h.ctx, call)
	done := make(chan error, 1)
	go func() { done <- p.Wait(context.Background()) }()
	select {
	case <-ss.entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the log's writer never began its transaction")
	}
	select {
	case err := <-done:
		t.Fatalf("Wait returned (%v) while the entry's commit was stalled", err)
	case <-time.After(100 * time.Millisecond):
	}
	stall.Store(false)
	close(ss.release)
	if err := <-done; err != nil {
		t.Fatalf("Wait after the commit: %v", err)
	}
	if !logHas(h, g.ID, `"request_id":"R1"`) {
		t.Fatal("Wait said durable, but the entry is not in the log")
	}

	fail.Store(true)
	call.Params = map[string]string{"request_id": "R2"}
	if err := ses.RequestAsync(h.ctx, call).Wait(h.ctx); err == nil {
		t.Fatal("Wait succeeded while the log could not commit")
	}
	fail.Store(false)
	if logHas(h, g.ID, `"request_id":"R2"`) {
		t.Fatal("a failed record is in the log")
	}
	if rec := h.session(ses.ID); rec.Calls != 1 {
		t.Fatalf("the session counts %d calls, want only the durable one", rec.Calls)
	}
}

func logHas(h *harness, grantID, s string) bool {
	for _, e := range h.entries(grantID) {
		if strings.Contains(string(e.Data), s) {
			return true
		}
	}
	return false
}
