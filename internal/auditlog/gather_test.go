package auditlog

import (
	"context"
	"path/filepath"
	"runtime/metrics"
	"sync/atomic"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/clock"
)

// gatherFixture is a journaled log on a fake clock, with its batches
// counted.
type gatherFixture struct {
	l       *Log
	clk     *clock.Fake
	batches atomic.Int64
}

func newGatherFixture(t *testing.T, delay time.Duration, maxBatch int) *gatherFixture {
	t.Helper()
	dir := t.TempDir()
	f := &gatherFixture{clk: clock.NewFake(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))}
	s, _ := testKey(t)
	f.l = openLog(t, openSQLite(t, filepath.Join(dir, "airlock.db")), s, Options{
		JournalDir: filepath.Join(dir, "journal"), JournalKey: testJournalKey,
		CommitDelay: delay, MaxBatch: maxBatch, clock: f.clk,
		OnCommit: func(int64) { f.batches.Add(1) },
	})
	return f
}

// concurrent makes the writer believe that recent batches held several
// callers' appends, as they do under concurrent load.
func (f *gatherFixture) concurrent() {
	f.l.mu.Lock() // the writer is idle; mu orders this before its next batch
	f.l.gc.batch = 8
	f.l.mu.Unlock()
}

// newSlowArrivals is a log under concurrent load whose writer believes
// that appends arrive an hour apart: only the delay bounds its wait.
func newSlowArrivals(t *testing.T, delay time.Duration) *gatherFixture {
	t.Helper()
	f := newGatherFixture(t, delay, 0)
	f.concurrent()
	f.l.mu.Lock()
	f.l.gapAvg = time.Hour
	f.l.mu.Unlock()
	return f
}

// done reports whether p's events become durable within a short look of
// real time (Wait would then return at once), for a test that expects them
// not to be: a log that holds them as it should never fails the check,
// however slow the machine; only a regression's early write might, on a
// loaded machine, finish after the look and slip through. A test that
// expects them durable uses written, which does not depend on how quickly
// the write runs.
func done(t *testing.T, p *Pending) bool {
	t.Helper()
	return durableWithin(t, p, 50*time.Millisecond)
}

// written fails t unless p's events become durable without the fake clock
// moving further. It waits for the writer's real work (a SQLite insert, a
// journal fsync) for up to 10 s, not for any deadline of the log's own,
// which reads only the fake clock: so a write that takes longer than usual
// on a loaded machine (50 ms once did not suffice, at load 25) is not
// taken for a missed deadline. It does not call Wait, which would mark
// the batch's reader as waiting and so change when it is due.
func written(t *testing.T, p *Pending, what string) {
	t.Helper()
	if !durableWithin(t, p, 10*time.Second) {
		t.Fatal(what)
	}
}

func durableWithin(t *testing.T, p *Pending, d time.Duration) bool {
	t.Helper()
	select {
	case <-p.o.done: // still there for Wait
		if err := p.o.result; err != nil {
			t.Fatal(err)
		}
		return true
	case <-time.After(d):
		return false
	}
}

// waitTimer waits until the writer has armed its gather timer.
func (f *gatherFixture) waitTimer(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for f.clk.Pending() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the writer never armed its commit delay timer")
		}
		time.Sleep(time.Millisecond)
	}
}

// A caller alone is never delayed: its append is written at once, without
// the clock moving.
func TestCommitDelaySingleCallerNotDelayed(t *testing.T) {
	f := newGatherFixture(t, time.Second, 0)
	for i := range 20 {
		if err := f.l.Append(context.Background(), Event{Type: "call"}); err != nil {
			t.Fatal(err)
		}
		if n := f.clk.Pending(); n != 0 {
			t.Fatalf("append %d: %d timers armed for a lone caller", i, n)
		}
	}
	if got := f.batches.Load(); got != 20 {
		t.Fatalf("%d batches for 20 sequential appends, want 20", got)
	}
}

