package auditlog

import (
	"context"
	"time"

	"github.com/airlock-dev/airlock/internal/clock"
)

// DefaultCommitDelay is the default Options.CommitDelay.
const DefaultCommitDelay = 200 * time.Microsecond

// Group commit delay (see "Group commit delay" in the package
// documentation): with a journal, the writer may hold a batch of appends
// open for a short, bounded time so that appends from concurrent callers
// share its write and fdatasync, which costs 50-110 µs of kernel CPU
// whatever the batch holds.
const (
	// gatherMinBatch is the average batch (operations, exponentially
	// weighted) from which the writer gathers: below it the appends come
	// from about one caller at a time, who is blocked on its own record,
	// and waiting for others would only add latency.
	gatherMinBatch = 1.25
	// gatherGapFactor times the average gap between appends is how long
	// the writer waits for the next one before it writes what it has: a
	// burst that has ended (every caller already queued) is written at
	// once rather than after the whole delay.
	gatherGapFactor = 3
	// gatherMinGap is the least such wait.
	gatherMinGap = 10 * time.Microsecond
	// gatherReadFactor is how many CommitDelays a batch of reads whose
	// callers are all still working may wait (see readDeadline).
	gatherReadFactor = 4
)

// lazyWait is how long events queued by [Log.AppendLazy] wait for a batch
// that other appends start before they are written in one of their own.
// Calls arrive every few milliseconds on a busy gateway, and a session's
// results are flushed every 100 ms: well within it.
const lazyWait = 25 * time.Millisecond

// AppendLazy is [Log.Append] for records that nobody is held up by, such as
// a session's batched results (the gateway already answered those calls):
// with a journal, its events do not start a batch of their own but join the
// next one that other callers' appends start, so they add no write and no
// fdatasync; only if none starts within lazyWait are they written alone.
// Like Append, it returns once they are durable, or with the error that
// kept them out of the log. Without a journal it is Append.
func (l *Log) AppendLazy(ctx context.Context, events ...Event) error {
	return l.AppendLazyIn(ctx, new(Pending), events...).Wait(ctx)
}

// AppendLazyIn is AppendLazy that returns once the events are queued, in
// p, a zero Pending (or a Reset one) in the caller's memory, as
// AppendAsyncLiveIn: [Pending.Wait] then returns what AppendLazy would
// have. One goroutine can so queue several lazy appends and wait for them
// together (the sessions recorder's flusher, one entry per session with
// results), where each AppendLazy held up a goroutine of its own until its
// batch was durable. p's rules are AppendAsyncLiveIn's.
func (l *Log) AppendLazyIn(ctx context.Context, p *Pending, events ...Event) *Pending {
	return l.appendIn(ctx, p, events, true, "")
}

// holdLazy waits, before a journal batch is taken, while the queue holds
// only AppendLazy calls, none queued for lazyWait yet: until another
// append or a Do call arrives, the oldest has waited lazyWait, or the log
// is closing.
func (l *Log) holdLazy() {
	var fired <-chan time.Time // armed: l.gc.timer's
	defer func() {
		if fired != nil {
			l.gc.timer.Stop()
		}
	}()
	for {
		l.mu.Lock()
		lazy, closed := len(l.queue) > 0, l.closed
		var first time.Time
		for i, o := range l.queue {
			if !o.lazy {
				lazy = false
				break
			}
			if i == 0 || o.at.Before(first) {
				first = o.at
			}
		}
		l.mu.Unlock()
		if closed || !lazy {
			return
		}
		wait := first.Add(lazyWait).Sub(l.gc.clk.Now())
		if wait <= 0 {
			return
		}
		if fired == nil {
			fired = l.gc.wakeTimer().Arm(wait)
		}
		select {
		case <-l.wake: // an append (or Close) arrived: look again
		case <-fired:
			fired = nil
		}
	}
}

