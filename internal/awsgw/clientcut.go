package awsgw

import (
	"context"
	"io"
	"net"
	"net/http"
	"sync"
	"time"
)

// When a grant ends while its transfer is under way, the client must stop
// at once, whatever it is doing:
//
//   - An upload's body is read on the transport's goroutine, which the
//     transport waits for before it gives up on a request; a client that
//     sends slowly (or not at all) would hold the call. The cut sets a
//     read deadline in the past, so the read fails now, and the cut's
//     answer is written.
//   - A download may be blocked writing to a slow reader, and what it
//     already wrote sits in the kernel's send buffer (megabytes on a fast
//     link), which a FIN after it would still deliver. The cut resets the
//     connection (SO_LINGER 0, then close): the unsent bytes are dropped
//     and the blocked write fails. The result counts the bytes that went
//     out on the wire, where the kernel tells (Linux), not the bytes
//     handed to the connection: the client cannot have more (nor, short
//     of the few still in flight, less).
//
// Resetting needs the connection itself, which net/http gives a handler
// only through the server's ConnContext hook (see ConnContext). Without
// it, the cut sets a write deadline in the past instead: the gateway
// stops writing at once and net/http closes the connection, but the
// kernel may still deliver what it holds. Over HTTP/2 the connection is
// shared with other calls: only the stream is reset (the handler ends
// with http.ErrAbortHandler).

// connKey is the context key of the client's connection.
type connKey struct{}

// ConnContext is for the ConnContext field of the http.Server that serves
// the gateway: it lets a cut reset the client's connection, dropping what
// the kernel has not sent yet, rather than close it.
func ConnContext(ctx context.Context, c net.Conn) context.Context {
	return context.WithValue(ctx, connKey{}, c)
}

// aLongTimeAgo is a deadline that has passed.
var aLongTimeAgo = time.Unix(1, 0)

// clientCut watches the client's side of one call.
type clientCut struct {
	w    http.ResponseWriter
	rc   http.ResponseController // w's, held by value: no allocation per call
	conn net.Conn                // the client's HTTP/1 connection, if the server tells it
	stop func() bool             // armClientCut's watch, if it made one
	// counted is the reader completing returns (once per call)
	counted answerCounter

	mu        sync.Mutex
	cut       bool  // the session ended
	streaming bool  // the response has begun: a cut ends the connection
	killed    bool  // conn was reset
	unsent    int64 // bytes the reset dropped unsent
	done      bool  // the handler is done with the connection
	// The stall watch (idle.go): its timer, the client's progress at
	// its last look (if it looked), whether it found the client stalled,
	// and whether the handler is done with it. stallTimers lends the
	// timer (the gateway's); without it, answers are not watched.
	stallTimers *timerPool
	stallTimer  *keptTimer
	// spare is the call's answer watch's timer, released for the stall
	// watch to take (offerTimer), or nil.
	spare     *keptTimer
	lastAcked uint64
	looked    bool
	stall     bool
	idleEnded bool
}

// armClientCut makes the session's end (ctx's cancellation with a cut
// cause) fail the client's reads, and end the connection once the
// response streams.
func armClientCut(ctx context.Context, w http.ResponseWriter, r *http.Request, stallTimers *timerPool) *clientCut {
	cc := newClientCut(w, r, stallTimers)
	cc.stop = context.AfterFunc(ctx, func() { cc.fire(ctx) })
	return cc
}

// newClientCut watches nothing by itself: its owner calls fire when the
// call's context is cancelled (the S3 path does so from the session's
// own watch, sparing a context registration per call).
func newClientCut(w http.ResponseWriter, r *http.Request, stallTimers *timerPool) *clientCut {
	cc := new(clientCut)
	cc.init(w, r, stallTimers)
	return cc
}

