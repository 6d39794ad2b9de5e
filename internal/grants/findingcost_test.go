package grants_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/model"
	"github.com/airlock-dev/airlock/internal/store"
)

// sessionCountingStore counts the session rows that the log's write
// transactions read to sum grants' usage: the Usage.Sessions of every
// grant that Grant, GrantByCredential and OpenGrants answer with. The
// read that needs no usage (store.GrantStatusTx) is passed on to the
// store's own, or, where it has none, answered through Grant and counted
// as such.
type sessionCountingStore struct {
	store.Store
	read *atomic.Int64
}

func (s sessionCountingStore) Begin(ctx context.Context) (store.Tx, error) {
	tx, err := s.Store.Begin(ctx)
	if err != nil {
		return nil, err
	}
	return sessionCountingTx{Tx: tx, read: s.read}, nil
}

type sessionCountingTx struct {
	store.Tx
	read *atomic.Int64
}

func (t sessionCountingTx) Grant(ctx context.Context, id string) (model.Grant, error) {
	g, err := t.Tx.Grant(ctx, id)
	t.read.Add(int64(g.Usage.Sessions))
	return g, err
}

func (t sessionCountingTx) GrantByCredential(ctx context.Context, credentialID string) (model.Grant, error) {
	g, err := t.Tx.GrantByCredential(ctx, credentialID)
	t.read.Add(int64(g.Usage.Sessions))
	return g, err
}

func (t sessionCountingTx) OpenGrants(ctx context.Context) ([]model.Grant, error) {
	gs, err := t.Tx.OpenGrants(ctx)
	for _, g := range gs {
		t.read.Add(int64(g.Usage.Sessions))
	}
	return gs, err
}

func (t sessionCountingTx) GrantStatus(ctx context.Context, id string) (model.GrantStatus, error) {
	if gs, ok := t.Tx.(store.GrantStatusTx); ok {
		return gs.GrantStatus(ctx, id)
	}
	g, err := t.Grant(ctx, id)
	return g.Status, err
}

// sessionsHarness is a harness whose log's store counts the session rows
// the log's write transactions read (in read), with an active grant of
// bot's, requested from 10.0.0.1, that has n sessions already.
func sessionsHarness(t *testing.T, n int) (*harness, model.Grant, *atomic.Int64) {
	t.Helper()
	read := new(atomic.Int64)
	h := newHarness(t, harnessOptions{Manual: true, FindingsWindow: 10 * time.Minute,
		LogStore: func(st store.Store) store.Store { return sessionCountingStore{st, read} }})
	g, err := h.Svc.Request(h.ctx, h.botFrom("10.0.0.1"), autoReq("15m"))
	if err != nil || g.Status != model.Active {
		t.Fatalf("request: %v, %v", g.Status, err)
	}
	tx, err := h.St.Begin(h.ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		s := model.Session{ID: fmt.Sprintf("s_before_%d", i), GrantID: g.ID, StartedAt: h.fake.Now(), Calls: 1,
			Used: []string{fmt.Sprintf("s3:GetObject arn:aws:s3:::logs/%d", i)}}
		if err := tx.PutSession(h.ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	read.Store(0)
	return h, g, read
}

// Issuing a grant's credentials checks in the log's writer that the grant
// is still active (appendWhileActive) by its status alone, on SQLite too:
// its write transaction had no store.GrantStatusTx, so the check read the
// grant with its usage, summed over every session of the grant (2,000 rows
// here), in the writer that every gateway's records wait on. So did the
// shared log's check before a gateway record (auditlog's checkLive).
func TestCredentialsReadNoSessionsInTheWriter(t *testing.T) {
	h, g, read := sessionsHarness(t, 2000)
	h.creds(bot, g.ID)
	if n := read.Load(); n != 0 {
		t.Errorf("issuing credentials read %d session rows in the log's writer, want 0", n)
	}
}
