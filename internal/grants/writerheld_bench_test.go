package grants_test

import (
	"context"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/clock"
	"github.com/airlock-dev/airlock/internal/grants"
	"github.com/airlock-dev/airlock/internal/model"
	"github.com/airlock-dev/airlock/internal/store"
	"github.com/airlock-dev/airlock/internal/store/pgstore"
)

// heldCount adds up how long the log's write transactions stay open,
// begun to committed or rolled back (held), and counts them (txs): the
// time the log's writer is held, every gateway's records waiting.
type heldCount struct {
	read, held, txs *atomic.Int64
}

func newHeldCount() heldCount {
	return heldCount{new(atomic.Int64), new(atomic.Int64), new(atomic.Int64)}
}

func (c heldCount) reset() {
	c.read.Store(0)
	c.held.Store(0)
	c.txs.Store(0)
}

// txHold is one transaction's share of a heldCount.
type txHold struct {
	start time.Time
	held  *atomic.Int64
	done  bool
}

func (h *txHold) end() {
	if !h.done {
		h.done = true
		h.held.Add(int64(time.Since(h.start)))
	}
}

// writerHeldStore is a sessionCountingStore (SQLite) whose transactions'
// hold is counted too.
type writerHeldStore struct {
	sessionCountingStore
	c heldCount
}

func (s writerHeldStore) Begin(ctx context.Context) (store.Tx, error) {
	h := txHold{start: time.Now(), held: s.c.held}
	tx, err := s.sessionCountingStore.Begin(ctx)
	if err != nil {
		return nil, err
	}
	s.c.txs.Add(1)
	return &writerHeldTx{sessionCountingTx: tx.(sessionCountingTx), txHold: h}, nil
}

type writerHeldTx struct {
	sessionCountingTx
	txHold
}

func (t *writerHeldTx) Commit() error   { defer t.end(); return t.sessionCountingTx.Commit() }
func (t *writerHeldTx) Rollback() error { defer t.end(); return t.sessionCountingTx.Rollback() }

// pgHeldStore is writerHeldStore for pgstore: its transaction embeds
// pgstore's own, so that every optional method the shared log and the
// grants use (the shared log's head, the entries and checkpoint in one
// statement, the notices, the database's clock) is still there.
type pgHeldStore struct {
	*pgstore.Store
	c heldCount
}

func (s pgHeldStore) Begin(ctx context.Context) (store.Tx, error) {
	h := txHold{start: time.Now(), held: s.c.held}
	tx, err := s.Store.Begin(ctx)
	if err != nil {
		return nil, err
	}
	s.c.txs.Add(1)
	return &pgHeldTx{Tx: tx.(*pgstore.Tx), txHold: h, read: s.c.read}, nil
}

type pgHeldTx struct {
	*pgstore.Tx
	txHold
	read *atomic.Int64
}

func (t *pgHeldTx) Commit() error   { defer t.end(); return t.Tx.Commit() }
func (t *pgHeldTx) Rollback() error { defer t.end(); return t.Tx.Rollback() }
func (t *pgHeldTx) CommitLogCheckpoint(entries []store.LogEntry, c store.Checkpoint) error {
	defer t.end()
	return t.Tx.CommitLogCheckpoint(entries, c)
}

func (t *pgHeldTx) Grant(ctx context.Context, id string) (model.Grant, error) {
	g, err := t.Tx.Grant(ctx, id)
	t.read.Add(g.Usage.Sessions)
	return g, err
}

func (t *pgHeldTx) GrantByCredential(ctx context.Context, credentialID string) (model.Grant, error) {
	g, err := t.Tx.GrantByCredential(ctx, credentialID)
	t.read.Add(g.Usage.Sessions)
	return g, err
}

func (t *pgHeldTx) OpenGrants(ctx context.Context) ([]model.Grant, error) {
	gs, err := t.Tx.OpenGrants(ctx)
	for _, g := range gs {
		t.read.Add(g.Usage.Sessions)
	}
	return gs, err
}

// revokeHeld runs b.N revokes, each of a fresh active grant of n sessions,
// through svc (whose log's store counts into c; st is the store the
// sessions are written to, at now), and reports how long the log's writer
// was held for each: the median (writer-ns/op) and the least
// (writer-min-ns), less moved than the mean by a busy host's stalls, with
// the transactions (txs/op) and the session rows read in them (rows/op).
// ns/op is the whole revoke, the reads outside the writer included; the
// sessions are written outside the timer.
func revokeHeld(b *testing.B, ctx context.Context, svc *grants.Service, st store.Store, now func() time.Time, holder, person model.Identity, n int, c heldCount) {
	var heldEach []int64
	var txs, read int64
	for i := range b.N {
		b.StopTimer()
		g, err := svc.Request(ctx, holder, autoReq("15m"))
		if err != nil || g.Status != model.Active {
			b.Fatalf("request: %v, %v", g.Status, err)
		}
		putSessions(b, ctx, st, g.ID, fmt.Sprintf("s_%d", i), n, now())
		c.reset()
		b.StartTimer()
		out, err := svc.Revoke(ctx, person, g.ID, "suspicious")
		b.StopTimer()
		if err != nil || out.Usage.Sessions != int64(n) {
			b.Fatalf("revoke: %v (usage %d sessions, want %d)", err, out.Usage.Sessions, n)
		}
		heldEach = append(heldEach, c.held.Load())
		txs += c.txs.Load()
		read += c.read.Load()
		b.StartTimer()
	}
	slices.Sort(heldEach)
	b.ReportMetric(float64(heldEach[len(heldEach)/2]), "writer-ns/op")
	b.ReportMetric(float64(heldEach[0]), "writer-min-ns")
	b.ReportMetric(float64(txs)/float64(b.N), "txs/op")
	b.ReportMetric(float64(read)/float64(b.N), "rows/op")
}

// BenchmarkRevokeWriterHeld: how long a revoke of an active grant of n
// sessions holds the log's writer, on SQLite (see revokeHeld). See
// bench/HISTORY.md, "A grant's transitions read no sessions in the log's
// writer".
func BenchmarkRevokeWriterHeld(b *testing.B) {
	for _, n := range []int{2000, 20000} {
		b.Run(fmt.Sprintf("sessions=%d", n), func(b *testing.B) {
			c := newHeldCount()
			h := newHarness(b, harnessOptions{Manual: true, LogStore: func(st store.Store) store.Store {
				return writerHeldStore{sessionCountingStore{st, c.read}, c}
			}})
			revokeHeld(b, h.ctx, h.Svc, h.St, h.fake.Now, h.id(bot), h.id(alice), n, c)
		})
	}
}

// BenchmarkRevokeWriterHeldPG is BenchmarkRevokeWriterHeld on PostgreSQL
// (AIRLOCK_TEST_PG_DSN), one replica of a shared log.
func BenchmarkRevokeWriterHeldPG(b *testing.B) {
	for _, n := range []int{2000, 20000} {
		b.Run(fmt.Sprintf("sessions=%d", n), func(b *testing.B) {
			c := newHeldCount()
			fake := clock.NewFake(time.Now())
			rs := newReplicaSet(b, 1, fake)
			rs.logStore = func(st store.Store) store.Store { return pgHeldStore{st.(*pgstore.Store), c} }
			r := rs.restart(0, fake)
			revokeHeld(b, rs.ctx, r.svc, r.st, fake.Now, r.id(b, bot), r.id(b, alice), n, c)
		})
	}
}
