package awsgw

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"runtime/debug"
	"strings"
	"time"

	"github.com/airlock-dev/airlock/internal/gateway"
	"github.com/airlock-dev/airlock/internal/s3err"
	"github.com/airlock-dev/airlock/internal/s3iam"
	"github.com/airlock-dev/airlock/internal/sigv4"
)

// call is one request through the gateway.
type call struct {
	gw    *Gateway
	w     http.ResponseWriter
	r     *http.Request
	reqID string
	start time.Time

	// Set by the verifier's Lookup: the key presented and the grant that
	// holds it (live, or ended: see known).
	credID string
	gr     *gateway.Grant
	ended  bool

	// op is the call's S3 operation (MapInto) and auth its verified
	// signature (VerifyInto), held here rather than allocated apart: the
	// call is on the heap already.
	op   s3iam.Op
	auth sigv4.Auth

	// reqPairs hold an allowed call's request record's pairs (callParams):
	// in the call, which is never reused, so they stay as recorded.
	reqPairs [5]gateway.Param

	// x is the exchange of an allowed call (forward), held here rather
	// than allocated apart: the call is on the heap already.
	x exchange
}

// client describes the peer, for a session's start.
func (c *call) client() string { return clientOf(c.r) }

func (c *call) fail(e *s3err.Error) {
	if e.Code == codeRequestTimeout {
		// The client stopped sending its body: net/http would otherwise
		// wait (boundLeftover) for the rest before it answers.
		c.w.Header().Set("Connection", "close")
	}
	if svc := errorService(c.r); svc != "" && svc != "s3" { // in that service's error shape
		writeServiceError(c.w, c.r, svc, e, c.reqID)
		return
	}
	if e.Resource == "" {
		e.Resource = resourceOf(c.r)
	}
	s3err.Write(c.w, c.r, e, c.reqID)
}

// codeHeaderSectionTooLarge is S3's code for a header section over
// maxHeaderSection (not among s3err's, as the gateway alone sends it).
const codeHeaderSectionTooLarge = "RequestHeaderSectionTooLarge"

// maxHeaderSection is S3's bound on a request's header section.
const maxHeaderSection = 8 << 10

// headerSectionSize counts the request's header lines as sent
// ("Name: value\r\n"), the Host line included.
func headerSectionSize(r *http.Request) int {
	n := len("Host: \r\n") + len(r.Host)
	for k, vs := range r.Header {
		for _, v := range vs {
			n += len(k) + len(v) + 4
		}
	}
	return n
}

func (c *call) serve() {
	g := c.gw
	g.mu.Lock()
	closed := g.closed
	g.mu.Unlock()
	if closed {
		c.fail(errClosing)
		return
	}
	if n := headerSectionSize(c.r); n > maxHeaderSection {
		e := s3err.Detailed(codeHeaderSectionTooLarge, "Your request header section exceeds the maximum allowed size.", "%d bytes", n)
		e.MaxSizeAllowed = maxHeaderSection
		c.reject(e)
		return
	}
	auth, e := c.authenticate()
	if e != nil {
		c.reject(e)
		return
	}
	gr := c.gr
	t := g.targets[gr.Target]
	if gr.TargetKind != "aws" || t == nil {
		c.reject(s3err.New(s3err.AccessDenied, "grant %s is for target %q, which this AWS gateway does not serve", gr.ID, gr.Target))
		return
	}
	if e := auth.CheckRegion(t.Region); e != nil {
		c.reject(e)
		return
	}
	if auth.Service != "s3" { // every other AWS service: service.go
		c.serveService(t, auth)
		return
	}
	if e := applyHoisted(c.r, auth); e != nil {
		c.reject(e)
		return
	}

	op, err := g.mapper.MapInto(c.r, &c.op)
	if err != nil {
		c.deny(unmappedCall(g.mapper, c.r, err), s3err.As(err))
		return
	}
	if isComplete(op) {
		// Its checksum header is the whole object's, for the upstream.
		auth.LeaveChecksumToUpstream()
	}
	if auth.Payload.Streaming() && op.Name != "PutObject" && op.Name != "UploadPart" {
		// aws-chunked carries object data only, as in S3; the gateway
		// would otherwise forward another operation's body re-framed.
		e := s3err.Detailed(s3err.InvalidRequest, "The value of x-amz-content-sha256 header is invalid.", "%s bodies are accepted on PutObject and UploadPart only", auth.Payload)
		c.deny(deniedCall(op, op.Checks[0], auth, c.reqID, e.Text()), e)
		return
	}
	if (op.Name == "PutObject" || op.Name == "UploadPart") && auth.DecodedLength < 0 {
		// Object data of unknown length (Transfer-Encoding: chunked without
		// aws-chunked framing): S3 refuses it, and so would the upstream,
		// early, while the gateway is still sending the body: its answer
		// would then race the reset of the upload (upabort.go) and the
		// client could get a 503 instead. Refused here, before forwarding.
		e := s3err.Detailed(s3err.MissingContentLength, "You must provide the Content-Length HTTP header.", "%s needs a body of declared length", op.Name)
		c.deny(deniedCall(op, op.Checks[0], auth, c.reqID, e.Text()), e)
		return
	}
	var body []byte
	if op.NeedsBody {
		// What the body cannot change is checked before it is read: a
		// caller outside its scope (a bucket policy or configuration it
		// may not set) is refused without the gateway reading, or
		// waiting for, up to MaxBodyCheckBytes of it.
		if !c.inScope(op, op.ChecksBeforeBody(), auth) {
			return
		}
		if body, e = c.readBodyForChecks(auth, op); e != nil {
			c.deny(deniedCall(op, op.Checks[0], auth, c.reqID, e.Text()), e)
			return
		}
	}
	if !c.inScope(op, op.Checks, auth) {
		return
	}
	if e := g.admitUpload(gr, op); e != nil {
		c.deny(deniedCall(op, op.Checks[0], auth, c.reqID, e.Text()), e)
		return
	}
	c.forward(t, op, auth, body)
}

