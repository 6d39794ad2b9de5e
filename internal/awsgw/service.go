package awsgw

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"maps"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"

	"github.com/airlock-dev/airlock/internal/awsops"
	"github.com/airlock-dev/airlock/internal/gateway"
	"github.com/airlock-dev/airlock/internal/s3err"
	"github.com/airlock-dev/airlock/internal/sigv4"
)

// Services other than S3 (service.go, svcforward.go, svcerr.go,
// svclocal.go). One listener serves every service: the credential scope
// the agent's SDK signed names the service, and only that verified name
// decides where the call goes and how it is mapped. The flow is the S3
// path's — verify, map, scope, record, re-sign, forward, cut off — with
// the body read whole (at most awsops.MaxBody: the calls these services
// take are small documents, and IAM's resources are inside them).

// svcBody is a request body read whole for its digest (hashServiceBody).
type svcBody struct {
	*bytes.Reader
	b []byte
}

func (*svcBody) Close() error { return nil }

// hashServiceBody is the verifier's HashBody: the SDKs of services other
// than S3 sign the body's digest without sending it, so the body is read
// (bounded) before the signature can be checked.
func hashServiceBody(r *http.Request) (string, error) {
	limit := serviceBodyLimit(signedService(r))
	// The caller named a live credential, but nothing yet shows it holds
	// the secret: what such bodies may hold at once is bounded, or a
	// known key id (it is no secret) and slow uploads on many connections
	// could make the process hold up to limit bytes for each.
	n := int64(limit)
	if r.ContentLength >= 0 && r.ContentLength < n {
		n = r.ContentLength
	}
	if !unverifiedBodies.take(n) {
		return "", s3err.New(s3err.ServiceUnavailable, "Airlock is reading too many unverified request bodies at once; retry shortly")
	}
	defer unverifiedBodies.give(n)
	b, err := readServiceBody(r.ContentLength, r.Body, limit)
	if err != nil {
		return "", err
	}
	r.Body = &svcBody{Reader: bytes.NewReader(b), b: b}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:]), nil
}

// maxUnverifiedBodies bounds the bytes of service request bodies being
// read before their signature can be checked, across the process: room
// for ten of Lambda's largest payloads, or thousands of ordinary calls.
const maxUnverifiedBodies = 64 << 20

// unverifiedBodies is the process's budget of maxUnverifiedBodies.
var unverifiedBodies = &byteBudget{left: maxUnverifiedBodies}

// byteBudget hands out a fixed number of bytes; take fails rather than
// waits when they are not there.
type byteBudget struct {
	mu   sync.Mutex
	left int64
}

func (b *byteBudget) take(n int64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if n > b.left {
		return false
	}
	b.left -= n
	return true
}

func (b *byteBudget) give(n int64) {
	b.mu.Lock()
	b.left += n
	b.mu.Unlock()
}

// maxLambdaBody is Lambda's own bound on a synchronous Invoke's payload
// (6 MB); the mapper never reads a Lambda body (awsops.NeedsBody), but its
// digest must be checked before the call is forwarded.
const maxLambdaBody = 6 << 20

// serviceBodyLimit is how much of a call's body the gateway reads.
func serviceBodyLimit(service string) int {
	if !awsops.NeedsBody(service) {
		return maxLambdaBody
	}
	return awsops.MaxBody
}

// readServiceBody reads a whole request body of at most limit bytes.
func readServiceBody(declared int64, body io.Reader, limit int) ([]byte, error) {
	if declared > int64(limit) {
		return nil, bodyTooLarge(declared, limit)
	}
	if body == nil {
		return nil, nil
	}
	b, err := io.ReadAll(io.LimitReader(body, int64(limit)+1))
	if err != nil {
		var e *s3err.Error
		if errors.As(err, &e) {
			return nil, e
		}
		return nil, s3err.New(s3err.IncompleteBody, "Airlock could not read the request body: %v", err)
	}
	if len(b) > limit {
		return nil, bodyTooLarge(-1, limit)
	}
	return b, nil
}

