package clock

import "time"

// WakeTimer wakes one goroutine at the deadlines it sets, one at a time:
// the goroutine arms it and receives from the channel Arm returns, in a
// select with whatever else may wake it first.
//
// With the real clock (Real, or a Func) it is one runtime timer, reset for
// each deadline. When it fires, the scheduler sends on its channel and so
// readies the waiting goroutine directly. c.AfterFunc(d, func() { ch <- … })
// does the same in two hops: the runtime starts a goroutine for the
// function, which then readies the waiter; each such goroutine is a
// scheduling round and may wake an idle thread on its own (bench/HISTORY.md,
// "What wakes airlock serve's threads": the audit log's gather timer was
// 0.09 goroutines started a pgbench statement). Arming it anew also cost a
// timer, a closure and a channel each time; re-arming this costs nothing.
//
// With any other clock (a test's Fake) it is that clock's AfterFunc with a
// channel of its own per Arm.
//
// A WakeTimer is for one goroutine; it is not safe for concurrent use.
type WakeTimer struct {
	clk Clock
	rt  *time.Timer // the real clock's, created stopped on first use
	ft  Timer       // another clock's pending AfterFunc
}

// NewWakeTimer returns a stopped WakeTimer on c.
func NewWakeTimer(c Clock) *WakeTimer { return &WakeTimer{clk: c} }

// Arm stops any firing still pending and arms the timer to fire once d has
// passed; it returns the channel the firing is sent on. A firing from an
// earlier Arm is never received from it after Arm returns.
func (w *WakeTimer) Arm(d time.Duration) <-chan time.Time {
	switch w.clk.(type) {
	case realClock, Func:
		if w.rt == nil {
			w.rt = time.NewTimer(d)
		} else {
			// Since Go 1.23 (this module's go line), Reset also
			// discards a firing that was not received.
			w.rt.Reset(d)
		}
		return w.rt.C
	}
	if w.ft != nil {
		w.ft.Stop()
	}
	ch := make(chan time.Time, 1)
	clk := w.clk
	w.ft = clk.AfterFunc(d, func() { ch <- clk.Now() })
	return ch
}

// Stop keeps a pending firing from being sent. The timer may be armed
// again.
func (w *WakeTimer) Stop() {
	if w.rt != nil {
		w.rt.Stop()
	}
	if w.ft != nil {
		w.ft.Stop()
		w.ft = nil
	}
}
