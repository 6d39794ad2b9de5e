package awsgw

import (
	"errors"
	"io"
	"net/http"
	"os"
	"time"

	"github.com/airlock-dev/airlock/internal/s3err"
)

// A client that stops in the middle of a transfer must not hold the call
// for as long as its grant lasts. The gateway's server has no ReadTimeout
// or WriteTimeout, since uploads and downloads stream for as long as they
// take, so without a bound of its own a grant holder whose client stopped
// reading an answer, or stopped sending a body it declared, held the
// call's goroutine and its upstream request (an open GetObject or
// PutObject at the upstream) until the grant ended, and could open as many
// such calls as the connection caps let it.
//
//   - Each read of an upload's body may wait clientIdleTime (S3 itself
//     gives up on an upload idle for about 20 seconds). A stalled upload
//     is aborted upstream (upabort.go), so nothing is stored, and the
//     client is answered with S3's RequestTimeout. So are the bodies read
//     whole after the signature is checked and before the call is
//     forwarded (DeleteObjects' key list, a service call's parameters).
//   - An answer is watched instead: a write deadline would bound how long
//     the kernel takes to make room in the send buffer, which on a fast
//     link can be megabytes, not how long the client has not read. Every
//     clientIdleTime the watch asks the kernel how many bytes the client
//     has acknowledged (TCP_INFO, Linux); if none since the last look
//     while the gateway has bytes waiting for it, the client has stopped
//     reading: its connection is reset (as a cut resets it, clientcut.go),
//     the call ends and its result says so. A client that reads slowly
//     but steadily is never cut. Where the kernel cannot tell (other
//     systems, a server without ConnContext), answers are not watched.

// clientIdleTime is how long one read of the client's body may wait, and
// how long the client may leave an answer unread (a var for tests).
var clientIdleTime = time.Minute

// codeRequestTimeout is S3's code for an upload left idle.
const codeRequestTimeout = "RequestTimeout"

// errRequestTimeout is the answer to an upload whose client stopped
// sending its body.
func errRequestTimeout() *s3err.Error {
	return s3err.Detailed(codeRequestTimeout, "Your socket connection to the server was not read from or written to within the timeout period. Idle connections will be closed.",
		"no byte of the body arrived for %s", clientIdleTime)
}

// stalledReader is the result's error for an answer the client stopped
// reading.
func stalledReader() string {
	return "client stopped reading the answer for " + clientIdleTime.String()
}

// idleBody is the client's body as the upstream request reads it: each
// read may wait clientIdleTime. The bound ends with the body: when a read
// reaches its end, net/http lifts the read deadline itself as it starts
// reading the connection in the background (to notice a client that goes
// away), so a call whose upstream is still at work after the body (a
// CompleteMultipartUpload of many parts) is not cancelled.
//
// A body read before the call is forwarded (DeleteObjects' key list, a
// service call's parameters), when no cut is armed yet, sets the deadline
// through rc instead.
type idleBody struct {
	r  io.Reader
	cc func() *clientCut        // the call's cut once armed: a forwarded body
	rc *http.ResponseController // a body read before any cut is armed
}

func (b *idleBody) Read(p []byte) (int, error) {
	deadline := time.Now().Add(clientIdleTime)
	var cc *clientCut
	if b.cc != nil {
		cc = b.cc()
	}
	switch {
	case cc != nil:
		cc.idleRead(deadline)
	case b.rc != nil:
		_ = b.rc.SetReadDeadline(deadline)
	}
	n, err := b.r.Read(p)
	if err != nil && errors.Is(err, os.ErrDeadlineExceeded) && (cc == nil || !cc.wasCut()) {
		return n, errRequestTimeout()
	}
	return n, err
}

// idleRead sets the client's read deadline to t for the idle bound, unless the call was cut, whose deadline stays, or the
// handler is done with the connection, which net/http then reads with
// deadlines of its own.
func (cc *clientCut) idleRead(t time.Time) {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if cc.cut || cc.done || cc.idleEnded {
		return
	}
	_ = cc.controller().SetReadDeadline(t)
}

// wasCut reports whether the session's end cut the call.
func (cc *clientCut) wasCut() bool {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	return cc.cut
}

// watchStallLocked starts the stall watch, once the answer streams. It
// costs a call no system call: the first look only notes the client's
// progress, so a stall is found within two periods of clientIdleTime. Its
// timer is kept from an earlier call's watch that ended before looking
// (timers.go): nearly every answer is done within clientIdleTime.
func (cc *clientCut) watchStallLocked() {
	if cc.conn == nil || cc.stallTimer != nil || cc.idleEnded || cc.stallTimers == nil {
		return
	}
	if k := cc.spare; k != nil {
		cc.spare = nil
		if k.take(clientIdleTime, cc) {
			cc.stallTimer = k
			return
		}
		cc.stallTimers.stop(k)
	}
	cc.stallTimer = cc.stallTimers.start(clientIdleTime, cc)
}

// offerTimer gives the stall watch k, a timer of its pool that the
// call's answer watch no longer needs, still armed: the watch resets it
// rather than taking one from the pool, and endIdle stops it if the
// watch never starts. It reports false, keeping nothing, for a call
// whose answer is not watched or whose watch is under way or over.
func (cc *clientCut) offerTimer(k *keptTimer) bool {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if cc.conn == nil || cc.stallTimers == nil || cc.stallTimer != nil || cc.spare != nil || cc.idleEnded {
		return false
	}
	k.release()
	cc.spare = k
	return true
}

// timerFired is the stall watch's timer: a look at the client's progress.
func (cc *clientCut) timerFired() { cc.checkStall() }

// checkStall is the watch's look at the client's progress.
func (cc *clientCut) checkStall() {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if cc.cut || cc.killed || cc.idleEnded {
		return
	}
	acked, waiting, ok := clientProgress(rawConn(cc.conn))
	if !ok {
		return
	}
	if waiting && cc.looked && acked == cc.lastAcked {
		cc.stall = true
		cc.endLocked()
		return
	}
	cc.lastAcked, cc.looked = acked, true
	cc.stallTimer.Reset(clientIdleTime)
}

// stalled reports whether the watch ended the call.
func (cc *clientCut) stalled() bool {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	return cc.stall
}

// endIdle stops the stall watch as the handler returns: the connection
// may carry the next call from then on.
func (cc *clientCut) endIdle() {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	cc.idleEnded = true
	if cc.spare != nil {
		cc.stallTimers.stop(cc.spare)
		cc.spare = nil
	}
	if cc.stallTimer != nil {
		cc.stallTimers.stop(cc.stallTimer)
		cc.stallTimer = nil
	}
}
