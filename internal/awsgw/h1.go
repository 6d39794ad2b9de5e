package awsgw

import (
	"bufio"
	"cmp"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"time"
)

// h1Transport sends the calls that carry no body (GET, HEAD) to a
// plain-HTTP upstream itself, on the calling goroutine, over connections
// of its own; it hands every other request to next.
//
// Why: net/http's Transport runs two goroutines per connection and passes
// each request and its answer between them and the caller over channels;
// a small read (S3 GetObject of a few KiB) through the gateway then
// spends more CPU on those hand-offs than on the request itself. Here the
// caller writes the request and reads the answer, and the connection
// goes back to the pool when the answer's body has been read to its end.
// Writes and bodies stay with net/http's Transport: its handling of
// request bodies (Expect, a body cut short, a reset on failure) is what
// the upload paths rely on.
//
// A connection is reused only after an answer read whole with nothing
// read past its end; an answer closed early, or failed, closes it. A request on a reused connection
// that fails before any answer (the upstream closed it while idle) is
// sent once more on a new one: it has no body and cannot change state.
type h1Transport struct {
	next *http.Transport
	// dial opens connections (next's DialContext).
	dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// maxIdle bounds the idle connections kept per host; idleTimeout is
	// how long one may wait for its next request.
	maxIdle     int
	idleTimeout time.Duration
	// maxHeader bounds an answer's header section.
	maxHeader int64
	bufSize   int

	mu   sync.Mutex
	idle map[string][]*h1Conn // by host:port, most recently used last
	// sweeping is set while a sweep is scheduled: one timer for the
	// whole pool closes the connections idle too long, so that none is
	// held open (or half-closed by the upstream) for ever once the calls
	// stop.
	sweeping bool
}

// h1Conn is one upstream connection of h1Transport.
type h1Conn struct {
	t      *h1Transport
	key    string
	conn   net.Conn
	lim    limitedConn // what br reads from: conn, bounded while headers are read
	br     *bufio.Reader
	bw     *bufio.Writer
	head   []byte // a request's head, put together (writeRequest)
	idleAt time.Time
	// cut fails the connection's reads and writes at once, for a
	// request's context other than a call's own (callCtx, which cuts the
	// connection itself) to run when it ends: made with the connection,
	// not for each round trip on it.
	cut func()
}

// limitedConn reads from a connection at most n bytes (n < 0: no bound).
type limitedConn struct {
	c net.Conn
	n int64
}

// errHeaderTooLarge is an answer whose header section exceeds maxHeader.
var errHeaderTooLarge = errors.New("awsgw: the upstream's response header section is too large")

func (l *limitedConn) Read(p []byte) (int, error) {
	if l.n < 0 {
		return l.c.Read(p)
	}
	if l.n == 0 {
		return 0, errHeaderTooLarge
	}
	if int64(len(p)) > l.n {
		p = p[:l.n]
	}
	n, err := l.c.Read(p)
	l.n -= int64(n)
	return n, err
}

// newH1Transport wraps next, whose dialer, buffer sizes and idle bounds
// it takes. Requests go to next when it has a proxy or TLS settings that
// h1Transport does not apply (it applies neither).
func newH1Transport(next *http.Transport) *h1Transport {
	t := &h1Transport{
		next:        next,
		dial:        next.DialContext,
		maxIdle:     next.MaxIdleConnsPerHost,
		idleTimeout: next.IdleConnTimeout,
		maxHeader:   next.MaxResponseHeaderBytes,
		bufSize:     next.ReadBufferSize,
		idle:        map[string][]*h1Conn{},
	}
	if t.dial == nil {
		t.dial = (&net.Dialer{}).DialContext
	}
	if t.maxIdle <= 0 {
		t.maxIdle = http.DefaultMaxIdleConnsPerHost
	}
	if t.maxHeader <= 0 {
		t.maxHeader = 10 << 20 // net/http's default
	}
	if t.bufSize <= 0 {
		t.bufSize = 4 << 10
	}
	return t
}

// ours reports whether h1Transport sends req itself.
func (t *h1Transport) ours(req *http.Request) bool {
	return req.URL.Scheme == "http" && t.next.Proxy == nil &&
		(req.Method == http.MethodGet || req.Method == http.MethodHead) &&
		(req.Body == nil || req.Body == http.NoBody) && req.ContentLength == 0 &&
		!req.Close && firstValue(req.Header, "Expect") == "" && firstValue(req.Header, "Upgrade") == ""
}

