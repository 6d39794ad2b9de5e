package awsgw

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/textproto"
	"net/url"
	"strings"
	"time"

	"github.com/airlock-dev/airlock/internal/awsops"
	"github.com/airlock-dev/airlock/internal/gateway"
	"github.com/airlock-dev/airlock/internal/s3err"
	"github.com/airlock-dev/airlock/internal/sigv4"
)

// Where a service's calls go. By default AWS's own regional endpoint,
// https://SERVICE.REGION.amazonaws.com (the signing name is the host's
// first label for every service Airlock maps), with the partition's
// domain: amazonaws.com.cn for the China regions. A few services are
// global, with one endpoint and one signing region for the partition:
//
//	iam  https://iam.amazonaws.com (signed for us-east-1),
//	     https://iam.cn-north-1.amazonaws.com.cn (cn-north-1)
//
// STS is regional (sts.REGION.amazonaws.com), which AWS recommends over
// the global endpoint. A target's endpoints: setting overrides any of
// these per service (tests, emulators, VPC endpoints); the call is then
// signed for the target's region.

// globalServices are the services with one endpoint per partition.
var globalServices = map[string]struct{ host, region string }{
	"iam": {"iam.amazonaws.com", "us-east-1"},
}

// serviceEndpoint is the base URL and signing region for service's calls
// under t.
func (t *target) serviceEndpoint(service string) (*url.URL, string) {
	if u := t.services[service]; u != nil {
		return u, t.Region
	}
	domain := "amazonaws.com"
	if strings.HasPrefix(t.Region, "cn-") {
		domain = "amazonaws.com.cn"
	}
	if gs, ok := globalServices[service]; ok {
		if domain == "amazonaws.com.cn" {
			return &url.URL{Scheme: "https", Host: service + ".cn-north-1." + domain}, "cn-north-1"
		}
		if !strings.HasPrefix(t.Region, "us-gov-") {
			return &url.URL{Scheme: "https", Host: gs.host}, gs.region
		}
	}
	return &url.URL{Scheme: "https", Host: service + "." + t.Region + "." + domain}, t.Region
}

// parseServiceEndpoints checks a Target's Endpoints.
func parseServiceEndpoints(t Target) (map[string]*url.URL, error) {
	out := map[string]*url.URL{}
	for svc, raw := range t.Endpoints {
		if !sigv4.ValidService(svc) || svc == "s3" {
			return nil, fmt.Errorf("awsgw: target %q: endpoints: %q is not a service other than s3", t.Name, svc)
		}
		u, err := url.Parse(raw)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.User != nil || strings.Trim(u.Path, "/") != "" {
			return nil, fmt.Errorf("awsgw: target %q: endpoints: %s: %q is not an http(s) base URL", t.Name, svc, raw)
		}
		out[svc] = &url.URL{Scheme: u.Scheme, Host: u.Host}
	}
	return out, nil
}

// serviceAmzHeaders are the x-amz-* request headers that are part of an
// operation and go upstream; the client's other x-amz-* headers are its
// signing and SDK bookkeeping, replaced by the gateway's own signature.
var serviceAmzHeaders = map[string]bool{
	"X-Amz-Target": true, "X-Amz-User-Agent": true,
	// Lambda Invoke's options.
	"X-Amz-Invocation-Type": true, "X-Amz-Log-Type": true, "X-Amz-Client-Context": true,
}