// inScope reports whether the grant is live and allows every check; if
// not, it answers (the grant's end, or the check outside its scope).
func (c *call) inScope(op *s3iam.Op, checks []s3iam.Check, auth *sigv4.Auth) bool {
	gr, now := c.gr, c.gw.now()
	if !gr.Live(now) {
		c.fail(endedError(gr, now))
		return false
	}
	for _, ck := range checks {
		if !gr.Live(now) || !ck.AllowedBy(gr.Scope) {
			action, res := ck.Action, ck.Resource
			if ck.OrAction != "" { // DeleteObjects before its body
				action, res = action+" or "+ck.OrAction, res+" and everything in it"
			}
			e := s3err.New(s3err.AccessDenied, "%s on %s is outside grant %s (scope: %s)", action, res, gr.ID, strings.Join(gr.Scope.Strings(), "; "))
			c.deny(deniedCall(op, ck, auth, c.reqID, e.Text()), e)
			return false
		}
	}
	return true
}

// authenticate verifies the signature against the grant credential it
// names. Only a caller that proves it holds a grant's secret learns that
// the grant ended and why; to anyone else an ended grant's key is unknown.
func (c *call) authenticate() (*sigv4.Auth, *s3err.Error) {
	g := c.gw
	if signedService(c.r) != "s3" {
		// The verifier reads a service call's body (HashBody, up to 6 MB)
		// before the signature is checked: anyone who knows a live access
		// key id (a presigned URL shows one) could otherwise trickle it and
		// hold the connection for as long as they liked. S3 bodies stream
		// after the check, without a deadline.
		rc := http.NewResponseController(c.w)
		_ = rc.SetReadDeadline(time.Now().Add(preAuthBodyTime))
		defer func() { _ = rc.SetReadDeadline(time.Time{}) }()
	}
	notReady := false
	auth, err := g.verifier.VerifyInto(c.r, func(id string) (string, string, error) {
		c.credID = id
		gr, err := g.auth.Lookup(id)
		if err == nil {
			c.gr = gr
			return gr.Secret, gr.SessionToken, nil
		}
		notReady = errors.Is(err, gateway.ErrNotReady)
		if gr := g.known.get(id); gr != nil {
			c.gr, c.ended = gr, true
			return gr.Secret, gr.SessionToken, nil
		}
		return "", "", unknownKey()
	}, &c.auth)
	if err != nil {
		if c.ended {
			return nil, unknownKey()
		}
		return nil, s3err.As(err)
	}
	// The verifier read the gateway's clock (g.now) for the signature's
	// time microseconds ago: the grant's life is judged at that reading
	// rather than at another (inScope reads the clock again before the
	// call goes anywhere).
	now := auth.CheckedAt
	if c.ended && notReady && c.gr.Live(now) {
		// Not ended: the control plane cannot vouch for it right now
		// (a replica whose store is unreachable). A 503 is retried by
		// the SDKs; "no longer active" would have sent the agent away.
		return nil, s3err.New(s3err.ServiceUnavailable, "Airlock cannot confirm grant %s right now (its store is unavailable), so the call was not forwarded; retry later", c.gr.ID)
	}
	if c.ended || !c.gr.Live(now) {
		e := endedError(c.gr, now)
		if auth.Presigned {
			e.Message += "; a presigned URL works only while its grant is live, whatever its own X-Amz-Expires"
		}
		return nil, e
	}
	return auth, nil
}

