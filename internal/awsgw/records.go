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

// callParams are the parameters every request record carries: the
// operation, its bucket and key, the request id and whether the call was
// presigned as pairs appended to room (gateway.Call.Pairs: the call's own
// memory, where a map of them was two allocations per call), and op.Params,
// taken over (not copied) for the rest, nil for most object reads and
// writes (s3iam makes it only for a parameter besides those). The log
// holds the same bytes as when all of them were in one map (AppendJSON
// merges the two). A name among the pairs is taken out of op.Params, as
// the map's entry was replaced before. The op is the call's own and whole
// by then (classify and the body checks have made it), and after this
// nothing writes to op.Params.
func callParams(op *s3iam.Op, auth *sigv4.Auth, reqID string, room []gateway.Param) ([]gateway.Param, map[string]string) {
	ps := append(room[:0], gateway.Param{Key: "operation", Value: op.Name})
	if op.Bucket != "" {
		ps = append(ps, gateway.Param{Key: "bucket", Value: op.Bucket})
	}
	if op.Key != "" {
		ps = append(ps, gateway.Param{Key: "key", Value: op.Key})
	}
	ps = append(ps, gateway.Param{Key: "request_id", Value: reqID})
	if auth.Presigned {
		ps = append(ps, gateway.Param{Key: "presigned", Value: "true"})
	}
	if op.Params != nil {
		for _, p := range ps {
			delete(op.Params, p.Key)
		}
	}
	return ps, op.Params
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

// allowedCall is the record written before a call is forwarded. Its
// pairs are kept in room (callParams), which must not change once the
// call is recorded.
func allowedCall(op *s3iam.Op, auth *sigv4.Auth, reqID string, room []gateway.Param) gateway.Call {
	ps, p := callParams(op, auth, reqID, room)
	return gateway.Call{Kind: "request", Action: op.Checks[0].Action, Resource: op.Checks[0].Resource, Also: otherChecks(op.Checks, 0), Allowed: true, Params: p, Pairs: ps}
}

// deniedCall records a call refused because of check ck.
func deniedCall(op *s3iam.Op, ck s3iam.Check, auth *sigv4.Auth, reqID, why string) gateway.Call {
	ps, p := callParams(op, auth, reqID, nil)
	idx := slices.Index(op.Checks, ck)
	return gateway.Call{Kind: "request", Action: ck.Action, Resource: ck.Resource, Also: otherChecks(op.Checks, idx), Allowed: false, Params: p, Pairs: ps, Error: why}
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
