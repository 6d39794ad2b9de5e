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
	if _, err := h.Svc.Authority().Authenticate(c.AccessKeyID, c.SecretAccessKey); err == nil {
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

// TestSessionEndRetriedWhenLogUnavailable: a session that ends while the
// log cannot be written (its connection broke during a database outage)
// is not stored as ended without its session.ended entry; the end, with
// its true time, is written once the log takes writes again, and the row
// and the log agree.
func TestSessionEndRetriedWhenLogUnavailable(t *testing.T) {
	t.Parallel()
	var fail atomic.Bool
	h := newHarness(t, harnessOptions{Manual: true, LogStore: func(st store.Store) store.Store { return failingStore{st, &fail} }})
	g := h.request(bot, autoReq("10m"), model.Active)
	ses := h.startSession(g, "127.0.0.1:5 psql")
	if err := ses.Request(h.ctx, gateway.Call{Kind: "request", Action: "s3:GetObject", Resource: "arn:aws:s3:::logs/app/x", Allowed: true}); err != nil {
		t.Fatal(err)
	}
	fail.Store(true)
	before := h.fake.Now()
	if err := ses.End(h.ctx); err == nil {
		t.Fatal("the end was recorded while the log was unavailable")
	}
	// The flusher's next round (a second on the service's clock) tries
	// the end again and fails.
	h.fake.Advance(time.Second)
	waitFor(t, "the flusher's failed retry of the end", func() bool {
		return strings.Contains(strings.Join(h.errs.list(), "\n"), "recording a session's end; will retry")
	})
	fail.Store(false)
	var rec model.Session
	waitFor(t, "the session's end recorded after the log recovered", func() bool {
		h.fake.Advance(time.Second) // the flusher's next round
		var err error
		if rec, err = h.St.Session(h.ctx, ses.ID); err != nil {
			t.Fatal(err)
		}
		return !rec.EndedAt.IsZero()
	})
	var ends []store.LogEntry
	for _, e := range h.entries(g.ID) {
		if e.Type == "session.ended" && e.SessionID == ses.ID {
			ends = append(ends, e)
		}
	}
	if len(ends) != 1 || !ends[0].Time.Equal(rec.EndedAt) || !rec.EndedAt.Equal(before) {
		t.Fatalf("row ended at %v; session.ended entries %d (%v); want one, at the end's own time %v", rec.EndedAt, len(ends), ends, before)
	}
	if got := h.session(ses.ID); len(got.LogMismatch) > 0 || got.Calls != 1 {
		t.Errorf("session row and log disagree: %v (calls %d)", got.LogMismatch, got.Calls)
	}
}
