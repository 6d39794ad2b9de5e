package grants_test

import (
	"bytes"
	"context"
	"math"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/auditlog"
	"github.com/airlock-dev/airlock/internal/gateway"
	"github.com/airlock-dev/airlock/internal/gateway/gatewaytest"
	"github.com/airlock-dev/airlock/internal/model"
	"github.com/airlock-dev/airlock/internal/review"
	"github.com/airlock-dev/airlock/internal/store"
)

// gatedStore holds the audit log's write transactions (its journal's copy
// into the store, Do batches) while the gate is shut.
type gatedStore struct {
	store.Store
	mu   sync.Mutex
	gate chan struct{} // nil while open
}

func (g *gatedStore) shut() {
	g.mu.Lock()
	g.gate = make(chan struct{})
	g.mu.Unlock()
}

func (g *gatedStore) open() {
	g.mu.Lock()
	if g.gate != nil {
		close(g.gate)
		g.gate = nil
	}
	g.mu.Unlock()
}

func (g *gatedStore) Begin(ctx context.Context) (store.Tx, error) {
	g.mu.Lock()
	gate := g.gate
	g.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return g.Store.Begin(ctx)
}

// TestSessionStartAndEndAreJournalAppends: a session's start and end are
// durable in the journal like its calls, not store transactions of their
// own, so they neither wait for nor hold up the journal's copy into the
// store. The row is written from the entries when that copy stores them
// (review.StoreRows), and `audit verify` does not take a start or an end
// still only in the journal for a row missing or behind.
func TestSessionStartAndEndAreJournalAppends(t *testing.T) {
	t.Parallel()
	gs := &gatedStore{}
	h := newHarness(t, harnessOptions{Journal: true, LogStore: func(st store.Store) store.Store { gs.Store = st; return gs }})
	defer h.finish()
	defer gs.open()
	g := h.request(bot, autoReq("10m"), model.Active)
	h.syncLog()

	gs.shut()
	gg, err := h.Svc.Authority().Lookup(g.CredentialID)
	if err != nil {
		t.Fatal(err)
	}
	type started struct {
		ses *gateway.Session
		err error
	}
	done := make(chan started, 1)
	go func() {
		ses, err := h.Svc.Authority().StartSession(h.ctx, gg, "127.0.0.1:5000 psql")
		done <- started{ses, err}
	}()
	var ses *gateway.Session
	select {
	case r := <-done:
		if r.err != nil {
			t.Fatal(r.err)
		}
		ses = r.ses
	case <-time.After(5 * time.Second):
		gs.open()
		<-done
		t.Fatal("StartSession waited for the store to take a transaction: is the start not a journal append?")
	}

	// The start is in the journal only; the store has neither it nor its
	// row, and the state check over the store and the journal (as `audit
	// verify` of a crashed server's directory reads them) finds nothing
	// wrong.
	if _, err := h.St.Session(h.ctx, ses.ID); err == nil {
		t.Fatal("the session has a row before its start reached the store")
	}
	h.checkWithJournal(ses.ID, "session.started")

	// The start reaches the store; then the calls and the end go to the
	// journal only, so the row is open while the journal says ended.
	gs.open()
	h.syncLog()
	if _, err := h.St.Session(h.ctx, ses.ID); err != nil {
		t.Fatalf("no row once the start reached the store: %v", err)
	}
	gs.shut()
	calls := []gateway.Call{
		{Kind: "request", Action: "s3:GetObject", Resource: appObj, Allowed: true},
		{Kind: "result", Action: "s3:GetObject", Resource: appObj, Allowed: true, Status: "200", BytesOut: 2048},
		{Kind: "request", Action: "s3:GetObject", Resource: billObj, Allowed: false, Status: "AccessDenied"},
	}
	ended := make(chan error, 1)
	go func() {
		for _, c := range calls {
			if err := gatewaytest.Record(h.ctx, ses, c); err != nil {
				ended <- err
				return
			}
		}
		ended <- ses.End(h.ctx)
	}()
	select {
	case err := <-ended:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		gs.open()
		<-ended
		t.Fatal("the session's end waited for the store to take a transaction: is the end not a journal append?")
	}
	h.checkWithJournal(ses.ID, "session.ended")

	gs.open()
	h.syncLog()
	rec, err := h.St.Session(h.ctx, ses.ID)
	if err != nil {
		t.Fatal(err)
	}
	want := model.Session{ID: ses.ID, GrantID: g.ID, Identity: bot, Target: awsProd, Client: "127.0.0.1:5000 psql",
		Calls: 1, Denied: 1, BytesOut: 2048, Used: []string{"s3:GetObject " + appObj}}
	if rec.ID != want.ID || rec.GrantID != want.GrantID || rec.Identity != want.Identity || rec.Target != want.Target ||
		rec.Client != want.Client || rec.StartedAt.IsZero() || rec.EndedAt.Before(rec.StartedAt) ||
		rec.Calls != want.Calls || rec.Denied != want.Denied || rec.BytesOut != want.BytesOut || !slices.Equal(rec.Used, want.Used) {
		t.Errorf("row from the start and end entries %+v, want %+v", rec, want)
	}
	if got := h.session(ses.ID); !got.EndedAt.Equal(rec.EndedAt) {
		t.Errorf("the service reads the end %v, the row says %v", got.EndedAt, rec.EndedAt)
	}
}

// checkWithJournal runs the state check over the store's log and the
// entries only in the journal, as `audit verify --data-dir` of a crashed
// server does, and fails on any difference; the journal must hold the
// session's entry of type typ.
func (h *harness) checkWithJournal(sid, typ string) {
	h.t.Helper()
	t := h.t
	c := review.NewChecker(h.St)
	if err := h.St.ScanLog(h.ctx, 0, math.MaxInt64, func(e store.LogEntry) error {
		c.Entry(e.Seq, bytes.Clone(e.Data))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	cp, err := h.St.LatestCheckpoint(h.ctx)
	if err != nil {
		t.Fatal(err)
	}
	journaled, err := auditlog.ReadJournal(filepath.Join(h.dir, "journal"), auditlog.JournalKeys{Seal: []byte("grants-test-journal-key-32-bytes")}, cp)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, e := range journaled {
		found = found || e.Type == typ && e.SessionID == sid
		c.Entry(e.Seq, e.Data)
	}
	if !found {
		t.Fatalf("the session's %s is not in the journal (%d entries there)", typ, len(journaled))
	}
	if diffs, err := c.Finish(h.ctx); err != nil || len(diffs) > 0 {
		t.Fatalf("state check with the %s only in the journal: %v %q", typ, err, diffs)
	}
}