func unknownKey() *s3err.Error {
	return s3err.New(s3err.InvalidAccessKeyID, "The AWS Access Key Id you provided does not exist in our records: it is not the credential of an active Airlock grant")
}

// reject answers a request refused before any session could start, and
// records the attempt (never a secret).
func (c *call) reject(e *s3err.Error) {
	rj := gateway.Rejection{Gateway: "aws", Client: clientOf(c.r), CredentialID: c.credID, Reason: e.Code + ": " + e.Text()}
	if e.HeadersNotSigned != "" {
		rj.Reason += ": " + e.HeadersNotSigned
	}
	if c.gr != nil {
		rj.GrantID, rj.Target = c.gr.ID, c.gr.Target
	}
	c.gw.recordRejection(c.r.Context(), rj)
	c.boundLeftover()
	c.fail(e)
}

// deny records a refused call in the grant's session and answers it.
func (c *call) deny(rec gateway.Call, e *s3err.Error) {
	g := c.gw
	sess, err := g.session(c.gr, c.r, c.client)
	if refused := (*gateway.RefusedError)(nil); errors.As(err, &refused) {
		// Identity binding refuses every call from here (credentials
		// moved, or a shared identity), whatever it asks: a rejection
		// like the allowed calls', recorded, not a scope denial that
		// only the server's log heard of.
		c.reject(sessionError(c.gr, g.now(), err))
		return
	}
	if err != nil {
		g.log.Error("awsgw: could not start a session to record a denied call", "grant", c.gr.ID, "err", err)
	} else {
		if err := sess.rec.Request(c.r.Context(), rec); err != nil {
			g.log.Error("awsgw: recording a denied call failed", "grant", c.gr.ID, "session", sess.rec.ID, "err", err)
		}
		sess.done()
	}
	c.boundLeftover()
	c.fail(e)
}

// preAuthBodyTime bounds how long a call to a service other than S3 may
// take to send its body (at most 6 MB) before its signature is checked (a
// var for tests).
var preAuthBodyTime = 30 * time.Second

// leftoverBodyTime bounds how long the client may take to send what is
// left of the body of a call answered without forwarding it (a var for
// tests).
var leftoverBodyTime = drainTime

// boundLeftover bounds net/http's read of the rest of the body of a call
// refused before anything was forwarded (reject, deny): before it writes
// the answer, net/http reads what the client declared (up to 256 KiB)
// and has not sent yet, and the gateway's server has no ReadTimeout
// (uploads stream). Without a deadline a client that declares a body and
// sends none, with no credential at all, holds its connection and a
// goroutine for ever. No cut is armed yet on these paths, so this never
// loosens one.
func (c *call) boundLeftover() {
	_ = http.NewResponseController(c.w).SetReadDeadline(time.Now().Add(leftoverBodyTime))
}

// readBodyForChecks reads (and verifies) a body whose content decides the
// checks, such as DeleteObjects' key list.
func (c *call) readBodyForChecks(auth *sigv4.Auth, op *s3iam.Op) ([]byte, *s3err.Error) {
	body, err := io.ReadAll(io.LimitReader(auth.Body(c.idleBody()), s3iam.MaxBodyCheckBytes+1))
	if err != nil {
		return nil, s3err.As(err)
	}
	if err := op.AddBodyChecks(body); err != nil {
		return nil, s3err.As(err)
	}
	return body, nil
}

// idleBody is the client's body for a read before any cut is armed:
// each read may wait clientIdleTime (idle.go).
func (c *call) idleBody() io.Reader {
	return &idleBody{r: c.r.Body, rc: http.NewResponseController(c.w)}
}

// openSession is the call's session in its grant, or nil with the call
// answered when it could not get one. A session refused by identity
// binding is an attempt like any other refused one: recorded, every time
// (reject); any other failure is only answered. The S3 calls, the other
// services' and those the gateway answers itself open theirs here alike.
func (c *call) openSession() *session {
	sess, err := c.gw.session(c.gr, c.r, c.client)
	if err == nil {
		return sess
	}
	e := sessionError(c.gr, c.gw.now(), err)
	if refused := (*gateway.RefusedError)(nil); errors.As(err, &refused) {
		c.reject(e)
	} else {
		c.fail(e)
	}
	return nil
}

