package grants_test

import (
	"bytes"
	"context"
	"math"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/auditlog"
	"github.com/airlock-dev/airlock/internal/gateway"
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

// TestSessionStartIsAJournalAppend: a session's start is durable in the
// journal like a call, not a store transaction of its own, so it neither
// waits for nor holds up the journal's copy into the store. Its row is
// written from the entry when that copy stores it (review.StoreRows), and
// `audit verify` does not take a start still only in the journal for a
// session without a row.
func TestSessionStartIsAJournalAppend(t *testing.T) {
	t.Parallel()
	gs := &gatedStore{}
	h := newHarness(t, harnessOptions{Journal: true, LogStore: func(st store.Store) store.Store { gs.Store = st; return gs }})
	defer h.finish()
	defer gs.open()
	g := h.request(bot, autoReq("10m"), model.Active)
	h.syncLog()

	gs.shut()
	gg, err := h.Svc.Lookup(g.CredentialID)
	if err != nil {
		t.Fatal(err)
	}
	type started struct {
		ses *gateway.Session
		err error
	}
	done := make(chan started, 1)
	go func() {
		ses, err := h.Svc.StartSession(h.ctx, gg, "127.0.0.1:5000 psql")
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
	journaled, err := auditlog.ReadJournal(filepath.Join(h.dir, "journal"), []byte("grants-test-journal-key-32-bytes"), cp)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, e := range journaled {
		found = found || e.Type == "session.started" && e.SessionID == ses.ID
		c.Entry(e.Seq, e.Data)
	}
	if !found {
		t.Fatalf("the session's start is not in the journal (%d entries there)", len(journaled))
	}
	if diffs, err := c.Finish(h.ctx); err != nil || len(diffs) > 0 {
		t.Fatalf("state check with the start only in the journal: %v %q", err, diffs)
	}

	gs.open()
	h.syncLog()
	rec, err := h.St.Session(h.ctx, ses.ID)
	if err != nil {
		t.Fatalf("no row once the start reached the store: %v", err)
	}
	want := model.Session{ID: ses.ID, GrantID: g.ID, Identity: bot, Target: awsProd, Client: "127.0.0.1:5000 psql"}
	if rec.ID != want.ID || rec.GrantID != want.GrantID || rec.Identity != want.Identity || rec.Target != want.Target ||
		rec.Client != want.Client || rec.StartedAt.IsZero() || !rec.EndedAt.IsZero() {
		t.Errorf("row from the start %+v, want %+v", rec, want)
	}
	if err := ses.End(h.ctx); err != nil {
		t.Fatal(err)
	}
	if rec = h.session(ses.ID); rec.EndedAt.IsZero() || !strings.HasPrefix(rec.ID, "s_") {
		t.Errorf("row at the end %+v", rec)
	}
}
