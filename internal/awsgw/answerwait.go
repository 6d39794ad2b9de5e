package awsgw

import (
	"context"
	"errors"
	"sync"
	"time"
)

// An upstream that takes a request and never answers (overloaded, hung,
// a network path that drops everything after the handshake) held the
// call, its goroutine, its upstream connection and the client's
// connection until the grant ended, hours later; a client without a
// timeout of its own waited as long. Once the upstream has the whole
// request (its body read to the end, or at once for a call without one),
// it now has upstreamAnswerTime to send its answer's status and headers;
// past that the request is cancelled and the client gets 503
// ServiceUnavailable, which the SDKs retry. The bound is generous: S3
// itself answers even a long CompleteMultipartUpload or CopyObject at
// once (and then keeps the connection alive), and the SDKs' own read
// timeouts are a minute or less where they have one. Other services get
// serviceAnswerTime, past the longest synchronous answer of an AWS API
// (a Lambda invocation, up to 15 minutes). An answer that has started is
// not bounded here: its client decides how long to wait.
const (
	// upstreamAnswerTime is how long an S3 upstream may take to start
	// its answer once it has the whole request.
	upstreamAnswerTime = 5 * time.Minute
	// serviceAnswerTime is the same for the other services.
	serviceAnswerTime = 16 * time.Minute
)

// errUpstreamSilent is the cause of a request cancelled by answerWatch.
var errUpstreamSilent = errors.New("the upstream sent no answer in time")

// answerWatch cancels one upstream request if its answer has not started
// within after of the request being sent whole (start).
type answerWatch struct {
	after  time.Duration
	cancel causeCanceler
	// timers lends the watch a timer kept from earlier calls (the
	// gateway's, timers.go).
	timers *timerPool
	mu     sync.Mutex
	timer  *keptTimer
	done   bool // answered or given up: start does nothing
}

// silence is the result's error for a call given up by its watch.
func (w *answerWatch) silence() string {
	return "upstream: the upstream sent no answer within " + w.after.String()
}

// start arms the watch: the request is whole upstream. Called at most
// once per request that matters; later calls do nothing.
func (w *answerWatch) start() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.done || w.timer != nil {
		return
	}
	w.timer = w.timers.start(w.after, w)
}

// timerFired gives up on the answer: its timer has run.
func (w *answerWatch) timerFired() { w.cancel.cancelCause(errUpstreamSilent) }

// causeCanceler cancels a request's context with a cause: a call's
// callCtx, or a context.CancelCauseFunc as cancelFunc.
type causeCanceler interface{ cancelCause(error) }

// cancelFunc is a context.CancelCauseFunc as a causeCanceler.
type cancelFunc context.CancelCauseFunc

func (f cancelFunc) cancelCause(cause error) { f(cause) }

// handOff disarms the watch, as stop does, once the round trip has
// returned, but offers its timer to the call's stall watch (cc), which
// resets it when the answer streams, rather than stopping it for the
// pool and taking it, or another, back from there a few microseconds
// later: one timer serves both watches of a call (bench/HISTORY.md, "S3
// GET 1 KiB: one pass over the x-amz-* headers, one timer for both
// watches, one clock read less"). The timer's function does nothing
// while it is on offer. Where cc takes no timer from the watch's pool
// (another clock) or watches no answer, it is stop.
func (w *answerWatch) handOff(cc *clientCut) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.done = true
	k := w.timer
	if k == nil {
		return
	}
	w.timer = nil
	if cc.stallTimers != w.timers || !cc.offerTimer(k) {
		w.timers.stop(k)
	}
}

// stop disarms the watch: the round trip has returned.
func (w *answerWatch) stop() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.done = true
	if w.timer == nil {
		return
	}
	w.timers.stop(w.timer)
	w.timer = nil
}
