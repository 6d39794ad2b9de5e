package awsgw

import (
	"sync"
	"time"

	"github.com/airlock-dev/airlock/internal/clock"
)

// Nearly every watch a call arms (the bound on the upstream's answer,
// answerwait.go; the client's stall watch, idle.go) is stopped long before
// its timer would fire, and a timer of its own (the timer and the function
// it runs) was two of a call's allocations. A timer stopped before its
// function ever started goes back to a pool of the gateway's and is reset
// for the next watch instead; one whose function has started is never
// lent again, so that nothing a late run does can reach the next watch.

// timerOwner is the watch a kept timer is armed for.
type timerOwner interface {
	// timerFired is the timer's function, for this watch.
	timerFired()
}

// timerPool keeps stopped timers of one clock between watches.
type timerPool struct {
	clk  clock.Clock
	pool sync.Pool // of *keptTimer
}

// keptTimer is a timer kept across watches, armed for one at a time.
type keptTimer struct {
	t     clock.Timer
	reset func(time.Duration) bool // t's Reset
	mu    sync.Mutex
	to    timerOwner // the watch it is armed for; nil in the pool
	fired bool       // its function has started: never lent again
}

func (k *keptTimer) fire() {
	k.mu.Lock()
	to := k.to
	k.fired = true
	k.mu.Unlock()
	if to != nil {
		to.timerFired()
	}
}

// Reset arms k again, for the watch it is armed for, d from now (a watch
// that looks again: the stall watch). It reports whether k was armed.
func (k *keptTimer) Reset(d time.Duration) bool {
	if k.reset == nil {
		return false
	}
	return k.reset(d)
}

// start returns a timer that runs to.timerFired after d: one kept from
// an earlier watch if the pool has one, else a new one.
func (p *timerPool) start(d time.Duration, to timerOwner) *keptTimer {
	if k, _ := p.pool.Get().(*keptTimer); k != nil {
		// Stopped, never fired: nothing else reads k.to now.
		k.mu.Lock()
		k.to = to
		k.mu.Unlock()
		k.reset(d)
		return k
	}
	k := &keptTimer{to: to}
	k.t = p.clk.AfterFunc(d, k.fire)
	if r, ok := k.t.(interface{ Reset(time.Duration) bool }); ok {
		k.reset = r.Reset
	}
	return k
}

// release leaves k armed but for no watch: its function, should it run,
// does nothing (and k is then never lent again). take arms it for the
// call's next watch.
func (k *keptTimer) release() {
	k.mu.Lock()
	k.to = nil
	k.mu.Unlock()
}

// take arms k, released, for to, d from now, and reports whether it
// did: not if k's function has started since it was lent, whatever it
// did, for a timer that ran is never lent again (stop it instead).
func (k *keptTimer) take(d time.Duration, to timerOwner) bool {
	k.mu.Lock()
	ok := !k.fired && k.reset != nil
	if ok {
		k.to = to
	}
	k.mu.Unlock()
	if ok {
		k.reset(d)
	}
	return ok
}

// stop stops k, whose watch is over, and keeps it for another if its
// function never started. Stop reports true only if the function had not
// started since the timer was last armed; fired covers the runs before
// that (a watch that re-armed its timer from its function).
func (p *timerPool) stop(k *keptTimer) {
	stopped := k.t.Stop()
	k.mu.Lock()
	reuse := stopped && !k.fired && k.reset != nil
	if reuse {
		k.to = nil
	}
	k.mu.Unlock()
	if reuse {
		p.pool.Put(k)
	}
}