// gatherState is the writer's record of recent batches, owned by the
// writer goroutine.
type gatherState struct {
	delay time.Duration // Options.CommitDelay after defaults; <= 0: off
	clk   clock.Clock
	// timer is the writer's one timer for holdLazy's and gather's
	// deadlines on the runtime's timers (clock.WakeTimer: its firing
	// readies the writer without a goroutine of its own); nil until the
	// writer first needs it.
	timer *clock.WakeTimer
	batch float64       // operations per journal batch, exponentially weighted
	write time.Duration // a journal batch's write and fdatasync, weighted
	looks int64         // times gather looked at the queue (under mu; for tests)
}

// wakeTimer is g.timer, made on first use. Writer only.
func (g *gatherState) wakeTimer() *clock.WakeTimer {
	if g.timer == nil {
		g.timer = clock.NewWakeTimer(g.clk)
	}
	return g.timer
}

// arrived records an append's arrival, for the gap between appends. It
// runs under l.mu.
func (l *Log) arrived(o *op) {
	now := l.gc.clk.Now()
	o.at = now
	if !l.lastArrival.IsZero() {
		gap := now.Sub(l.lastArrival)
		l.gapAvg += (gap - l.gapAvg) / 8
	}
	l.lastArrival = now
}

// batched records the size of a journal batch and how long it took to
// write (the writer, after it).
func (l *Log) batched(ops int, took time.Duration) {
	l.gc.batch += (float64(ops) - l.gc.batch) / 8
	l.gc.write += (took - l.gc.write) / 8
}

// waiting records that o's AppendAsync caller now waits for it: how long
// it worked first, and, if o is still queued, a nudge for a gathering
// writer, which holds a batch with a waiting caller no longer than an
// ordinary one.
func (l *Log) waiting(o *op) {
	if l.gc.delay <= 0 {
		return
	}
	lag := int64(l.gc.clk.Now().Sub(o.at))
	old := l.readLag.Load()
	l.readLag.Store(old + (lag-old)/8)
	if o.state.Load() == opQueued {
		o.waited.Store(true)
		// Only a writer whose wait a batch of reads lengthened waits
		// less now; any other looks at the queue by its deadline anyway.
		// The writer sets gatherReads before it reads the waited flags
		// (gather), and this reads it after setting o's: one of the two
		// sees the other's.
		if !l.gatherReads.Load() {
			return
		}
		select {
		case l.wake <- struct{}{}:
		default:
		}
	}
}

// gapDeadline is when, with no further arrival, a gathering writer
// takes the appends as a burst that has ended: gatherGapFactor average
// gaps after the newest one. Under mu.
func (l *Log) gapDeadline() time.Time {
	return l.lastArrival.Add(max(gatherGapFactor*l.gapAvg, gatherMinGap))
}

// wakeFor reports whether o, just queued (under mu), must wake the
// writer. A writer waiting in gather (gatherUntil) looks at the queue
// again by its deadline, and an AppendAsync whose caller does not wait
// yet can change that deadline only through the gap between arrivals
// (its own is the newest): no earlier than gapDeadline. Anything else
// wakes it: an append whose caller waits for the batch (it may make the
// wait a short one), a Do call, a full batch. Under load most appends
// arrive while the writer gathers, and each wake-up was a goroutine
// hand-off (often a thread woken on the other CPU) that changed nothing.
func (l *Log) wakeFor(o *op) bool {
	if l.gatherUntil.IsZero() || !o.async || o.fn != nil || len(l.queue) >= l.opts.MaxBatch {
		return true
	}
	return l.gapDeadline().Before(l.gatherUntil)
}

