package grants_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/model"
	"github.com/airlock-dev/airlock/internal/store"
)

// failingStore refuses write transactions while fail is set, as a full or
// broken disk would.
type failingStore struct {
	store.Store
	fail *atomic.Bool
}

func (f failingStore) Begin(ctx context.Context) (store.Tx, error) {
	if f.fail.Load() {
		return nil, errors.New("injected: disk unavailable")
	}
	return f.Store.Begin(ctx)
}

// TestExpiryRetriedWhenLogUnavailable: if the expiry cannot be recorded,
// the grant is still cut off at once, and the record is written with the
// true expiry time once the log is writable again.
func TestExpiryRetriedWhenLogUnavailable(t *testing.T) {
	t.Parallel()
	var fail atomic.Bool
	h := newHarness(t, harnessOptions{Manual: true, LogStore: func(st store.Store) store.Store { return failingStore{st, &fail} }})
	g := h.request(bot, autoReq("400ms"), model.Active)
	c := h.creds(bot, g.ID)
	fail.Store(true)
	h.fake.Set(g.ExpiresAt) // the expiry timer runs, and cannot record
	if _, err := h.Svc.Authenticate(c.AccessKeyID, c.SecretAccessKey); err == nil {
		t.Fatal("credentials work after expiry while the log is unavailable")
	}
	rec, err := h.St.Grant(h.ctx, g.ID)
	if err != nil || rec.Status != model.Active {
		t.Fatalf("while the log is down the record should still say active: %v %v", rec.Status, err)
	}
	if !strings.Contains(strings.Join(h.errs.list(), "\n"), "will retry") {
		t.Fatalf("no retry logged: %v", h.errs.list())
	}
	// Still down at the first retry, a second later: it backs off to 2s.
	h.fake.Advance(time.Second)
	if rec, _ = h.St.Grant(h.ctx, g.ID); rec.Status != model.Active {
		t.Fatalf("recorded while the log was down: %s", rec.Status)
	}
	fail.Store(false)
	h.fake.Advance(time.Second)
	if rec, _ = h.St.Grant(h.ctx, g.ID); rec.Status != model.Active {
		t.Fatalf("retried after 1s, want the backoff to have doubled to 2s: %s", rec.Status)
	}
	h.fake.Advance(time.Second)
	rec, err = h.St.Grant(h.ctx, g.ID)
	if err != nil || rec.Status != model.Expired || !rec.EndedAt.Equal(g.ExpiresAt) {
		t.Fatalf("after the log recovered: status %s ended %v (%v), want expired at %v", rec.Status, rec.EndedAt, err, g.ExpiresAt)
	}
}