// sessionError is the answer when a call could not get its session.
func sessionError(gr *gateway.Grant, now time.Time, err error) *s3err.Error {
	var e *s3err.Error
	var refused *gateway.RefusedError
	switch {
	case errors.As(err, &e):
		return e
	case errors.As(err, &refused):
		return s3err.New(s3err.AccessDenied, "%s", refused.Reason)
	case errors.Is(err, gateway.ErrNoGrant), errors.Is(err, errGrantGone), !gr.Live(now):
		return endedError(gr, now)
	}
	return s3err.New(s3err.ServiceUnavailable, "Airlock could not record the start of a session for grant %s, so the call was not forwarded; retry later", gr.ID)
}

// endedRecord is the answer for a call whose record the control plane
// refused because its grant has ended (gateway.ErrNoGrant): another
// replica ended it and this one has not applied the notice yet. Nil for
// any other failure, which is the store's (503).
func endedRecord(gr *gateway.Grant, now time.Time, err error) *s3err.Error {
	if errors.Is(err, gateway.ErrNoGrant) {
		return endedError(gr, now)
	}
	return nil
}

// cutError is the answer for a call cut by its session's end.
func cutError(ctx context.Context) *s3err.Error {
	var e *s3err.Error
	if errors.As(causeOf(ctx), &e) {
		return e
	}
	return nil
}

// forward records the call, sends it upstream and streams the answer back.
func (c *call) forward(t *target, op *s3iam.Op, auth *sigv4.Auth, checkedBody []byte) {
	g, gr := c.gw, c.gr
	sess := c.openSession()
	if sess == nil {
		return
	}
	finished := false
	var x *exchange // set once the call may have been recorded
	defer func() {
		switch {
		case finished:
		case x != nil: // a panic in the exchange
			g.panicResult(sess, x.pending, x.unrecorded, &x.result, c.start)
		default: // a panic before the request was recorded
			sess.done()
		}
	}()

	// The call is cut the moment its session ends (grant ended, expiry,
	// Close): the upstream request derives from ctx.
	cx := &c.x
	cx.cctx.init(c.r.Context())
	defer cx.cctx.end()
	ctx := context.Context(&cx.cctx)
	cx.c, cx.ctx = c, ctx
	// The session's watch cuts the calls it holds when it ends (one map
	// entry per call, where a context.AfterFunc on the session's context
	// was three allocations).
	if sess.holdCall(cx) {
		defer sess.releaseCall(cx)
	} else { // it has ended already
		cx.sessionEnded(context.Cause(sess.ctx))
	}

	req := allowedCall(op, auth, c.reqID, c.reqPairs[:0])
	// The result and its parameters live in the exchange, which is on
	// the heap already (and never reused: the pairs must not change
	// once the result is recorded).
	cx.pairs[0] = gateway.Param{Key: "request_id", Value: c.reqID}
	cx.result = gateway.Call{Kind: "result", Action: req.Action, Resource: req.Resource, Allowed: true, Pairs: cx.pairs[:1]}
	if readOnly(c.r, op) {
		// Durable before disclosure: a read goes upstream while its record
		// is written; the exchange holds the answer until it is durable.
		x = cx
		x.pending = sess.rec.RequestAsyncIn(ctx, req, &x.record)
	} else if err := sess.rec.Request(ctx, req); err != nil {
		// Durable before forward: nothing that can change state reaches
		// the upstream unrecorded.
		if e := cutError(ctx); e != nil {
			c.fail(e)
			return
		}
		if e := endedRecord(gr, g.now(), err); e != nil {
			c.fail(e)
			return
		}
		g.log.Error("awsgw: recording a call failed; refused it", "grant", gr.ID, "session", sess.rec.ID, "request_id", c.reqID, "err", err)
		c.fail(s3err.New(s3err.ServiceUnavailable, "Airlock could not record this call, so it was not forwarded; retry later"))
		return
	}
	x = cx
	res := &x.result
	x.res = res
	x.run(t, op, auth, checkedBody)
	res.Duration = time.Since(c.start)

	finished = true
	if x.unrecorded {
		// The request's record failed: the call was refused, and a
		// result would describe a call the log does not hold.
		sess.done()
	} else {
		g.recordResult(sess, *res, x.delivered && !x.abort)
	}
	if x.abort {
		// Headers are out: only a broken connection tells the client that
		// the body is incomplete (a chunked response would otherwise end
		// cleanly).
		panic(http.ErrAbortHandler)
	}
}

