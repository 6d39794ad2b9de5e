package awsgw

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/airlock-dev/airlock/internal/clock"
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
	clk    clock.Clock
	after  time.Duration
	cancel context.CancelCauseFunc
	// timers, if not nil, lends the watch a timer kept from earlier calls
	// (the gateway's, all of one clock).
	timers *sync.Pool
	mu     sync.Mutex
	timer  clock.Timer
	kept   *keptTimer // timer's keeper, when it came from timers
	done   bool       // answered or given up: start does nothing
}

// keptTimer is a timer kept across calls, armed for one watch at a time.
// Nearly every watch is stopped long before its timer would fire, and a
// timer of its own (the timer and the function it runs) was two of a
// call's allocations: a timer stopped in time is reset for the next call
// instead. One whose function has started is never reused.
type keptTimer struct {
	t     clock.Timer
	reset func(time.Duration) bool // t's Reset
	mu    sync.Mutex
	w     *answerWatch // the watch it is armed for; nil between calls
}

func (k *keptTimer) fire() {
	k.mu.Lock()
	w := k.w
	k.w = nil
	k.mu.Unlock()
	if w != nil {
		w.fire()
	}
}

// arm points k at w (k's timer is stopped: nothing else reads k.w now).
func (k *keptTimer) arm(w *answerWatch) {
	k.mu.Lock()
	k.w = w
	k.mu.Unlock()
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
	if w.timers == nil {
		w.timer = w.clk.AfterFunc(w.after, w.fire)
		return
	}
	k, _ := w.timers.Get().(*keptTimer)
	if k != nil {
		k.arm(w)
		k.reset(w.after)
	} else {
		k = &keptTimer{w: w}
		k.t = w.clk.AfterFunc(w.after, k.fire)
		if r, ok := k.t.(interface{ Reset(time.Duration) bool }); ok {
			k.reset = r.Reset
		}
	}
	w.timer, w.kept = k.t, k
}

func (w *answerWatch) fire() { w.cancel(errUpstreamSilent) }

// stop disarms the watch: the round trip has returned.
func (w *answerWatch) stop() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.done = true
	if w.timer == nil {
		return
	}
	// Stop reports true only if the function has not started (and will
	// not, until the timer is armed again): then the timer is free for
	// another call.
	if w.timer.Stop() && w.kept != nil && w.kept.reset != nil {
		w.kept.arm(nil)
		w.timers.Put(w.kept)
	}
	w.kept = nil
}