func bodyTooLarge(n int64, limit int) *s3err.Error {
	e := s3err.New(s3err.EntityTooLarge, "the request body is larger than the %d bytes Airlock reads for a call to this AWS service", limit)
	e.Status = http.StatusRequestEntityTooLarge
	if n > 0 {
		e.Message += " (" + strconv.FormatInt(n, 10) + " bytes)"
	}
	return e
}

// serviceBody is the verified body of a call to a service other than S3.
func (c *call) serviceBody(auth *sigv4.Auth) ([]byte, *s3err.Error) {
	if sb, ok := c.r.Body.(*svcBody); ok {
		// Read by hashServiceBody; the signature covered its digest.
		return sb.b, nil
	}
	if auth.Payload != sigv4.SHA256 {
		// Only S3 takes unsigned or aws-chunked payloads: the body is the
		// call's parameters, and must be what was signed.
		return nil, s3err.New(s3err.InvalidRequest, "x-amz-content-sha256 must be the SHA-256 of the body for %s (not %s): only S3 accepts other payload modes", auth.Service, auth.Payload)
	}
	b, err := readServiceBody(c.r.ContentLength, auth.Body(c.idleBody()), serviceBodyLimit(auth.Service))
	if err != nil {
		return nil, s3err.As(err)
	}
	return b, nil
}

// ownHost reports whether host (from the request, port included or not)
// is one of the gateway's own names: Options.Hosts, a loopback address,
// and, when a Hosts entry is a wildcard address (the listener's
// "0.0.0.0"), any IP literal and the machine's host name. A request
// signed for another host was meant for somebody else.
func (g *Gateway) ownHost(host string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(strings.TrimSuffix(host, "."), "["), "]")
	if host == "" {
		return false
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return true
	}
	wildcard := false
	for _, h := range g.hosts {
		if strings.EqualFold(h, host) {
			return true
		}
		if h == "" || h == "0.0.0.0" || h == "::" {
			wildcard = true
		}
	}
	if wildcard {
		if net.ParseIP(host) != nil {
			return true
		}
		if name, err := os.Hostname(); err == nil && strings.EqualFold(name, host) {
			return true
		}
	}
	return false
}

// serveService handles a verified call whose credential scope names a
// service other than S3, for target t, in its region.
func (c *call) serveService(t *target, auth *sigv4.Auth) {
	g, gr := c.gw, c.gr
	if !g.ownHost(c.r.Host) {
		c.reject(s3err.New(s3err.AccessDenied, "the request was signed for host %q, which is not this Airlock gateway's; point the SDK at the gateway (AWS_ENDPOINT_URL)", clipHost(c.r.Host)))
		return
	}
	if auth.Presigned {
		c.reject(s3err.New(s3err.AccessDenied, "presigned URLs are accepted for S3 only, not for %s", auth.Service))
		return
	}
	body, e := c.serviceBody(auth)
	if e != nil {
		c.reject(e)
		return
	}
	mr := &awsops.Request{
		Service: auth.Service, Region: t.Region, Account: t.Account,
		Method: c.r.Method, Path: c.r.URL.Path, RawQuery: c.r.URL.RawQuery, Header: c.r.Header,
	}
	if awsops.NeedsBody(auth.Service) {
		mr.Body = body
	}
	op, err := awsops.Map(mr)
	if err != nil {
		c.deny(unmappedServiceCall(c.r, auth.Service, c.reqID, len(body), err), mapError(auth.Service, err))
		return
	}
	if len(op.Checks) == 0 || op.Service != auth.Service {
		// The mapper's contract; a call it cannot name checks for is
		// never forwarded on a guess.
		c.deny(unmappedServiceCall(c.r, auth.Service, c.reqID, len(body), errors.New("no authorization to check")),
			s3err.New(s3err.AccessDenied, "%s %s: Airlock has no IAM action for this call", auth.Service, op.Operation))
		return
	}
	now := g.now()
	for i, ck := range op.Checks {
		if !gr.Allows(now, ck.Action, ck.Resource) {
			if !gr.Live(now) {
				c.fail(endedError(gr, now))
				return
			}
			e := s3err.New(s3err.AccessDenied, "%s %s needs %s on %s, which is outside grant %s (scope: %s)",
				op.Service, op.Operation, ck.Action, ck.Resource, gr.ID, strings.Join(gr.Scope.Strings(), "; "))
			c.deny(serviceCall(op, i, c.reqID, len(body), false, e.Text()), e)
			return
		}
	}
	if op.Local {
		c.answerLocal(t, op, len(body))
		return
	}
	c.forwardService(t, op, auth, body)
}

