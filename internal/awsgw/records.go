package awsgw

import (
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/airlock-dev/airlock/internal/gateway"
	"github.com/airlock-dev/airlock/internal/s3iam"
	"github.com/airlock-dev/airlock/internal/sigv4"
)

// What a call's record holds. One request record per call: its
// Action/Resource are the call's first check (for a denial, the check that
// failed); any further checks (a copy's source, each key of a delete
// batch) are listed as "action resource" in Call.Also, so the recording
// and the review's "scope used" show every resource a call touched.

// callParams are the parameters every request record carries: op.Params,
// taken over (not copied: a copy was two allocations per call) and
// completed. The op is the call's own and whole by then (classify and the
// body checks have made it), and after this nothing writes to op.Params.
func callParams(op *s3iam.Op, auth *sigv4.Auth, reqID string) map[string]string {
	p := op.Params
	if p == nil {
		p = make(map[string]string, 5)
		op.Params = p
	}
	p["operation"] = op.Name
	if op.Bucket != "" {
		p["bucket"] = op.Bucket
	}
	if op.Key != "" {
		p["key"] = op.Key
	}
	p["request_id"] = reqID
	if auth.Presigned {
		p["presigned"] = "true"
	}
	return p
}

func otherChecks(checks []s3iam.Check, skip int) []string {
	var out []string
	for i, ck := range checks {
		if i != skip {
			out = append(out, ck.Action+" "+ck.Resource)
		}
	}
	return out
}

// allowedCall is the record written before a call is forwarded.
func allowedCall(op *s3iam.Op, auth *sigv4.Auth, reqID string) gateway.Call {
	p := callParams(op, auth, reqID)
	return gateway.Call{Kind: "request", Action: op.Checks[0].Action, Resource: op.Checks[0].Resource, Also: otherChecks(op.Checks, 0), Allowed: true, Params: p}
}

// deniedCall records a call refused because of check ck.
func deniedCall(op *s3iam.Op, ck s3iam.Check, auth *sigv4.Auth, reqID, why string) gateway.Call {
	p := callParams(op, auth, reqID)
	idx := slices.Index(op.Checks, ck)
	return gateway.Call{Kind: "request", Action: ck.Action, Resource: ck.Resource, Also: otherChecks(op.Checks, idx), Allowed: false, Params: p, Error: why}
}

// unmappedCall records a request the mapper m refused: no action applies.
func unmappedCall(m *s3iam.Mapper, r *http.Request, err error) gateway.Call {
	p := map[string]string{"method": r.Method, "path": r.URL.EscapedPath()}
	if q := filterQuery(r.URL.RawQuery); q != "" {
		p["query"] = q
	}
	res := s3iam.ARNPrefix + strings.TrimPrefix(resourceOf(r), "/")
	if b, ok := m.HostBucket(r.Host); ok {
		// Virtual-hosted: the bucket is in the Host and the path is the
		// key alone, which read as path-style would name another bucket.
		p["bucket"] = b
		res = s3iam.ARNPrefix + b
		if k := strings.TrimPrefix(resourceOf(r), "/"); k != "" {
			res += "/" + k
		}
	}
	return gateway.Call{Kind: "request", Action: "s3:unmapped", Resource: res, Allowed: false, Params: p, Error: err.Error()}
}

// statusTexts are the result records' statuses, 100 to 599, made once:
// strconv.Itoa allocates each above 99, once per call.
var statusTexts = func() (t [500]string) {
	for i := range t {
		t[i] = strconv.Itoa(100 + i)
	}
	return t
}()

// statusText is a result's Status for an HTTP status code.
func statusText(code int) string {
	if code >= 100 && code < 600 {
		return statusTexts[code-100]
	}
	return strconv.Itoa(code)
}