// With concurrent callers the writer holds the batch open for more appends,
// and writes them together; the wait ends at the delay after the oldest.
func TestCommitDelayGathersConcurrentAppends(t *testing.T) {
	const delay = 200 * time.Microsecond
	f := newSlowArrivals(t, delay)
	ctx := context.Background()
	p1 := f.l.AppendAsync(ctx, Event{Type: "read", Actor: "1"})
	f.waitTimer(t)
	if done(t, p1) {
		t.Fatal("the first append was written without waiting for others")
	}
	f.clk.Advance(delay / 2)
	p2 := f.l.AppendAsync(ctx, Event{Type: "read", Actor: "2"})
	p3 := f.l.AppendAsync(ctx, Event{Type: "read", Actor: "3"})
	if done(t, p1) || done(t, p2) {
		t.Fatal("written before the delay ran out")
	}
	f.clk.Advance(delay / 2) // the oldest append has waited the whole delay
	for i, p := range []*Pending{p1, p2, p3} {
		if err := p.Wait(ctx); err != nil {
			t.Fatalf("append %d: %v", i+1, err)
		}
	}
	if got := f.batches.Load(); got != 1 {
		t.Fatalf("%d batches, want the three appends in one", got)
	}
	if f.l.Size() != 3 {
		t.Fatalf("size %d, want 3", f.l.Size())
	}
}

// Appends whose callers do not wait yet, arriving while the writer
// gathers, do not wake it when they cannot bring its deadline forward:
// under load each such wake-up was a goroutine hand-off per statement
// that changed nothing. The batch is still written at its deadline, with
// all of them in it.
func TestCommitDelayArrivalsDoNotWakeTheWriter(t *testing.T) {
	const delay = 200 * time.Microsecond
	f := newSlowArrivals(t, delay)
	ctx := context.Background()
	ps := []*Pending{f.l.AppendAsync(ctx, Event{Type: "read"})}
	f.waitTimer(t)
	looks := func() int64 {
		f.l.mu.Lock()
		defer f.l.mu.Unlock()
		return f.l.gc.looks
	}
	before := looks()
	for range 20 {
		ps = append(ps, f.l.AppendAsync(ctx, Event{Type: "read"}))
		time.Sleep(time.Millisecond) // room for a woken writer to look
	}
	if got := looks() - before; got != 0 {
		t.Fatalf("the gathering writer looked at the queue %d more times for 20 appends that changed nothing", got)
	}
	if done(t, ps[0]) {
		t.Fatal("written before the delay ran out")
	}
	f.clk.Advance(delay)
	for i, p := range ps {
		if err := p.Wait(ctx); err != nil {
			t.Fatalf("append %d: %v", i, err)
		}
	}
	if got := f.batches.Load(); got != 1 {
		t.Fatalf("%d batches, want the 21 appends in one", got)
	}
}

// A burst that has ended is written without waiting for the whole delay:
// after gatherGapFactor average gaps with no arrival.
func TestCommitDelayEndsWhenArrivalsStop(t *testing.T) {
	f := newGatherFixture(t, time.Second, 0)
	f.concurrent()
	f.l.mu.Lock()
	f.l.gapAvg = 100 * time.Microsecond
	f.l.mu.Unlock()
	p := f.l.AppendAsync(context.Background(), Event{Type: "read"})
	f.waitTimer(t)
	if done(t, p) {
		t.Fatal("written without waiting")
	}
	f.clk.Advance(gatherGapFactor*100*time.Microsecond - time.Microsecond)
	if done(t, p) {
		t.Fatal("written before gatherGapFactor average gaps passed")
	}
	f.clk.Advance(time.Microsecond)
	written(t, p, "still waiting well after arrivals stopped")
}

// newGathering returns a log under concurrent load, with one append that
// its writer holds for an hour's delay.
func newGathering(t *testing.T) (*gatherFixture, *Pending) {
	t.Helper()
	f := newGatherFixture(t, time.Hour, 0)
	f.concurrent()
	p := f.l.AppendAsync(context.Background(), Event{Type: "read"})
	f.waitTimer(t)
	return f, p
}