// mapError is the answer for a call the mapper refused.
func mapError(service string, err error) *s3err.Error {
	var ae *awsops.Error
	if errors.As(err, &ae) {
		e := &s3err.Error{Code: ae.Code, Message: ae.Error(), Status: ae.Status}
		if e.Code == "" {
			e.Code = s3err.AccessDenied
		}
		if e.Status == 0 {
			e.Status = http.StatusBadRequest
		}
		return e
	}
	return s3err.New(s3err.AccessDenied, "%s: Airlock could not map this call: %v", service, err)
}

func clipHost(h string) string {
	if len(h) > 100 {
		return h[:100] + "…"
	}
	return h
}

// serviceParams are the parameters every record of a service call carries.
func serviceParams(op *awsops.Op, reqID string, bodyLen int) map[string]string {
	p := make(map[string]string, len(op.Params)+5)
	maps.Copy(p, op.Params)
	p["service"] = op.Service
	p["operation"] = op.Operation
	p["protocol"] = op.Protocol
	p["request_id"] = reqID
	p["request_bytes"] = strconv.Itoa(bodyLen)
	return p
}

// serviceCall is the record of a call: check i is its Action and
// Resource (the one that failed, for a denial), the others go in Also.
func serviceCall(op *awsops.Op, i int, reqID string, bodyLen int, allowed bool, why string) gateway.Call {
	var also []string
	for j, ck := range op.Checks {
		if j != i {
			also = append(also, ck.Action+" "+ck.Resource)
		}
	}
	ck := op.Checks[i]
	return gateway.Call{Kind: "request", Action: ck.Action, Resource: ck.Resource, Also: also, Allowed: allowed,
		Params: serviceParams(op, reqID, bodyLen), Error: why}
}

// unmappedServiceCall records a call the mapper refused: no action
// applies, so it is recorded as SERVICE:unmapped.
func unmappedServiceCall(r *http.Request, service, reqID string, bodyLen int, err error) gateway.Call {
	p := map[string]string{"service": service, "method": r.Method, "path": clipParam(r.URL.EscapedPath()),
		"request_id": reqID, "request_bytes": strconv.Itoa(bodyLen)}
	if t := r.Header.Get("X-Amz-Target"); t != "" {
		p["target"] = clipParam(t)
	}
	if q := queryOutline(r.URL.RawQuery); q != "" {
		p["query"] = clipParam(q)
	}
	return gateway.Call{Kind: "request", Action: service + ":unmapped", Resource: "*", Allowed: false, Params: p, Error: err.Error()}
}

// queryOutline is what the record of a refused call keeps of its query
// string: every parameter's name, but the value of Action and Version
// only. A Query-protocol call may carry all its parameters there, and
// those of a refused call can be secrets (IAM ChangePassword's passwords,
// AssumeRoleWithWebIdentity's token, RunInstances' user data) that a
// recording must never hold. The presigning parameters are dropped.
func queryOutline(raw string) string {
	var b strings.Builder
	for part := range strings.SplitSeq(filterQuery(raw), "&") {
		if part == "" {
			continue
		}
		name, value, hasValue := strings.Cut(part, "=")
		if b.Len() > 0 {
			b.WriteByte('&')
		}
		b.WriteString(name)
		if !hasValue {
			continue
		}
		if n, err := url.QueryUnescape(name); err == nil && (strings.EqualFold(n, "Action") || strings.EqualFold(n, "Version")) {
			b.WriteString("=" + value)
		} else {
			b.WriteString("=…")
		}
	}
	return b.String()
}

// clipParam bounds what a record keeps of a client-chosen string.
func clipParam(s string) string {
	if len(s) > 256 {
		return s[:256] + "…"
	}
	return s
}
