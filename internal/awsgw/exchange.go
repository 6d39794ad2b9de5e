package awsgw

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"

	"github.com/airlock-dev/airlock/internal/gateway"
	"github.com/airlock-dev/airlock/internal/s3err"
	"github.com/airlock-dev/airlock/internal/s3iam"
	"github.com/airlock-dev/airlock/internal/sigv4"
)

// exchange is the upstream half of an allowed call.
type exchange struct {
	c *call
	// ctx is cctx, the call's context.
	ctx  context.Context
	cctx callCtx
	res  *gateway.Call
	// result is what res points to on the S3 path (forward).
	result gateway.Call
	// pairs hold result's parameters (its Pairs): the request id, and a
	// CreateMultipartUpload's upload id (watchUploads). A map was two
	// allocations per call; the log's bytes are the same (Call.Pairs).
	pairs [2]gateway.Param
	// abort is set when the response was cut after its headers were sent.
	abort bool
	// pending is a read's request record while it is being written: no
	// byte of the answer (status and headers included) goes out before
	// its Wait returns nil (disclose).
	pending *gateway.Pending
	// record is what pending points to on the S3 path (forward).
	record gateway.Pending
	// unrecorded is set when the request's record failed and the call
	// was refused: it has no result to record.
	unrecorded bool
	// cc is the client's cut once watchClient armed it; cutNow says the
	// session cut the call (see cutClient).
	ccMu   sync.Mutex
	cc     *clientCut
	cutNow bool
	// upURL is the upstream request's URL (upstreamRequest), signVals
	// the values of the headers its signature sets (sigv4.SignIn).
	upURL    url.URL
	signVals [3]string
	// upReq is the upstream request itself (upstreamRequest).
	upReq http.Request
	// cut is what cc points to once armed, held here rather than
	// allocated apart (the exchange is on the heap already).
	cut clientCut
	// delivered is set when the client has the whole answer before the
	// handler returns: the result may then be recorded on the handler's
	// goroutine without holding the answer up.
	delivered bool
	// watch bounds the wait for the upstream's answer (answerwait.go).
	watch answerWatch
}

// clientCut is the client's cut once watchClient armed it, else nil.
func (x *exchange) clientCut() *clientCut {
	x.ccMu.Lock()
	defer x.ccMu.Unlock()
	return x.cc
}

// watchClient arms the client's cut for this exchange: the call's
// session watch calls cutClient when it cuts the call.
func (x *exchange) watchClient(w http.ResponseWriter, r *http.Request) *clientCut {
	cc := &x.cut
	cc.init(w, r, x.c.gw.stallTimers)
	x.ccMu.Lock()
	x.cc = cc
	cut := x.cutNow
	x.ccMu.Unlock()
	if cut {
		cc.fire(x.ctx)
	}
	return cc
}

// sessionEnded ends the call for its session's end (with that end's cause): its
// context, so the upstream request, and the client's side.
func (x *exchange) sessionEnded(cause error) {
	x.cctx.cancel(cause)
	x.cutClient()
}

// cutClient is called once the call's context has been cancelled by its
// session's end: the client's side is cut too, now or as soon as it is
// watched.
func (x *exchange) cutClient() {
	x.ccMu.Lock()
	cc := x.cc
	x.cutNow = true
	x.ccMu.Unlock()
	if cc != nil {
		cc.fire(x.ctx)
	}
}

// disclose waits until the request's record is durable, and reports
// whether the answer may go out. If the record failed, the call has
// been refused (or, if the client went away meanwhile, left unanswered).
func (x *exchange) disclose() bool {
	if x.pending == nil {
		return true
	}
	err := x.pending.Wait(x.ctx)
	x.pending = nil
	if err == nil {
		return true
	}
	x.unrecorded = true
	c := x.c
	switch {
	case cutError(x.ctx) != nil:
		c.fail(cutError(x.ctx))
	case c.r.Context().Err() != nil:
		// The client went away: there is nobody to answer.
	case endedRecord(c.gr, c.gw.now(), err) != nil:
		c.fail(endedRecord(c.gr, c.gw.now(), err))
	default:
		c.gw.log.Error("awsgw: recording a call failed; withheld its answer and refused it", "grant", c.gr.ID, "request_id", c.reqID, "err", err)
		c.fail(s3err.New(s3err.ServiceUnavailable, "Airlock could not record this call, so its answer was withheld; retry later"))
	}
	return false
}

