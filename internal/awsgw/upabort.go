package awsgw

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"sync"

	"github.com/airlock-dev/airlock/internal/s3err"
)

// An upload that fails (a bad chunk signature or checksum, a digest that
// does not match, a client that goes away or sends less than it declared,
// the grant ending) must leave the upstream's object as it was. Upstreams
// store what they received when the sender ends the body cleanly: some
// (versitygw, on fasthttp) take a FIN after a partial Content-Length body
// as its end. net/http's transport closes the connection with a FIN when a
// request body fails or the request is cancelled. So while an upstream
// request's body is on its way, any failure first resets the connection
// (SO_LINGER 0, then close: an RST, and unsent data is dropped), which
// every server reads as an error, never as an end. Over HTTP/2 the
// transport already resets just the stream (RST_STREAM), which is left to
// it. The body's last byte is held back until it is verified (holdLast),
// so a body that fails its check is never complete upstream either.

// upstreamGuard aborts one upstream request. Its context carries the
// request: it is not cancelled with the call's context directly, but only
// after the connection has been reset, so that the transport's own clean
// close on cancellation never comes first.
type upstreamGuard struct {
	ctx    context.Context
	cancel context.CancelCauseFunc
	stop   func() bool

	mu   sync.Mutex
	conn net.Conn // the request's connection, once the transport has one
	h2   bool     // conn carries HTTP/2: a reset would cut other streams
	// settled is set once the upstream has begun to answer or the call is
	// over: the connection may then be reused by another request and is
	// no longer this request's to reset.
	settled bool
	// aborted is set once abort ran; a connection obtained later is reset
	// at once.
	aborted bool
	// reset is set once the connection was reset.
	reset bool
}

// newUpstreamGuard returns a guard whose ctx carries the upstream request
// for a call whose context is parent: when parent is cancelled (the
// grant ended, the client went away) the connection is reset first.
func newUpstreamGuard(parent context.Context) *upstreamGuard {
	g := &upstreamGuard{}
	ctx, cancel := context.WithCancelCause(context.WithoutCancel(parent))
	g.cancel = cancel
	g.ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		GotConn:              g.gotConn,
		GotFirstResponseByte: g.answered,
	})
	g.stop = context.AfterFunc(parent, func() {
		g.abort()
		cancel(causeOf(parent))
	})
	return g
}

func (g *upstreamGuard) gotConn(info httptrace.GotConnInfo) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.conn = info.Conn
	if tc, ok := info.Conn.(*tls.Conn); ok {
		g.h2 = tc.ConnectionState().NegotiatedProtocol == "h2"
	}
	if g.aborted && !g.settled {
		g.resetLocked()
	}
}

func (g *upstreamGuard) answered() {
	g.mu.Lock()
	g.settled = true
	g.mu.Unlock()
}

// abort resets the request's connection unless the upstream has begun to
// answer; it is called from the transport's goroutine (a body that
// failed) or from the call's cancellation.
func (g *upstreamGuard) abort() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.aborted = true
	if !g.settled {
		g.resetLocked()
	}
}

// resetLocked resets conn while g.mu is held, so that the transport cannot
// meanwhile hand it to another request: the response has not begun, so
// the connection is not back in the transport's pool.
func (g *upstreamGuard) resetLocked() {
	if g.conn == nil || g.h2 || g.reset {
		return
	}
	g.reset = resetConn(g.conn)
}

// release ends the guard once the call is over.
func (g *upstreamGuard) release() {
	g.stop()
	g.mu.Lock()
	g.settled = true
	g.mu.Unlock()
	g.cancel(context.Canceled)
}

// resetConn closes c with a TCP reset instead of a FIN, discarding what
// is still queued to send. It reports whether it could (false: c is not
// TCP underneath, and was just closed).
func resetConn(c net.Conn) bool {
	raw := rawConn(c)
	ok := false
	if l, is := raw.(interface{ SetLinger(int) error }); is {
		ok = l.SetLinger(0) == nil
	}
	// The raw connection, not a TLS one, so that no close_notify alert
	// tells the peer the stream ended cleanly.
	_ = raw.Close()
	return ok
}