// RoundTrip implements http.RoundTripper.
func (t *h1Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if !t.ours(req) {
		return t.next.RoundTrip(req)
	}
	ctx := req.Context()
	if err := ctx.Err(); err != nil {
		return nil, causeOf(ctx)
	}
	key := req.URL.Host
	if req.URL.Port() == "" {
		key = net.JoinHostPort(req.URL.Hostname(), "80")
	}
	for attempt := 0; ; attempt++ {
		var pc *h1Conn
		reused := false
		if attempt == 0 { // a retry dials: the other idle ones may be as stale
			pc, reused = t.get(key)
		}
		if pc == nil {
			c, err := t.dial(ctx, "tcp", key)
			if err != nil {
				if ctx.Err() != nil {
					return nil, causeOf(ctx)
				}
				return nil, err
			}
			pc = t.newConn(key, c)
		}
		resp, err := pc.roundTrip(ctx, req)
		if err == nil {
			return resp, nil
		}
		if ctx.Err() != nil {
			return nil, causeOf(ctx)
		}
		if !reused || attempt > 0 {
			return nil, err
		}
		// A connection the upstream closed while it was idle: once more,
		// on a new one.
	}
}

func (t *h1Transport) newConn(key string, c net.Conn) *h1Conn {
	pc := &h1Conn{t: t, key: key, conn: c}
	pc.lim = limitedConn{c: c, n: -1}
	pc.br = bufio.NewReaderSize(&pc.lim, t.bufSize)
	pc.bw = bufio.NewWriterSize(c, t.bufSize)
	pc.cut = func() { _ = c.SetDeadline(aLongTimeAgo) }
	return pc
}

// get takes an idle connection to key, if there is one still fresh.
func (t *h1Transport) get(key string) (*h1Conn, bool) {
	now := time.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	for {
		l := t.idle[key]
		if len(l) == 0 {
			return nil, false
		}
		pc := l[len(l)-1]
		l[len(l)-1] = nil
		t.idle[key] = l[:len(l)-1]
		if t.idleTimeout > 0 && now.Sub(pc.idleAt) > t.idleTimeout {
			go pc.conn.Close() // the oldest are further down: they go as they come up
			continue
		}
		return pc, true
	}
}

// put returns a connection whose answer was read whole to the pool.
func (t *h1Transport) put(pc *h1Conn) {
	pc.idleAt = time.Now()
	t.mu.Lock()
	l := t.idle[pc.key]
	if len(l) < t.maxIdle {
		t.idle[pc.key] = append(l, pc)
		pc = nil
		if !t.sweeping && t.idleTimeout > 0 {
			t.sweeping = true
			time.AfterFunc(t.idleTimeout, func() { t.sweep(time.Now()) })
		}
	}
	t.mu.Unlock()
	if pc != nil {
		pc.conn.Close()
	}
}

// sweep closes the connections idle for longer than idleTimeout at now,
// and schedules the next sweep while any are left.
func (t *h1Transport) sweep(now time.Time) {
	var old []*h1Conn
	t.mu.Lock()
	next := time.Duration(-1) // until the oldest one left expires
	for key, l := range t.idle {
		// Most recently used last: the expired ones are a prefix.
		i := 0
		for i < len(l) && now.Sub(l[i].idleAt) > t.idleTimeout {
			i++
		}
		old = append(old, l[:i]...)
		if i == len(l) {
			delete(t.idle, key)
			continue
		}
		t.idle[key] = append(l[:0], l[i:]...)
		clear(l[len(l)-i:])
		if d := t.idleTimeout - now.Sub(l[0].idleAt); next < 0 || d < next {
			next = d
		}
	}
	t.sweeping = next >= 0
	if t.sweeping {
		time.AfterFunc(next+time.Millisecond, func() { t.sweep(time.Now()) })
	}
	t.mu.Unlock()
	for _, pc := range old {
		pc.conn.Close()
	}
}

// CloseIdleConnections closes the idle connections of both transports.
func (t *h1Transport) CloseIdleConnections() {
	t.mu.Lock()
	idle := t.idle
	t.idle = map[string][]*h1Conn{}
	t.mu.Unlock()
	for _, l := range idle {
		for _, pc := range l {
			pc.conn.Close()
		}
	}
	t.next.CloseIdleConnections()
}