// panicResult records the result of a call whose exchange panicked after
// its request was recorded (or, for a read, while its record was being
// written): net/http recovers the panic and aborts the connection, and
// without it the log held a request with no result. It runs in a deferred
// call and does not recover: the panic goes on to net/http. A read whose
// record failed gets no result, as in forward.
func (g *Gateway) panicResult(sess *session, pending *gateway.Pending, unrecorded bool, res *gateway.Call, start time.Time) {
	g.log.Error("awsgw: panic in a call's exchange; the call is recorded as failed and its connection aborted", "grant", sess.gr.ID, "request_id", resultRequestID(*res))
	if unrecorded {
		sess.done()
		return
	}
	if pending != nil {
		ctx, cancel := context.WithTimeout(context.Background(), recordTimeout)
		err := pending.Wait(ctx)
		cancel()
		if err != nil {
			sess.done()
			return
		}
	}
	res.Error = "internal error: the gateway ended this call"
	res.Duration = time.Since(start)
	g.writeResult(sess, *res)
}

// readOnly reports whether a call cannot change upstream state, so that it
// may be forwarded while its record is written (DESIGN.md, "Fail
// closed"): a GET or HEAD without a body whose every check is a read
// (s3:Get*, s3:List*). Anything else is recorded before it is forwarded.
func readOnly(r *http.Request, op *s3iam.Op) bool {
	if r.Method != http.MethodGet && r.Method != http.MethodHead || r.ContentLength != 0 || op.NeedsBody {
		return false
	}
	for _, ck := range op.Checks {
		if !strings.HasPrefix(ck.Action, "s3:Get") && !strings.HasPrefix(ck.Action, "s3:List") {
			return false
		}
	}
	return len(op.Checks) > 0
}

// recordResult appends a call's result without holding up the response:
// on the handler's goroutine once the client has the whole answer
// (delivered; the control plane only queues it, unless its log has fallen
// far behind, and then the wait is the backpressure it asks for), on a
// goroutine of its own otherwise. The session's end waits for it, and a
// failure is logged, never dropped silently.
func (g *Gateway) recordResult(sess *session, res gateway.Call, delivered bool) {
	if g.syncResults || delivered {
		g.writeResult(sess, res)
		return
	}
	// Passed by value to the goroutine, not captured by a closure: the
	// synchronous path, every delivered answer's, allocates nothing here.
	go g.writeResult(sess, res)
}

// resultRequestID is the request id a result carries, in its Params (a
// service call's) or its Pairs (an S3 call's).
func resultRequestID(res gateway.Call) string {
	if id, ok := res.Params["request_id"]; ok {
		return id
	}
	for _, p := range res.Pairs {
		if p.Key == "request_id" {
			return p.Value
		}
	}
	return ""
}

// writeResult records res and ends the call's count in its session.
func (g *Gateway) writeResult(sess *session, res gateway.Call) {
	defer sess.done()
	// On its own goroutine (an answer not delivered), a panic here would
	// end the process: net/http recovers only its handlers' goroutines.
	defer func() {
		if v := recover(); v != nil {
			g.log.Error("awsgw: panic recording a call's result; the process keeps running", "grant", sess.gr.ID,
				"request_id", resultRequestID(res), "panic", fmt.Sprintf("%T", v), "stack", string(debug.Stack()))
		}
	}()
	if err := sess.rec.Result(sess.resultContext(), res); err != nil {
		g.log.Error("awsgw: recording a call's result failed", "grant", sess.gr.ID, "session", sess.rec.ID,
			"request_id", resultRequestID(res), "status", res.Status, "err", err)
	}
}

// upstreamBody is the verified request body to send upstream, or nil;
// x.clientCut is the call's client cut once armed, which bounds each read of the
// client's body (idle.go).
func (c *call) upstreamBody(auth *sigv4.Auth, checked []byte, x *exchange) (*countingReader, int64) {
	if checked != nil {
		return &countingReader{r: bytes.NewReader(checked)}, int64(len(checked))
	}
	if c.r.ContentLength == 0 && !auth.Payload.Streaming() {
		return nil, 0
	}
	// The method value is made here, where a body needs it: made by the
	// caller, it was an allocation on every call, bodiless ones included.
	return &countingReader{r: &holdLast{r: auth.Body(&idleBody{r: c.r.Body, cc: x.clientCut})}}, auth.DecodedLength
}
