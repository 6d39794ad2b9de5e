// Package clock is the time source of Airlock's timers: the real clock in
// production and a manual one in tests, so that a test of expiry or of a
// decision deadline moves time forward instead of sleeping until it passes.
package clock

import (
	"cmp"
	"slices"
	"sync"
	"time"
)

// Clock tells the time and runs functions after a delay.
type Clock interface {
	Now() time.Time
	// AfterFunc runs f in its own goroutine (Real) or from Advance (Fake)
	// once d has passed.
	AfterFunc(d time.Duration, f func()) Timer
}

// Timer is a pending AfterFunc.
type Timer interface {
	// Stop prevents the function from running and reports whether it did.
	Stop() bool
}

// Real is the system clock.
var Real Clock = realClock{}

type realClock struct{}

func (realClock) Now() time.Time                            { return time.Now() }
func (realClock) AfterFunc(d time.Duration, f func()) Timer { return time.AfterFunc(d, f) }

// RealTimers reports whether c's timers are the real clock's
// (time.AfterFunc): Real's and Func's, and those of a clock that runs its
// timers on another (a Timers method) whose timers are. Timers of two
// such clocks run on the same time, so one can be reset for the other's
// use (awsgw keeps one timer for a call's two watches).
func RealTimers(c Clock) bool {
	for range 8 { // a chain of clocks each on another: bounded
		switch t := c.(type) {
		case realClock, Func:
			return true
		case interface{ Timers() Clock }:
			c = t.Timers()
		default:
			return false
		}
	}
	return false
}

// Func is the real clock's timers with another source of Now: for callers
// that shift or freeze the time they read but still want timers to run.
type Func func() time.Time

func (f Func) Now() time.Time                           { return f() }
func (Func) AfterFunc(d time.Duration, fn func()) Timer { return time.AfterFunc(d, fn) }

// Fake is a clock that moves only when told. Its timers run, in deadline
// order and synchronously, from Advance and Set, so when either returns,
// every function due by then has run.
type Fake struct {
	mu     sync.Mutex
	now    time.Time
	seq    int
	timers []*fakeTimer
	// running serialises Advance calls, so due functions never run concurrently.
	running sync.Mutex
}

// NewFake returns a Fake reading t.
func NewFake(t time.Time) *Fake { return &Fake{now: t} }

// Now returns the fake time.
func (c *Fake) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// AfterFunc arms f to run when the clock reaches Now()+d. A d <= 0 runs at
// the next Advance or Set, as time.AfterFunc(0) runs at once.
func (c *Fake) AfterFunc(d time.Duration, f func()) Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seq++
	t := &fakeTimer{c: c, at: c.now.Add(d), seq: c.seq, f: f}
	c.timers = append(c.timers, t)
	return t
}

// Pending is how many timers are armed.
func (c *Fake) Pending() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.timers)
}

// Advance moves the clock forward by d, running each timer as its deadline
// is reached (with Now reading that deadline while it runs).
func (c *Fake) Advance(d time.Duration) { c.Set(c.Now().Add(d)) }

// Set moves the clock to t (never backwards for timers: a t before Now
// only changes what Now reads) and runs every timer due by t, including
// timers that due functions arm.
func (c *Fake) Set(t time.Time) {
	c.running.Lock()
	defer c.running.Unlock()
	for {
		c.mu.Lock()
		// slices.SortFunc, not sort.Slice: a test can then count what a
		// timer's function allocates without the sort's own allocations.
		slices.SortFunc(c.timers, func(a, b *fakeTimer) int {
			if c := a.at.Compare(b.at); c != 0 {
				return c
			}
			return cmp.Compare(a.seq, b.seq)
		})
		if len(c.timers) == 0 || c.timers[0].at.After(t) {
			c.now = t
			c.mu.Unlock()
			return
		}
		next := c.timers[0]
		// Shifted down, not resliced: the slice keeps its capacity, so a
		// timer armed again (Reset) does not grow a new one each time.
		c.timers = slices.Delete(c.timers, 0, 1)
		if next.at.After(c.now) {
			c.now = next.at
		}
		c.mu.Unlock()
		next.f()
	}
}

type fakeTimer struct {
	c   *Fake
	at  time.Time
	seq int
	f   func()
}

// Reset arms t again to run d after the clock's Now, as time.Timer's Reset
// does, and reports whether it was still armed.
func (t *fakeTimer) Reset(d time.Duration) bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	armed := false
	for i, o := range t.c.timers {
		if o == t {
			t.c.timers = append(t.c.timers[:i], t.c.timers[i+1:]...)
			armed = true
			break
		}
	}
	t.c.seq++
	t.at, t.seq = t.c.now.Add(d), t.c.seq
	t.c.timers = append(t.c.timers, t)
	return armed
}

func (t *fakeTimer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	for i, o := range t.c.timers {
		if o == t {
			t.c.timers = append(t.c.timers[:i], t.c.timers[i+1:]...)
			return true
		}
	}
	return false
}