// hopHeaders are response headers that describe the upstream connection,
// not the response.
var hopHeaders = []string{"Connection", "Keep-Alive", "Proxy-Connection", "Proxy-Authenticate", "Te", "Trailer", "Transfer-Encoding", "Upgrade"}

// maxErrorCapture is how much of an upstream error body is kept to name
// the S3 error code in the record.
const maxErrorCapture = 2 << 10

func (x *exchange) run(t *target, op *s3iam.Op, auth *sigv4.Auth, checkedBody []byte) {
	c, res := x.c, x.res
	w := c.w
	creds, err := t.credentials(x.ctx, c.gr)
	if err != nil {
		// A cut while the credentials were fetched: the contexts derived
		// from the call's do not carry its cause (callCtx).
		e := cutError(x.ctx)
		if e == nil {
			e = s3err.As(err)
		}
		x.failBefore(e)
		return
	}
	body, length := c.upstreamBody(auth, checkedBody, x)
	var rd io.Reader
	if body != nil {
		rd = body
	}
	// The upstream request is aborted with a reset, never ended cleanly,
	// if its body fails or the call is cut while it is on its way
	// (upabort.go). A request without a body is whole once its headers
	// are out, so it needs no guard: its context alone cancels it.
	reqCtx := x.ctx
	var up *upstreamGuard
	if body != nil {
		up = newUpstreamGuard(x.ctx)
		defer up.release()
		reqCtx = up.ctx
	}
	// A cut fails the client's reads (and, once the response streams, its
	// writes) at once, however slow the client (clientcut.go).
	cc := x.watchClient(w, c.r)
	defer cc.disarm()
	defer cc.endIdle()
	if body != nil && length == 0 {
		// An aws-chunked upload of no data still ends in a final chunk
		// (signed, in the signed modes) and maybe a trailing checksum.
		// The upstream is sent no body, so nothing would check those: they
		// are read and checked here, before anything is forwarded, or a
		// failed empty upload would replace the object with nothing.
		if _, err := io.Copy(io.Discard, body); err != nil {
			e := cutError(x.ctx)
			if e == nil {
				e = clientBodyError(err)
			}
			w.Header().Set("Connection", "close")
			x.failBefore(e)
			return
		}
	}
	// The upstream's answer must start within upstreamAnswerTime of its
	// having the whole request (answerwait.go). The watch cancels the
	// call's own context, whose cause (not an *s3err.Error) cuts nothing
	// on the client's side: held in the exchange, it costs a call no
	// context of its own.
	watch := &x.watch
	watch.after, watch.cancel, watch.timers = upstreamAnswerTime, &x.cctx, &c.gw.answerTimers
	if body != nil {
		body.atEOF = watch.start
	}
	req, err := t.upstreamRequest(reqCtx, &x.upReq, &x.upURL, &x.signVals, c.r, op, auth, creds, rd, length)
	if err != nil {
		x.failBefore(s3err.New(s3err.InternalError, "Airlock could not build the upstream request: %v", err))
		return
	}
	var guarded *abortingBody
	if up != nil {
		guarded = up.guardBody(req)
	}
	if body == nil || length == 0 {
		watch.start()
	}
	resp, err := t.rt.RoundTrip(req)
	watch.handOff(cc)
	if err == nil && resp == nil {
		err = errors.New("the RoundTripper returned neither a response nor an error")
	}
	if err == nil && resp.Body == nil { // allowed of other RoundTrippers than net/http's
		resp.Body = http.NoBody
	}
	if body != nil {
		res.BytesIn = body.count()
	}
	if !x.disclose() {
		if err == nil {
			resp.Body.Close() // discarded unread
		}
		return
	}
	if err != nil {
		bodyErr := uploadError(body, guarded)
		switch {
		case cutError(x.ctx) != nil:
			// Cut while uploading or waiting for the answer.
			e := cutError(x.ctx)
			w.Header().Set("Connection", "close")
			res.Error = "cut off: " + e.Text()
			x.write(e)
		case causeOf(x.ctx) == errUpstreamSilent:
			// Before the body's errors: the guard's abort of a request
			// the watch cancelled is not the client's failure.
			c.gw.log.Warn("awsgw: the upstream sent no answer; the call is given up", "target", t.Name, "grant", c.gr.ID, "request_id", c.reqID, "waited", watch.after)
			w.Header().Set("Connection", "close")
			res.Error = watch.silence()
			x.write(s3err.New(s3err.ServiceUnavailable, "the upstream of target %s sent no answer within %s; retry later", t.Name, watch.after))
		case isS3Err(bodyErr):
			// The body failed its verification; the upstream request was
			// aborted and stores nothing. The client gets to read why.
			w.Header().Set("Connection", "close")
			e := s3err.As(bodyErr)
			res.Error = e.Code + ": " + e.Text()
			if e.Code != codeRequestTimeout { // a stalled client has nothing to drain
				x.c.drainBody(x.ctx)
			}
			x.write(e)
		case bodyErr != nil:
			// The client's body could not be read: it went away, or ended
			// before its declared length. The upstream request was
			// aborted; the answer is for a client still reading.
			w.Header().Set("Connection", "close")
			e := clientBodyError(bodyErr)
			res.Error = "client body: " + e.Code + ": " + e.Text()
			x.write(e)
		case c.r.Context().Err() != nil:
			res.Error = "client went away"
			res.Status = "499"
		default:
			c.gw.log.Warn("awsgw: upstream request failed", "target", t.Name, "grant", c.gr.ID, "request_id", c.reqID, "err", err)
			e := s3err.New(s3err.ServiceUnavailable, "the upstream of target %s did not answer; retry later", t.Name)
			res.Error = "upstream: " + err.Error()
			x.write(e)
		}
		return
	}
	// The header map is kept for another call once the body is closed,
	// if awsgw's own client sent the request (releaseUpstreamHeader).
	_, ownClient := resp.Body.(*h1Body)
	defer func() {
		resp.Body.Close()
		if ownClient {
			releaseUpstreamHeader(req)
		}
	}()

	h := w.Header()
	copyResponseHeader(h, resp.Header) // less hopHeaders
	res.Status = statusText(resp.StatusCode)
	var capture *capped
	src := io.Reader(resp.Body)
	if isComplete(op) && resp.StatusCode == http.StatusOK {
		var n int64
		src, n = completeLocation(c.r, resp)
		setLength(h, n)
	}
	if resp.StatusCode >= 300 {
		capture = &capped{max: maxErrorCapture}
		src = io.TeeReader(resp.Body, capture)
	}
	src, settleUpload := x.watchUploads(op, resp.StatusCode, src)
	w.WriteHeader(resp.StatusCode)
	cc.streamNow()
	var flush func() error
	if resp.ContentLength >= 0 {
		// The framing is fixed, so flushing each write changes nothing
		// the client sees, and nothing the count includes waits in the
		// server's buffers.
		flush = cc.flush
		if want, err := strconv.ParseInt(firstValue(h, "Content-Length"), 10, 64); err == nil && want >= 0 {
			// The flush that sends an answer's last bytes completes it
			// for the client, which may then send its next call, of
			// another grant, on this connection at once. The cut is
			// disarmed before that flush, not after it: a session that
			// ends in between would otherwise reset the connection
			// under the next call. An answer wholly read from the
			// upstream and written is let finish.
			if c.r.Method == http.MethodHead || resp.StatusCode == http.StatusNoContent || resp.StatusCode == http.StatusNotModified {
				want = 0 // no body follows the headers
			}
			var after func()
			if h := c.gw.afterLastFlush; h != nil {
				after = func() { h(x) }
			}
			src, flush = cc.completing(src, want, after)
		}
	}
	n, rerr, werr := spliceResponse(w, src, flush, cc.splicer(w))
	if flush != nil && n == 0 && rerr == nil && werr == nil {
		// No body (HEAD, an empty object): the headers go out now.
		werr = flush()
	}
	// With fixed framing and every write flushed, the client has the
	// whole answer once the copy ends (the handler's return adds nothing).
	x.delivered = flush != nil
	if x.delivered && rerr == nil && werr == nil {
		// So a session that ends from now on has nothing left to cut: the
		// client may already be sending its next call, of another grant,
		// on this connection, which a reset would break.
		cc.disarm()
	}
	if h := c.gw.afterCopy; h != nil {
		h(x)
	}
	res.BytesOut = n
	if body != nil {
		res.BytesIn = body.count()
	}
	if capture != nil {
		if code := errorCode(capture.b); code != "" {
			res.Error = code
		}
	}
	// The upload table follows what the upstream did, whether or not the
	// client was cut while the answer streamed.
	settleUpload(rerr == nil && werr == nil, res.Error)
	if cc.disarm() {
		// Cut while streaming, even if the copy happened to finish: the
		// connection is gone or unusable. The result counts the bytes
		// that went out, not those the reset dropped unsent.
		res.BytesOut = cc.delivered(n)
		res.Error = "cut off: " + cutError(x.ctx).Message
		x.abort = true
		return
	}
	switch {
	case rerr == nil && werr == nil:
	case cutError(x.ctx) != nil:
		res.Error = "cut off: " + cutError(x.ctx).Message
		x.abort = true
	case werr != nil && cc.stalled():
		res.BytesOut = cc.delivered(n)
		res.Error = stalledReader()
	case werr != nil, c.r.Context().Err() != nil:
		// A client that hangs up mid-answer cancels its request, which
		// fails the upstream read at once (the transport's deadline):
		// that read error can come before the write that would fail.
		res.Error = "client went away"
	default:
		res.Error = "upstream response broken: " + rerr.Error()
		x.abort = true
	}
}