// roundTrip sends req on pc and reads its answer's header. On error pc
// is closed.
func (pc *h1Conn) roundTrip(ctx context.Context, req *http.Request) (*http.Response, error) {
	// Cancelling ctx fails the connection's reads and writes at once; the
	// connection is then closed, never reused. A call's own context cuts
	// it itself, with no registration to allocate (callCtx.watchConn).
	cc, _ := ctx.(*callCtx)
	var stop func() bool
	if cc != nil {
		cc.watchConn(pc.conn)
	} else {
		stop = context.AfterFunc(ctx, pc.cut)
	}
	fail := func(err error) (*http.Response, error) {
		if cc != nil {
			cc.unwatchConn()
		} else {
			stop()
		}
		pc.conn.Close()
		return nil, err
	}
	if err := writeRequest(pc.bw, req, &pc.head); err != nil {
		return fail(err)
	}
	if err := pc.bw.Flush(); err != nil {
		return fail(err)
	}
	pc.lim.n = pc.t.maxHeader
	var resp *http.Response
	for {
		var err error
		resp, err = http.ReadResponse(pc.br, req)
		if err != nil {
			return fail(err)
		}
		// An informational answer (103 Early Hints) precedes the real one.
		if resp.StatusCode >= 200 || resp.StatusCode == http.StatusSwitchingProtocols {
			break
		}
	}
	// The bound is on the header section; the body's length is the
	// framing's (Content-Length or chunked), read as the caller reads.
	pc.lim.n = -1
	if resp.StatusCode == http.StatusSwitchingProtocols {
		return fail(errors.New("awsgw: the upstream switched protocols on a request that asked for none"))
	}
	b := &h1Body{pc: pc, body: resp.Body, stop: stop, watch: cc, reuse: !resp.Close}
	if resp.ContentLength > 0 && len(resp.TransferEncoding) == 0 && req.Method != http.MethodHead {
		// net/http's body for a declared length reads from br, which
		// nothing has read from yet: the gateway's own reads the same
		// bytes and can hand its middle to the kernel (splice.go). It is
		// held in the h1Body, where it was an allocation of its own.
		tc, _ := rawConn(pc.conn).(*net.TCPConn)
		b.fixed = fixedBody{br: pc.br, conn: tc, n: resp.ContentLength}
		b.body = &b.fixed
	}
	resp.Body = b
	return resp, nil
}

// h1Body is an answer's body on an h1Conn: read whole, it gives the
// connection back to the pool; closed early or failed, it closes it. One
// goroutine reads it and closes it, as the gateway does.
type h1Body struct {
	pc   *h1Conn
	body io.ReadCloser
	stop func() bool
	// watch is the call's context that cuts pc, if it does (then stop
	// is nil).
	watch *callCtx
	reuse bool
	done  bool
	err   error // what Read returns once done
	// fixed is what body points to for an answer of declared length.
	fixed fixedBody
}

func (b *h1Body) Read(p []byte) (int, error) {
	if b.done {
		return 0, b.err
	}
	n, err := b.body.Read(p)
	switch {
	case err == io.EOF:
		b.finish(true, io.EOF)
	case err != nil:
		b.finish(false, err)
	}
	return n, err
}

// spliceTo moves the middle of a body of declared length to dst (see
// splice.go); a failure closes the connection, as a failed Read does.
func (b *h1Body) spliceTo(dst io.ReaderFrom) (int64, error, error) {
	sp, ok := b.body.(splicer)
	if b.done || !ok {
		return 0, nil, nil
	}
	n, rerr, werr := sp.spliceTo(dst)
	if err := cmp.Or(rerr, werr); err != nil {
		b.finish(false, err)
	}
	return n, rerr, werr
}

// Close closes the connection unless the body was read whole.
func (b *h1Body) Close() error {
	if !b.done {
		b.finish(false, errors.New("http: read on closed response body"))
	}
	return nil
}

func (b *h1Body) finish(whole bool, err error) {
	b.done, b.err = true, err
	// stop reports false once the context was cancelled: its deadline may
	// be set on the connection, which is then no longer of use.
	var kept bool
	if b.watch != nil {
		kept = b.watch.unwatchConn()
	} else {
		kept = b.stop()
	}
	// Bytes already read past the answer's end are none the next call
	// asked for: a body sent for a HEAD or a 204, a second answer behind
	// the first (a desynchronised or hostile upstream). Read as the next
	// call's answer, they would answer that call, another agent's
	// perhaps, with this one's bytes; net/http's Transport closes such a
	// connection too ("Unsolicited response received on idle HTTP
	// channel"). FuzzH1Transport.
	if kept && whole && b.reuse && b.pc.br.Buffered() == 0 {
		b.pc.t.put(b.pc)
	} else {
		b.pc.conn.Close()
	}
	b.pc = nil
}
