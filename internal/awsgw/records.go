package awsgw

import (
	"maps"
	"net/http"
	"strings"

	"github.com/airlock-dev/airlock/internal/gateway"
	"github.com/airlock-dev/airlock/internal/s3iam"
	"github.com/airlock-dev/airlock/internal/sigv4"
)

// What a call's record holds. One request record per call: its
// Action/Resource are the call's first check (the one `airlock grants`
// counts as "scope used"); any further checks (a copy's source, each key
// of a delete batch) are listed, one "action resource" per line, in
// Params["checks"], so the recording shows every resource a call touched.

// callParams are the parameters every request record carries.
func callParams(op *s3iam.Op, auth *sigv4.Auth, reqID string) map[string]string {
	p := make(map[string]string, len(op.Params)+5)
	maps.Copy(p, op.Params)
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

func otherChecks(checks []s3iam.Check, skip int) string {
	var b strings.Builder
	for i, ck := range checks {
		if i == skip {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(ck.Action + " " + ck.Resource)
	}
	return b.String()
}

// allowedCall is the record written before a call is forwarded.
func allowedCall(op *s3iam.Op, auth *sigv4.Auth, reqID string) gateway.Call {
	p := callParams(op, auth, reqID)
	if len(op.Checks) > 1 {
		p["checks"] = otherChecks(op.Checks, 0)
	}
	return gateway.Call{Kind: "request", Action: op.Checks[0].Action, Resource: op.Checks[0].Resource, Allowed: true, Params: p}
}

// deniedCall records a call refused because of check ck.
func deniedCall(op *s3iam.Op, ck s3iam.Check, auth *sigv4.Auth, reqID, why string) gateway.Call {
	p := callParams(op, auth, reqID)
	if len(op.Checks) > 1 {
		idx := -1
		for i := range op.Checks {
			if op.Checks[i] == ck {
				idx = i
				break
			}
		}
		p["checks"] = otherChecks(op.Checks, idx)
	}
	return gateway.Call{Kind: "request", Action: ck.Action, Resource: ck.Resource, Allowed: false, Params: p, Error: why}
}

// unmappedCall records a request the mapper refused: no action applies.
func unmappedCall(r *http.Request, err error) gateway.Call {
	p := map[string]string{"method": r.Method, "path": r.URL.EscapedPath()}
	if q := filterQuery(r.URL.RawQuery); q != "" {
		p["query"] = q
	}
	return gateway.Call{Kind: "request", Action: "s3:unmapped", Resource: s3iam.ARNPrefix + strings.TrimPrefix(resourceOf(r), "/"), Allowed: false, Params: p, Error: err.Error()}
}