// uploadError is why the upload's body failed, if it did: the reader
// chain's first error (a verification failure, the client's read
// error), or the guard's own (a body at the wrong length).
func uploadError(body *countingReader, guarded *abortingBody) error {
	if body != nil {
		if err := body.firstErr(); err != nil {
			return err
		}
	}
	if guarded != nil {
		return guarded.failed()
	}
	return nil
}

// failBefore answers a call that never reached the upstream.
func (x *exchange) failBefore(e *s3err.Error) {
	x.res.Error = e.Code + ": " + e.Text()
	x.write(e)
}

func (x *exchange) write(e *s3err.Error) {
	if !x.disclose() {
		return
	}
	x.res.Status = statusText(e.Status)
	x.c.fail(e)
}

func isS3Err(err error) bool {
	var e *s3err.Error
	return errors.As(err, &e)
}

// answerCounter counts the answer bytes read through it (one goroutine).
type answerCounter struct {
	r io.Reader
	n int64
}

func (c *answerCounter) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// spliceTo splices what c counts, if it can (splice.go).
func (c *answerCounter) spliceTo(dst io.ReaderFrom) (int64, error, error) {
	sp, ok := c.r.(splicer)
	if !ok {
		return 0, nil, nil
	}
	n, rerr, werr := sp.spliceTo(dst)
	c.n += n
	return n, rerr, werr
}