// init sets up a zero clientCut in place, for one held in a larger
// struct (exchange); its stall watch takes its timer from stallTimers.
func (cc *clientCut) init(w http.ResponseWriter, r *http.Request, stallTimers *timerPool) {
	cc.w, cc.rc, cc.stallTimers = w, *http.NewResponseController(w), stallTimers
	if c, ok := r.Context().Value(connKey{}).(net.Conn); ok && r.ProtoMajor == 1 {
		cc.conn = c
	}
}

// controller is the response's controller.
func (cc *clientCut) controller() *http.ResponseController { return &cc.rc }

// fire acts on ctx's cancellation: a cut (the session ended) fails the
// client's reads now, and ends the connection if the response streams; a
// client that went away needs nothing. Calling it again does nothing new.
func (cc *clientCut) fire(ctx context.Context) {
	if cutError(ctx) == nil {
		return // the client went away: nothing to cut
	}
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if cc.done || cc.cut {
		return
	}
	cc.cut = true
	_ = cc.controller().SetReadDeadline(aLongTimeAgo)
	if cc.streaming {
		cc.endLocked()
	}
}

// streamNow says the response's headers are out: from now on a cut ends
// the connection (before, the cut's own answer still has to be written).
func (cc *clientCut) streamNow() {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	cc.streaming = true
	if cc.cut {
		cc.endLocked()
		return
	}
	cc.watchStallLocked()
}

// endLocked resets the connection if it can, and otherwise makes every
// write fail from now on.
func (cc *clientCut) endLocked() {
	if cc.conn != nil && !cc.killed {
		raw := rawConn(cc.conn)
		if l, ok := raw.(interface{ SetLinger(int) error }); ok && l.SetLinger(0) == nil {
			q, _ := unsent(raw)
			_ = raw.Close()
			cc.killed, cc.unsent = true, q
			return
		}
	}
	_ = cc.controller().SetWriteDeadline(aLongTimeAgo)
}

// disarm stops watching, once the handler is done with the connection,
// and reports whether a cut came first.
func (cc *clientCut) disarm() bool {
	if cc.stop != nil {
		cc.stop()
	}
	cc.mu.Lock()
	defer cc.mu.Unlock()
	cc.done = true
	return cc.cut
}

// delivered is how many of the written body bytes went out to the
// client: all of them unless the reset dropped some unsent.
func (cc *clientCut) delivered(written int64) int64 {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if !cc.killed {
		return written
	}
	return max(0, written-cc.unsent)
}

// rawConn is the connection under any TLS or other wrapping layers that
// tell what they wrap.
func rawConn(c net.Conn) net.Conn {
	for {
		u, ok := c.(interface{ NetConn() net.Conn })
		if !ok {
			return c
		}
		c = u.NetConn()
	}
}

// splicer is w as the destination of a splice (splice.go), or nil when
// the client's connection cannot take one: not HTTP/1 over plain TCP
// (the server's ConnContext tells), or w is not net/http's own.
func (cc *clientCut) splicer(w http.ResponseWriter) io.ReaderFrom {
	if cc.conn == nil {
		return nil
	}
	if _, ok := cc.conn.(io.ReaderFrom); !ok {
		return nil // TLS, or a wrapping that does not pass splices on
	}
	rf, _ := w.(io.ReaderFrom)
	return rf
}

// flush flushes the response, for a copy that flushes every write.
func (cc *clientCut) flush() error { return cc.controller().Flush() }

// completing wraps src, an answer of want bytes that is copied to the
// client with a flush after every write, so that the flush sending its
// last bytes disarms the cut first. That flush completes the answer for
// the client, which may then send its next call, of another grant, on
// this connection at once: a session that ended between that flush and
// the handler's own disarm would otherwise reset the connection under
// the next call. After, if not nil, runs once that flush has returned
// (a test's hook).
func (cc *clientCut) completing(src io.Reader, want int64, after func()) (io.Reader, func() error) {
	cc.counted = answerCounter{r: src} // in the cut, which is on the heap already
	counted := &cc.counted
	return counted, func() error {
		if counted.n < want {
			return cc.flush()
		}
		cc.disarm()
		err := cc.flush()
		if after != nil {
			after()
		}
		return err
	}
}