// serviceRequest builds and signs the upstream request for a call.
func (t *target) serviceRequest(ctx context.Context, r *http.Request, service string, creds sigv4.Credentials, body []byte) (*http.Request, error) {
	base, region := t.serviceEndpoint(service)
	u := &url.URL{Scheme: base.Scheme, Host: base.Host, RawQuery: filterQuery(r.URL.RawQuery)}
	setEscapedPath(u, r.URL.EscapedPath())
	if u.Path == "" {
		u.Path = "/"
	}
	req, err := http.NewRequestWithContext(ctx, r.Method, u.String(), bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.URL = u
	h := make(http.Header, len(r.Header))
	for k, v := range r.Header {
		ck := textproto.CanonicalMIMEHeaderKey(k)
		if clientOnly(ck) || underscored(ck) || strings.HasPrefix(ck, "X-Amz-") && !serviceAmzHeaders[ck] {
			continue
		}
		h[ck] = append([]string(nil), v...)
	}
	// Headers the client's Connection names are hop-by-hop too: the S3
	// path dropped them, this one sent them on.
	dropNominated(h, r.Header)
	req.Header = h
	req.ContentLength = int64(len(body))
	if len(body) == 0 {
		req.Body, req.GetBody = http.NoBody, nil
	}
	sum := sha256.Sum256(body)
	payload := hex.EncodeToString(sum[:])
	if err := t.signer.Sign(req, creds, region, service, payload, time.Now()); err != nil {
		return nil, err
	}
	return req, nil
}

// forwardService records an allowed call, sends it upstream and streams
// the answer back: writes are recorded durably before they are sent;
// reads travel while their record is written, and their answer is held
// until it is durable.
func (c *call) forwardService(t *target, op *awsops.Op, auth *sigv4.Auth, body []byte) {
	g := c.gw
	sess := c.openSession()
	if sess == nil {
		return
	}
	finished := false
	var pending *gateway.Pending
	var res *gateway.Call // set once the call may have been recorded
	defer func() {
		switch {
		case finished:
		case res != nil: // a panic in the exchange
			g.panicResult(sess, pending, false, res, c.start)
		default:
			sess.done()
		}
	}()
	ctx, cancel := context.WithCancelCause(c.r.Context())
	defer cancel(nil)
	stop := context.AfterFunc(sess.ctx, func() { cancel(context.Cause(sess.ctx)) })
	defer stop()

	req := serviceCall(op, 0, c.reqID, len(body), true, "")
	rc := gateway.Call{Kind: "result", Action: req.Action, Resource: req.Resource, Allowed: true,
		Params: map[string]string{"request_id": c.reqID}, BytesIn: int64(len(body))}
	if op.ReadOnly {
		res = &rc
		pending = sess.rec.RequestAsync(ctx, req)
	} else if err := sess.rec.Request(ctx, req); err != nil {
		c.recordFailed(ctx, sess, err)
		return
	}
	res = &rc
	abort, unrecorded := c.exchangeService(ctx, t, op, body, pending, res)
	res.Duration = time.Since(c.start)
	finished = true
	if unrecorded {
		// The read's record failed and the call was refused: a result
		// would describe a call the log does not hold (as in forward).
		sess.done()
	} else {
		g.recordResult(sess, *res, !abort)
	}
	if abort {
		panic(http.ErrAbortHandler)
	}
}

// recordFailed answers a call whose request record could not be written.
func (c *call) recordFailed(ctx context.Context, sess *session, err error) {
	if e := cutError(ctx); e != nil {
		c.fail(e)
		return
	}
	if e := endedRecord(c.gr, c.gw.now(), err); e != nil {
		c.fail(e)
		return
	}
	c.gw.log.Error("awsgw: recording a call failed; refused it", "grant", c.gr.ID, "session", sess.rec.ID, "request_id", c.reqID, "err", err)
	c.fail(s3err.New(s3err.ServiceUnavailable, "Airlock could not record this call, so it was not forwarded; retry later"))
}

// exchangeService is the upstream half of an allowed service call. It
// reports whether the client connection must be aborted (a cut or broken
// response after the headers went out), and whether a read's record
// failed, so that the call was refused and gets no result.
func (c *call) exchangeService(ctx context.Context, t *target, op *awsops.Op, body []byte, pending *gateway.Pending, res *gateway.Call) (abort, unrecorded bool) {
	w := c.w
	// durable waits for a read's record before anything goes to the
	// client, the gateway's own errors included (as disclose does for
	// S3): an upstream that failed is news of the upstream too. If the
	// record failed, the call is refused and durable reports false.
	durable := func() bool {
		if pending == nil {
			return true
		}
		err := pending.Wait(ctx)
		if err == nil {
			return true
		}
		unrecorded = true
		ended := endedRecord(c.gr, c.gw.now(), err)
		switch e := cutError(ctx); {
		case e != nil:
			c.fail(e)
		case c.r.Context().Err() != nil:
			// The client went away: there is nobody to answer.
		case ended != nil:
			// Another replica ended the grant: answered as any call of
			// an ended grant, not as a store failure to retry.
			c.fail(ended)
		default:
			c.gw.log.Error("awsgw: recording a call failed; withheld its answer and refused it", "grant", c.gr.ID, "request_id", c.reqID, "err", err)
			c.fail(s3err.New(s3err.ServiceUnavailable, "Airlock could not record this call, so its answer was withheld; retry later"))
		}
		return false
	}
	fail := func(e *s3err.Error, why string) (bool, bool) {
		if !durable() {
			return false, true
		}
		res.Status = statusText(e.Status)
		res.Error = why
		c.fail(e)
		return false, false
	}
	creds, err := t.credentials(ctx, c.gr)
	if err != nil {
		e := s3err.As(err)
		return fail(e, e.Code+": "+e.Text())
	}
	cc := armClientCut(ctx, w, c.r, c.gw.stallTimers)
	defer cc.disarm()
	defer cc.endIdle()
	sc := sigv4.Credentials{AccessKeyID: creds.AccessKeyID, SecretAccessKey: creds.SecretAccessKey, SessionToken: creds.SessionToken}
	// The body was read whole before: the request is whole as it goes
	// out, and its answer must start within serviceAnswerTime
	// (answerwait.go).
	rtCtx, rtCancel := context.WithCancelCause(ctx)
	defer rtCancel(nil)
	watch := &answerWatch{after: serviceAnswerTime, cancel: cancelFunc(rtCancel), timers: &c.gw.answerTimers}
	req, err := t.serviceRequest(rtCtx, c.r, op.Service, sc, body)
	if err != nil {
		return fail(s3err.New(s3err.InternalError, "Airlock could not build the upstream request: %v", err), "building the upstream request: "+err.Error())
	}
	watch.start()
	resp, err := t.rt.RoundTrip(req)
	watch.stop()
	if err == nil && resp == nil {
		err = errors.New("the RoundTripper returned neither a response nor an error")
	}
	if err != nil {
		switch {
		case cutError(ctx) != nil:
			e := cutError(ctx)
			w.Header().Set("Connection", "close")
			return fail(e, "cut off: "+e.Text())
		case c.r.Context().Err() != nil:
			res.Status, res.Error = "499", "client went away"
			return false, false
		case context.Cause(rtCtx) == errUpstreamSilent:
			c.gw.log.Warn("awsgw: the upstream sent no answer; the call is given up", "target", t.Name, "service", op.Service, "grant", c.gr.ID, "request_id", c.reqID, "waited", watch.after)
			return fail(s3err.New(s3err.ServiceUnavailable, "the %s upstream of target %s sent no answer within %s; retry later", op.Service, t.Name, watch.after), watch.silence())
		}
		c.gw.log.Warn("awsgw: upstream request failed", "target", t.Name, "service", op.Service, "grant", c.gr.ID, "request_id", c.reqID, "err", err)
		return fail(s3err.New(s3err.ServiceUnavailable, "the %s upstream of target %s did not answer; retry later", op.Service, t.Name), "upstream: "+err.Error())
	}
	if resp.Body == nil {
		resp.Body = http.NoBody
	}
	defer resp.Body.Close()
	// Durable before disclosure: not a byte of the answer goes out
	// before the call's record is.
	if !durable() {
		return false, true
	}
	h := w.Header()
	copyResponseHeader(h, resp.Header) // less hopHeaders
	res.Status = statusText(resp.StatusCode)
	src := io.Reader(resp.Body)
	var capture *capped
	if resp.StatusCode >= 300 {
		res.Error = resp.Header.Get("X-Amzn-Errortype")
		capture = &capped{max: maxErrorCapture}
		src = io.TeeReader(resp.Body, capture)
	}
	w.WriteHeader(resp.StatusCode)
	cc.streamNow()
	var flush func() error
	if resp.ContentLength >= 0 {
		// Fixed framing: flushing each write changes nothing the client
		// sees, and the flush that sends the last declared byte (the
		// headers, if no body follows) disarms the cut before it
		// completes the answer.
		want := resp.ContentLength
		if c.r.Method == http.MethodHead || resp.StatusCode == http.StatusNoContent || resp.StatusCode == http.StatusNotModified {
			want = 0 // no body follows the headers
		}
		var after func()
		if h := c.gw.afterServiceFlush; h != nil {
			after = func() { h(c, ctx, cc) }
		}
		src, flush = cc.completing(src, want, after)
	}
	n, rerr, werr := copyResponse(w, src, flush)
	if flush != nil && n == 0 && rerr == nil && werr == nil {
		werr = flush() // no body: the headers go out now
	}
	res.BytesOut = n
	if capture != nil {
		if code := serviceErrorCode(res.Error, capture.b); code != "" {
			res.Error = code
		}
	}
	if cc.disarm() {
		res.BytesOut = cc.delivered(n)
		res.Error = "cut off: " + cutError(ctx).Message
		return true, false
	}
	switch {
	case rerr == nil && werr == nil:
	case cutError(ctx) != nil:
		res.Error = "cut off: " + cutError(ctx).Message
		return true, false
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
		return true, false
	}
	return false, false
}

// serviceErrorCode is the AWS error code of an upstream error answer: the
// x-amzn-ErrorType header (minus its ":http://…" suffix), the JSON
// "__type" (minus a "namespace#" prefix) or "code", or the XML <Code>.
func serviceErrorCode(header string, body []byte) string {
	code := header
	if code == "" {
		var j struct {
			Type string `json:"__type"`
			Code string `json:"code"`
		}
		if json.Unmarshal(body, &j) == nil {
			code = j.Type
			if code == "" {
				code = j.Code
			}
		}
	}
	if code == "" {
		code = errorCode(body)
	}
	code, _, _ = strings.Cut(code, ":")
	if i := strings.LastIndexByte(code, '#'); i >= 0 {
		code = code[i+1:]
	}
	if len(code) > 64 {
		code = code[:64]
	}
	return code
}
