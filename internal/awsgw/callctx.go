package awsgw

import (
	"context"
	"net"
	"sync"
	"time"
)

// callCtx is an S3 call's context, held in its exchange: it ends when
// the client's request context does (the client went away), when the
// call's session ends (sessionEnded, with the end's cause), when the
// upstream's answer is overdue (answerWatch), and when the call is over.
//
// Why not context.WithCancelCause on the request's context, with the
// upstream connection's cut a context.AfterFunc on that: the two cost ten
// allocations a call (each a context, its cancel or stop func, a children
// map in its parent and the parent's done channel), and the cut is known
// here without any (watchConn): this costs one registration on the
// request's context and the done channel, if anything asks for it
// (bench/HISTORY.md, "S3 GET 1 KiB: one context a call").
//
// context.Cause cannot see a cause kept outside the context package's
// own types: readers of a call's cause use causeOf. Contexts derived from
// a callCtx end with it (AfterFunc), their cause context.Canceled.
type callCtx struct {
	parent context.Context
	// stopParent undoes the registration on parent, if one was made.
	stopParent func() bool

	mu    sync.Mutex
	done  chan struct{} // made when asked for or at the end
	err   error         // context.Canceled once ended
	cause error
	// conn is the upstream connection to cut when the call ends, while
	// h1Conn.roundTrip's answer is under way (watchConn).
	conn net.Conn
	// after are the functions registered by AfterFunc, by their key.
	after map[*afterFunc]struct{}
}

// afterFunc is one function registered by callCtx.AfterFunc.
type afterFunc struct{ f func() }

// closedDone is a done channel closed already, for a context that ends
// before anything asked for its channel.
var closedDone = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

// init sets up a zero callCtx as a child of parent.
func (c *callCtx) init(parent context.Context) {
	c.parent = parent
	if parent.Done() == nil {
		return // never cancelled: nothing to watch
	}
	if parent.Err() != nil {
		c.cancel(context.Cause(parent))
		return
	}
	c.stopParent = context.AfterFunc(parent, c.parentEnded)
}

// parentEnded ends c for its parent's end, with the parent's cause.
func (c *callCtx) parentEnded() { c.cancel(context.Cause(c.parent)) }

// end ends c once the call is over, and drops its registration on the
// parent.
func (c *callCtx) end() {
	if c.stopParent != nil {
		c.stopParent()
	}
	c.cancel(context.Canceled)
}

// cancel ends c with cause (context.Canceled if nil); later calls do
// nothing. A watched connection is cut at once; the functions registered
// by AfterFunc start, each on a goroutine of its own.
func (c *callCtx) cancel(cause error) {
	if cause == nil {
		cause = context.Canceled
	}
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return
	}
	c.err, c.cause = context.Canceled, cause
	if c.done == nil {
		c.done = closedDone
	} else {
		close(c.done)
	}
	if c.conn != nil {
		// Its reads and writes fail now; h1Body then closes it.
		_ = c.conn.SetDeadline(aLongTimeAgo)
	}
	after := c.after
	c.after = nil
	c.mu.Unlock()
	for a := range after {
		go a.f()
	}
}

// cancelCause is cancel, for answerWatch.
func (c *callCtx) cancelCause(cause error) { c.cancel(cause) }

// checkParent ends c if its parent has ended and the registration's
// goroutine has not yet said so: what c reports is then never behind
// its parent.
func (c *callCtx) checkParent() {
	if c.parent != nil && c.parent.Err() != nil {
		c.cancel(context.Cause(c.parent))
	}
}

// Deadline is the parent's.
func (c *callCtx) Deadline() (time.Time, bool) { return c.parent.Deadline() }

// Done is closed when c ends.
func (c *callCtx) Done() <-chan struct{} {
	c.checkParent()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.done == nil {
		c.done = make(chan struct{})
	}
	return c.done
}

// Err is context.Canceled once c has ended.
func (c *callCtx) Err() error {
	c.checkParent()
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// causeErr is why c ended (nil while it has not).
func (c *callCtx) causeErr() error {
	c.checkParent()
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cause
}

// Value is the parent's.
func (c *callCtx) Value(key any) any { return c.parent.Value(key) }

// AfterFunc runs f on a goroutine of its own once c ends. The context
// package uses it for the contexts derived from c, which would otherwise
// each take a goroutine to watch c.
func (c *callCtx) AfterFunc(f func()) (stop func() bool) {
	a := &afterFunc{f: f}
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		go f()
		return func() bool { return false }
	}
	if c.after == nil {
		c.after = make(map[*afterFunc]struct{})
	}
	c.after[a] = struct{}{}
	c.mu.Unlock()
	return func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		if _, ok := c.after[a]; !ok {
			return false
		}
		delete(c.after, a)
		return true
	}
}

// watchConn has conn cut (its deadline set in the past) when c ends, now
// if it has; one connection at a time.
func (c *callCtx) watchConn(conn net.Conn) {
	c.checkParent()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		_ = conn.SetDeadline(aLongTimeAgo)
		return
	}
	c.conn = conn
}

// unwatchConn undoes watchConn; false if c ended meanwhile, when the
// connection's deadline may be set and it is of no further use.
func (c *callCtx) unwatchConn() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.conn = nil
	return c.err == nil
}

// causeOf is context.Cause(ctx), which for a callCtx is its own.
func causeOf(ctx context.Context) error {
	if c, ok := ctx.(*callCtx); ok {
		return c.causeErr()
	}
	return context.Cause(ctx)
}
