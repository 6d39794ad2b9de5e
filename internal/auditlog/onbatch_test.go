package auditlog

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/store"
)

// batchRecorder collects what Options.OnBatch reports.
type batchRecorder struct {
	mu      sync.Mutex
	ops     int
	waits   []time.Duration
	batches int
	failed  int
	write   time.Duration
}

func (b *batchRecorder) observe(s BatchStats) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.batches++
	b.ops += s.Ops
	b.waits = append(b.waits, s.Waits...) // Waits is only valid during the call
	b.write += s.Write
	if s.Failed {
		b.failed++
	}
}

func (b *batchRecorder) snapshot() (ops, waits, batches, failed int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.ops, len(b.waits), b.batches, b.failed
}

// OnBatch sees every call of every batch, through the journal and through
// a store transaction, with a wait for each call but a lazy append's, and
// the batches that failed.
func TestOnBatchReportsEveryCall(t *testing.T) {
	f := newJournalFixture(t)
	var rec batchRecorder
	o := f.opts()
	o.OnBatch = rec.observe
	l := f.mustOpen(t, o)
	ctx := context.Background()
	if err := l.Append(ctx, events(2, "a")...); err != nil {
		t.Fatal(err)
	}
	if err := l.AppendAsync(ctx, events(1, "b")...).Wait(ctx); err != nil {
		t.Fatal(err)
	}
	if err := l.AppendLazy(ctx, events(1, "c")...); err != nil {
		t.Fatal(err)
	}
	if err := l.Do(ctx, func(context.Context, store.Tx) ([]Event, error) { return events(1, "d"), nil }); err != nil {
		t.Fatal(err)
	}
	ops, waits, batches, failed := rec.snapshot()
	if ops != 4 || waits != 3 || batches < 3 || failed != 0 {
		t.Fatalf("OnBatch saw %d calls, %d waits, %d batches, %d failed; want 4 calls, 3 waits (not the lazy append's), 3 or 4 batches, none failed", ops, waits, batches, failed)
	}
	rec.mu.Lock()
	for i, w := range rec.waits {
		if w <= 0 || w > time.Minute {
			t.Errorf("wait %d is %v", i, w)
		}
	}
	if rec.write <= 0 {
		t.Errorf("batches' write time %v", rec.write)
	}
	rec.mu.Unlock()

	l.jr.cur.f.Close() // every write and sync to it now fails
	if err := l.Append(ctx, events(1, "lost")...); err == nil {
		t.Fatal("append succeeded with a broken journal")
	}
	ops, waits, _, failed = rec.snapshot()
	if ops != 5 || waits != 4 || failed != 1 {
		t.Fatalf("after a failed batch OnBatch saw %d calls, %d waits, %d failed; want 5, 4, 1", ops, waits, failed)
	}
}

// Without a journal (every batch a store transaction, as with a shared
// PostgreSQL store) the same figures come.
func TestOnBatchWithoutJournal(t *testing.T) {
	f := newJournalFixture(t)
	var rec batchRecorder
	o := Options{Origin: "airlock/test", OnBatch: rec.observe}
	l := f.mustOpen(t, o)
	ctx := context.Background()
	for i := range 3 {
		if err := l.Append(ctx, events(1, "x")...); err != nil {
			t.Fatalf("append %d: %v", i, err)
		}
	}
	ops, waits, batches, failed := rec.snapshot()
	if ops != 3 || waits != 3 || batches != 3 || failed != 0 {
		t.Fatalf("OnBatch saw %d calls, %d waits, %d batches, %d failed; want 3, 3, 3, 0", ops, waits, batches, failed)
	}
}