// readDeadline is how long after the oldest of a batch of reads, none of
// whose callers waits for it yet, the writer may start writing it: so that
// it is durable about when the first of them would wait (their average
// work before Wait, less the write's own time, with a quarter to spare),
// and no more than gatherReadFactor delays. A read's record is written
// while the read travels upstream, so this costs it no latency unless its
// call is quicker than most; and once a caller waits, the batch is an
// ordinary one (whose delay, counted from its oldest append, has usually
// run out by then).
func (l *Log) readDeadline() time.Duration {
	d := (time.Duration(l.readLag.Load()) - l.gc.write) * 3 / 4
	return min(max(d, 0), gatherReadFactor*l.gc.delay)
}

// gather waits, before a journal batch is taken, while more appends are
// likely to join it: only when recent batches held several callers' appends,
// never longer than the delay after the oldest queued append arrived, and
// no longer than gatherGapFactor average gaps after the newest one; or, when
// the queue holds only reads whose callers are still working, until
// readDeadline. It returns at once when the queue holds MaxBatch operations,
// a Do call (which takes its own path) or the log is closing.
func (l *Log) gather() {
	l.holdLazy()
	g := &l.gc
	if g.delay <= 0 || g.batch < gatherMinBatch {
		return
	}
	var (
		fired <-chan time.Time // armed: g.timer's, or short's channel
		short clock.Timer      // the AfterShort armed, if it is one
		armed time.Time
	)
	defer func() {
		switch {
		case short != nil:
			short.Stop()
		case fired != nil:
			g.timer.Stop()
		}
	}()
	defer l.gatherReads.Store(false)
	for {
		l.mu.Lock()
		l.gc.looks++
		l.gatherUntil = time.Time{} // looking now: every arrival wakes it again
		l.gatherReads.Store(true)   // before the waited flags: see waiting
		n, closed := len(l.queue), l.closed
		var first time.Time
		hasDo, reads, blocked := false, true, false
		for _, o := range l.queue {
			if o.fn != nil {
				hasDo = true
				break
			}
			reads = reads && o.async && !o.waited.Load()
			blocked = blocked || (!o.async && !o.lazy)
		}
		if n > 0 {
			first = l.queue[0].at
		}
		if closed || n == 0 || n >= l.opts.MaxBatch || hasDo {
			l.mu.Unlock()
			return
		}
		deadline := first.Add(g.delay)
		if d := l.gapDeadline(); d.Before(deadline) {
			deadline = d
		}
		lengthened := false
		if reads {
			if d := first.Add(l.readDeadline()); d.After(deadline) {
				deadline, lengthened = d, true
			}
		}
		wait := deadline.Sub(g.clk.Now())
		if wait <= 0 {
			l.mu.Unlock()
			return
		}
		rearm := fired == nil || deadline.Before(armed) || (blocked && short == nil)
		// Until the writer looks again (its timer, kept or armed below),
		// only an arrival that would bring that look forward wakes it.
		l.gatherUntil = armed
		if rearm {
			l.gatherUntil = deadline
		}
		l.gatherReads.Store(lengthened)
		l.mu.Unlock()
		if rearm {
			switch {
			case short != nil:
				short.Stop()
				short = nil
			case fired != nil:
				g.timer.Stop()
			}
			armed = deadline
			if blocked {
				// A caller waits for the batch before it forwards
				// anything (Append: durable before forward), so
				// nothing of its call is in flight and the process
				// may well be idle, where a runtime timer fires up to
				// a millisecond late (clock.AfterShort).
				ch := make(chan time.Time, 1)
				fired = ch
				short = clock.AfterShort(g.clk, wait, func() { ch <- time.Time{} })
			} else {
				// Only reads, which travel upstream meanwhile: their
				// answers wake the scheduler, which runs due timers,
				// and AfterShort's thread, which sleeps and wakes once
				// a batch, measured a slightly lower S3 GET rate in
				// four pairs of four. The runtime timer's firing
				// readies this goroutine itself (clock.WakeTimer).
				fired = g.wakeTimer().Arm(wait)
			}
		}
		select {
		case <-l.wake: // an append (or Close) arrived: look again
		case <-fired:
			fired, short = nil, nil // the deadline may have moved on: look again
		}
	}
}
