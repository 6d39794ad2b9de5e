package awsgw

import (
	"context"
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
//     read deadline in the past, so the read fails now.
//   - A download may be blocked writing to a slow reader, and what it
//     already wrote sits in the server's and the kernel's send buffers
//     (megabytes on a fast link), which a FIN would still deliver. The cut
//     sets a write deadline in the past, waking the write, and the handler
//     then takes the connection over and resets it: the unsent bytes are
//     dropped. The result counts the bytes the client's TCP stack had
//     acknowledged, where the kernel tells (Linux), not the bytes handed
//     to the connection.
//
// Over HTTP/2 the connection is shared with other calls: only the stream
// is reset (http.ErrAbortHandler).

// aLongTimeAgo is a deadline that has passed.
var aLongTimeAgo = time.Unix(1, 0)

// clientCut watches the client's side of one call.
type clientCut struct {
	rc   *http.ResponseController
	stop func() bool

	mu        sync.Mutex
	cut       bool // the session ended: deadlines were set
	streaming bool // the response has begun: a cut stops writes too
	done      bool // the handler is done with the connection
}

// armClientCut makes the session's end (ctx's cancellation with a cut
// cause) fail the client's reads, and writes once the response streams.
func armClientCut(ctx context.Context, w http.ResponseWriter) *clientCut {
	cc := &clientCut{rc: http.NewResponseController(w)}
	cc.stop = context.AfterFunc(ctx, func() {
		if cutError(ctx) == nil {
			return // the client went away: nothing to cut
		}
		cc.mu.Lock()
		defer cc.mu.Unlock()
		if cc.done {
			return
		}
		cc.cut = true
		_ = cc.rc.SetReadDeadline(aLongTimeAgo)
		if cc.streaming {
			_ = cc.rc.SetWriteDeadline(aLongTimeAgo)
		}
	})
	return cc
}

// streamNow says the response's headers are out: from now on a cut also
// stops writes (before, the cut's own answer still has to be written).
func (cc *clientCut) streamNow() {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	cc.streaming = true
	if cc.cut {
		_ = cc.rc.SetWriteDeadline(aLongTimeAgo)
	}
}

// disarm stops watching, once the handler is done with the connection,
// and reports whether a cut came first (its deadlines then stand).
func (cc *clientCut) disarm() bool {
	cc.stop()
	cc.mu.Lock()
	defer cc.mu.Unlock()
	cc.done = true
	return cc.cut
}

// kill resets the client's connection after a cut, on the handler's
// goroutine. written is the body bytes the handler wrote; the result is
// the bytes the client received, as well as can be told, and whether the
// connection could be taken over (false over HTTP/2).
func (cc *clientCut) kill(written int64) (int64, bool) {
	cc.disarm()
	conn, _, err := cc.rc.Hijack()
	if err != nil {
		return written, false
	}
	delivered := written
	if q, ok := unacked(rawConn(conn)); ok {
		delivered = max(0, written-q)
	}
	resetConn(conn)
	return delivered, true
}

// rawConn is the connection under any TLS layers.
func rawConn(c net.Conn) net.Conn {
	for {
		u, ok := c.(interface{ NetConn() net.Conn })
		if !ok {
			return c
		}
		c = u.NetConn()
	}
}
