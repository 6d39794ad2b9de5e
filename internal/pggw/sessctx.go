package pggw

import (
	"context"
	"sync"
	"time"
)

// sessCtx is a session's context (conn.ctx): the calls that record the
// session's statements wait on it, and kill and closeAll cancel it (an
// abandoned wait for a stalled record ends with the session). It is part
// of conn, where a context.WithCancel cost every session 96 bytes of heap
// for its life (the context, its cancel func), and its Done channel is
// made when a call first waits on it (the log's durable wait does: 96
// bytes more, for as long as the session lived) and let go when both
// relay loops are parked (parked): nothing waits on it then, since only
// the loops' own calls do, each returning before its loop parks. A loop
// that wakes marks itself awake (woke) before it makes any call, under
// the same lock, so a channel handed out after a wake-up is never let go.
//
// It is no child of the gateway's context: the gateway ends its
// connections itself (Close, and its Serve's context: shutdownServed),
// through kill, which cancels it; a child would cost every idle session
// an entry in the parent's children (bench/HISTORY.md).
//
// Children of a sessCtx (context.WithTimeout) start a goroutine that
// watches it until they end, as for any context that is not the
// package's own: only a rare path (recordAuthRefusal) makes one.
type sessCtx struct {
	mu sync.Mutex
	// done is nil until a call waits (Done), closedCh once cancelled.
	done chan struct{}
}

// closedCh is every cancelled sessCtx's Done channel.
var closedCh = func() chan struct{} {
	ch := make(chan struct{})
	close(ch)
	return ch
}()

func (x *sessCtx) Deadline() (time.Time, bool) { return time.Time{}, false }

func (x *sessCtx) Value(any) any { return nil }

func (x *sessCtx) Done() <-chan struct{} {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.done == nil {
		x.done = make(chan struct{})
	}
	return x.done
}

func (x *sessCtx) Err() error {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.done == closedCh {
		return context.Canceled
	}
	return nil
}

// cancel cancels x, once (later calls do nothing).
func (x *sessCtx) cancel() {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.done != closedCh {
		if x.done != nil {
			close(x.done)
		}
		x.done = closedCh
	}
}

// parked marks side s's loop parked, and lets the Done channel go if the
// other loop is parked too (unless x is cancelled).
// sides is the session's bits of parked loops (conn.parkedSides), guarded
// by x.mu.
func (x *sessCtx) parked(sides *uint8, s side) {
	x.mu.Lock()
	defer x.mu.Unlock()
	*sides |= 1 << s
	if *sides == 1<<clientSide|1<<upstreamSide && x.done != closedCh {
		x.done = nil
	}
}

// woke marks side s's loop awake; it is called before the loop makes any
// call with the context.
func (x *sessCtx) woke(sides *uint8, s side) {
	x.mu.Lock()
	*sides &^= 1 << s
	x.mu.Unlock()
}

// ctx is the session's context (sessCtx).
func (c *conn) ctx() context.Context { return &c.cx }