// A full batch, a queued Do call and Close end the wait at once.
func TestCommitDelayCutShort(t *testing.T) {
	t.Run("full batch", func(t *testing.T) {
		f := newGatherFixture(t, time.Hour, 3)
		f.concurrent()
		ctx := context.Background()
		p1 := f.l.AppendAsync(ctx, Event{Type: "read"})
		f.waitTimer(t)
		p2 := f.l.AppendAsync(ctx, Event{Type: "read"})
		if done(t, p1) {
			t.Fatal("written before the batch was full")
		}
		p3 := f.l.AppendAsync(ctx, Event{Type: "read"})
		for _, p := range []*Pending{p1, p2, p3} {
			if err := p.Wait(ctx); err != nil {
				t.Fatal(err)
			}
		}
		if got := f.batches.Load(); got != 1 {
			t.Fatalf("%d batches, want 1", got)
		}
	})
	t.Run("do", func(t *testing.T) {
		f, p := newGathering(t)
		ctx := context.Background()
		if err := f.l.Probe(ctx); err != nil {
			t.Fatal(err)
		}
		if err := p.Wait(ctx); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("close", func(t *testing.T) {
		f, p := newGathering(t)
		ctx := context.Background()
		if err := f.l.Close(); err != nil {
			t.Fatal(err)
		}
		if err := p.Wait(ctx); err != nil {
			t.Fatalf("an append queued before Close: %v", err)
		}
	})
}

// A negative delay turns gathering off even under concurrent load.
func TestCommitDelayOff(t *testing.T) {
	f := newGatherFixture(t, -1, 0)
	f.concurrent()
	if err := f.l.Append(context.Background(), Event{Type: "call"}); err != nil {
		t.Fatal(err)
	}
	if n := f.clk.Pending(); n != 0 {
		t.Fatalf("%d timers armed with the delay off", n)
	}
}

// A batch of reads whose callers are all still working is held until it
// would be durable about when the first of them waits (readDeadline), past
// the ordinary delay; a caller who calls Wait ends that hold: the batch is
// then an ordinary one.
func TestCommitDelayReadsHeldUntilWaited(t *testing.T) {
	const delay = 100 * time.Microsecond
	f := newGatherFixture(t, delay, 0)
	f.concurrent()
	f.l.mu.Lock()
	f.l.gapAvg = time.Hour
	f.l.gc.write = 200 * time.Microsecond
	f.l.mu.Unlock()
	f.l.readLag.Store(int64(600 * time.Microsecond)) // readDeadline: (600-200)*3/4 = 300 µs
	ctx := context.Background()
	p1 := f.l.AppendAsync(ctx, Event{Type: "read"})
	f.waitTimer(t)
	f.clk.Advance(delay)
	if done(t, p1) {
		t.Fatal("a batch of working readers was written after the ordinary delay")
	}
	f.clk.Advance(300*time.Microsecond - delay)
	written(t, p1, "not written at readDeadline")

	// A sync append in the queue: the ordinary delay applies.
	p2 := f.l.AppendAsync(ctx, Event{Type: "read"})
	f.waitTimer(t)
	errc := make(chan error, 1)
	go func() { errc <- f.l.Append(ctx, Event{Type: "write"}) }()
	waitQueued(t, f.l, 2)
	f.clk.Advance(delay)
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if err := p2.Wait(ctx); err != nil {
		t.Fatal(err)
	}

	// A reader that waits makes it an ordinary batch, written at the
	// ordinary delay after its oldest append (here not yet passed).
	p3 := f.l.AppendAsync(ctx, Event{Type: "read"})
	f.waitTimer(t)
	go func() { errc <- p3.Wait(ctx) }()
	for deadline := time.Now().Add(10 * time.Second); !p3.o.waited.Load(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("Wait never marked the read as waited for")
		}
	}
	if done(t, p3) {
		t.Fatal("written before the ordinary delay")
	}
	f.clk.Advance(delay)
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if f.l.Size() != 4 {
		t.Fatalf("size %d, want 4", f.l.Size())
	}
}

// readDeadline follows the readers' work before Wait, less the write's
// time, and is bounded.
func TestReadDeadline(t *testing.T) {
	l := &Log{gc: gatherState{delay: 200 * time.Microsecond}}
	for _, c := range []struct {
		lag, write, want time.Duration
	}{
		{0, 0, 0},
		{100 * time.Microsecond, 300 * time.Microsecond, 0},
		{600 * time.Microsecond, 200 * time.Microsecond, 300 * time.Microsecond},
		{time.Second, 200 * time.Microsecond, gatherReadFactor * 200 * time.Microsecond},
	} {
		l.readLag.Store(int64(c.lag))
		l.gc.write = c.write
		if got := l.readDeadline(); got != c.want {
			t.Errorf("lag %v, write %v: %v, want %v", c.lag, c.write, got, c.want)
		}
	}
}

// An AppendLazy call does not start a batch of its own: it joins the next
// one that another append starts, and the two share one write.
func TestAppendLazyJoinsTheNextBatch(t *testing.T) {
	f := newGatherFixture(t, -1, 0) // no commit delay: only the lazy hold waits
	ctx := context.Background()
	lazy := make(chan error, 1)
	go func() { lazy <- f.l.AppendLazy(ctx, Event{Type: "session.results"}) }()
	f.waitTimer(t)
	select {
	case err := <-lazy:
		t.Fatalf("AppendLazy returned (%v) before any other append started a batch", err)
	case <-time.After(50 * time.Millisecond):
	}
	if got := f.batches.Load(); got != 0 {
		t.Fatalf("%d batches written for a lone lazy append", got)
	}
	if err := f.l.Append(ctx, Event{Type: "session.call"}); err != nil {
		t.Fatal(err)
	}
	if err := <-lazy; err != nil {
		t.Fatal(err)
	}
	if got, size := f.batches.Load(), f.l.Size(); got != 1 || size != 2 {
		t.Fatalf("%d batches, log size %d; want one batch of both entries", got, size)
	}
}

// With nothing else to join, a lazy append is written alone once it has
// waited lazyWait, and Close does not wait for it at all.
func TestAppendLazyWrittenAloneAfterItsWait(t *testing.T) {
	f := newGatherFixture(t, -1, 0)
	ctx := context.Background()
	lazy := make(chan error, 1)
	go func() { lazy <- f.l.AppendLazy(ctx, Event{Type: "session.results"}) }()
	f.waitTimer(t)
	f.clk.Advance(lazyWait - time.Millisecond)
	select {
	case err := <-lazy:
		t.Fatalf("AppendLazy returned (%v) before lazyWait", err)
	case <-time.After(50 * time.Millisecond):
	}
	f.clk.Advance(time.Millisecond)
	if err := <-lazy; err != nil {
		t.Fatal(err)
	}
	if got, size := f.batches.Load(), f.l.Size(); got != 1 || size != 1 {
		t.Fatalf("%d batches, log size %d; want the lazy entry written alone", got, size)
	}

	go func() { lazy <- f.l.AppendLazy(ctx, Event{Type: "session.results"}) }()
	f.waitTimer(t)
	if err := f.l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-lazy; err != nil {
		t.Fatalf("a lazy append queued at Close: %v", err)
	}
	if size := f.l.Size(); size != 2 {
		t.Fatalf("log size %d after Close, want 2", size)
	}
}

// A gathering writer on the real clock waits for its deadline on one
// runtime timer whose firing readies it (clock.WakeTimer): with
// clock.AfterFunc every firing started a goroutine of its own to send on
// a channel, a scheduling round (and often a thread woken) per batch
// (bench/HISTORY.md, "What wakes airlock serve's threads").
func TestCommitDelayTimerStartsNoGoroutine(t *testing.T) {
	dir := t.TempDir()
	s, _ := testKey(t)
	var batches atomic.Int64
	l := openLog(t, openSQLite(t, filepath.Join(dir, "airlock.db")), s, Options{
		JournalDir: filepath.Join(dir, "journal"), JournalKey: testJournalKey,
		CommitDelay: 2 * time.Millisecond,
		OnCommit:    func(int64) { batches.Add(1) },
	})
	ctx := context.Background()
	const rounds = 60
	created := goroutinesCreated()
	for i := range rounds {
		// As under concurrent load, with appends an hour apart: the
		// writer holds each batch for the whole delay, on its timer.
		l.mu.Lock() // the writer is idle; mu orders this before its next batch
		l.gc.batch, l.gapAvg = 8, time.Hour
		l.mu.Unlock()
		before := batches.Load()
		p := l.AppendAsync(ctx, Event{Type: "read"})
		if !durableWithin(t, p, 10*time.Second) {
			t.Fatalf("round %d: never written", i)
		}
		if got := batches.Load() - before; got != 1 {
			t.Fatalf("round %d: %d batches", i, got)
		}
	}
	got := goroutinesCreated() - created
	// A round's first look arms the timer, unless the writer came to it
	// after the delay had run out (a loaded machine); each firing is one
	// more look.
	l.mu.Lock()
	timed := l.gc.looks - rounds
	l.mu.Unlock()
	if timed < rounds/2 {
		t.Fatalf("the writer waited on its timer in %d rounds of %d", timed, rounds)
	}
	t.Logf("%d goroutines started for %d firings of the writer's timer", got, timed)
	// The indexer's copy into SQLite (one transaction per 100 ms) may
	// start a few of database/sql's.
	if got > uint64(timed/3) {
		t.Fatalf("%d goroutines started for %d firings of the writer's timer", got, timed)
	}
}

// goroutinesCreated is the process's count of goroutines started so far.
func goroutinesCreated() uint64 {
	s := []metrics.Sample{{Name: "/sched/goroutines-created:goroutines"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// AppendLazyIn queues lazy appends without waiting: one goroutine queues
// several, nothing is written for them alone, and they join the batch the
// next ordinary append starts, each Pending then telling its outcome. A
// lazy Pending's Wait is no read's: it leaves the reads' lag (readLag,
// which a gathering writer's deadline for reads follows) alone.
func TestAppendLazyInQueuedTogether(t *testing.T) {
	f := newGatherFixture(t, -1, 0)
	ctx := context.Background()
	var ps [3]Pending
	for i := range ps {
		f.l.AppendLazyIn(ctx, &ps[i], Event{Type: "session.results"})
	}
	if got := f.batches.Load(); got != 0 {
		t.Fatalf("%d batches written for lazy appends alone", got)
	}
	if err := f.l.Append(ctx, Event{Type: "session.call"}); err != nil {
		t.Fatal(err)
	}
	for i := range ps {
		if err := ps[i].Wait(ctx); err != nil {
			t.Fatalf("lazy append %d: %v", i, err)
		}
	}
	if got, size := f.batches.Load(), f.l.Size(); got != 1 || size != 4 {
		t.Fatalf("%d batches, log size %d; want one batch of all four entries", got, size)
	}

	g := newGatherFixture(t, time.Millisecond, 0)
	var p Pending
	g.l.AppendLazyIn(ctx, &p, Event{Type: "session.results"})
	g.clk.Advance(time.Millisecond / 2)
	done, cancel := context.WithCancel(ctx)
	cancel()
	if err := p.Wait(done); err == nil {
		t.Fatal("a lazy append withdrawn while queued was stored")
	}
	if lag := g.l.readLag.Load(); lag != 0 {
		t.Errorf("a lazy append's wait moved the reads' lag to %v", time.Duration(lag))
	}
}