// copyResponse streams src to w, telling a read error (upstream, or a cut)
// from a write error (the client).
// flush, if not nil, follows every write.
func copyResponse(w io.Writer, src io.Reader, flush func() error) (n int64, rerr, werr error) {
	return spliceResponse(w, src, flush, nil)
}

// spliceResponse is copyResponse, but if splice is not nil, src's middle
// goes to it by splicing where src can (splice.go).
func spliceResponse(w io.Writer, src io.Reader, flush func() error, splice io.ReaderFrom) (n int64, rerr, werr error) {
	sp, _ := src.(splicer)
	if splice == nil {
		sp = nil
	}
	bp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bp)
	buf := *bp
	for {
		if sp != nil {
			k, rerr, werr := sp.spliceTo(splice)
			n += k
			if rerr != nil || werr != nil {
				return n, rerr, werr
			}
		}
		m, err := src.Read(buf)
		if m > 0 {
			k, e := w.Write(buf[:m])
			n += int64(k)
			if e == nil && flush != nil {
				e = flush()
			}
			if e != nil {
				return n, nil, e
			}
		}
		if err == io.EOF {
			return n, nil, nil
		}
		if err != nil {
			return n, err, nil
		}
	}
}

// capped keeps the first max bytes written to it.
type capped struct {
	b   []byte
	max int
}

func (c *capped) Write(p []byte) (int, error) {
	if room := c.max - len(c.b); room > 0 {
		c.b = append(c.b, p[:min(room, len(p))]...)
	}
	return len(p), nil
}

// errorCode extracts <Code> from an S3 error document, for the record.
func errorCode(b []byte) string {
	s := string(b)
	i := strings.Index(s, "<Code>")
	if i < 0 {
		return ""
	}
	s = s[i+len("<Code>"):]
	j := strings.Index(s, "</Code>")
	if j < 0 || j > 64 {
		return ""
	}
	return s[:j]
}