// errBodyLength is a body that ended before or went past its declared
// length: a fault of the reader chain (which checks lengths itself), made
// an abort rather than a clean end all the same.
var errBodyLength = s3err.New(s3err.IncompleteBody, "You did not provide the number of bytes specified by the Content-Length HTTP header")

// abortingBody is the upstream request body: any failure to read it, and
// any end at the wrong length, aborts the upstream request before the
// transport sees the error. With a declared length, the body's last byte
// is handed out only once the reader underneath has ended right there:
// the transport stops reading at the declared length, and an upstream
// that has that many bytes has a complete body, so a body that would go
// on (and fail its check later) must fail before that byte.
type abortingBody struct {
	r    io.Reader
	g    *upstreamGuard
	want int64 // the declared length; -1 unknown
	n    int64
	eof  bool

	mu  sync.Mutex
	err error
}

// maxEmptyReads bounds a reader that keeps returning nothing.
const maxEmptyReads = 100

func (b *abortingBody) Read(p []byte) (int, error) {
	if err := b.failed(); err != nil {
		return 0, err
	}
	if b.eof {
		return 0, io.EOF
	}
	if len(p) == 0 {
		return 0, nil
	}
	if b.want < 0 {
		n, err := b.r.Read(p)
		b.n += int64(n)
		if err != nil && err != io.EOF {
			// Whatever came with the error goes nowhere: the request is
			// being aborted.
			return 0, b.fail(err)
		}
		b.eof = err == io.EOF
		return n, err
	}
	left := b.want - b.n
	if left == 0 {
		// An empty declared body: it must end at once.
		if err := b.confirmEnd(); err != nil {
			return 0, b.fail(err)
		}
		b.eof = true
		return 0, io.EOF
	}
	// Up to the declared end, never past it. A read that does not reach
	// the end goes out as it is; one that does is handed out only once
	// the end is confirmed below. The body's end is not read apart from
	// the rest: a read one byte short and then the last byte alone took,
	// per upload, a read from the client and two writes upstream (one of
	// a single byte) more than the body needs, and woke the upstream
	// for each.
	var n int
	var err error
	for range maxEmptyReads {
		if n, err = b.r.Read(p[:min(int64(len(p)), left)]); n > 0 || err != nil {
			break
		}
	}
	switch {
	case err != nil && err != io.EOF:
		// Whatever came with the error goes nowhere.
		return 0, b.fail(err)
	case n == 0 && err == nil:
		return 0, b.fail(io.ErrNoProgress)
	case int64(n) < left && err == io.EOF:
		return 0, b.fail(errBodyLength) // ended short
	case int64(n) < left:
		b.n += int64(n)
		return n, nil
	case err == nil:
		// The read reached the declared length: the reader underneath
		// must end right there (its checks done, see holdLast) before
		// any of it goes out.
		if err := b.confirmEnd(); err != nil {
			return 0, b.fail(err)
		}
	}
	b.n += int64(n)
	b.eof = true
	return n, io.EOF
}

// confirmEnd reads on until the reader underneath ends, which it must
// do without another byte.
func (b *abortingBody) confirmEnd() error {
	var one [1]byte
	for range maxEmptyReads {
		n, err := b.r.Read(one[:])
		switch {
		case n > 0:
			return errBodyLength // more than declared
		case err == io.EOF:
			return nil
		case err != nil:
			return err
		}
	}
	return io.ErrNoProgress
}

func (b *abortingBody) fail(err error) error {
	b.g.abort()
	b.mu.Lock()
	if b.err == nil {
		b.err = err
	}
	err = b.err
	b.mu.Unlock()
	return err
}

// failed is the error that aborted the body, if any.
func (b *abortingBody) failed() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.err
}

func (b *abortingBody) Close() error { return nil }

// guardBody makes req's body abort the upstream request on failure.
func (g *upstreamGuard) guardBody(req *http.Request) *abortingBody {
	if req.Body == nil || req.Body == http.NoBody {
		return nil
	}
	b := &abortingBody{r: req.Body, g: g, want: req.ContentLength}
	if req.ContentLength == 0 {
		b.want = -1 // unknown (NewRequest's 0 for a reader it does not know)
	}
	req.Body = b
	return b
}
