package clock

import (
	"sync/atomic"
	"time"
)

// Short timers.
//
// The runtime's timers are late by up to a millisecond whenever every
// goroutine of the process is blocked: the scheduler then waits for the
// next timer in epoll_wait, whose timeout is in whole milliseconds, so a
// timer due in 200 µs fires after about 1 ms (golang/go#53824). A busy
// process checks its timers far more often and is rarely late. The audit
// log's group commit is the case that matters: its writer holds a batch
// open for at most a few hundred microseconds so that concurrent callers
// share one journal write, and every one of those callers is blocked on
// that batch, so the process is often idle exactly while the writer waits.
// Measured (BenchmarkAppend8/journal, 8 callers, bench/HISTORY.md): a batch
// took about 1.5 ms with a 200 µs delay on runtime timers, against 0.22
// ms with no delay at all.

// shortLimit is the longest delay AfterShort sleeps in a system call for;
// beyond it the runtime timer's lateness is small beside the delay.
const shortLimit = 5 * time.Millisecond

// AfterShort is c.AfterFunc(d, f) for a delay of well under a millisecond
// that must not stretch to one while the process is idle. With the real
// clock (Real, or a Func), a d below shortLimit is slept in a system call
// on a goroutine of its own (nanosleep, which the kernel times in
// microseconds) before f runs there; otherwise, and for a Fake, it is
// c.AfterFunc. Stop keeps f from running but does not end the sleep early:
// the goroutine ends at d, which is why the delay must be short.
func AfterShort(c Clock, d time.Duration, f func()) Timer {
	switch c.(type) {
	case realClock, Func:
		if d > 0 && d < shortLimit && preciseSleep != nil {
			t := &sleepTimer{}
			go t.run(d, f)
			return t
		}
	}
	return c.AfterFunc(d, f)
}

// sleepTimer is a pending AfterShort: armed, then stopped or fired.
type sleepTimer struct{ state atomic.Int32 }

const (
	sleepArmed int32 = iota
	sleepStopped
	sleepFired
)

func (t *sleepTimer) run(d time.Duration, f func()) {
	preciseSleep(d)
	if t.state.CompareAndSwap(sleepArmed, sleepFired) {
		f()
	}
}

// Stop prevents f from running and reports whether it did.
func (t *sleepTimer) Stop() bool { return t.state.CompareAndSwap(sleepArmed, sleepStopped) }
