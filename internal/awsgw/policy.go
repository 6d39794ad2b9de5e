package awsgw

import (
	"encoding/json"
	"slices"
	"strings"

	"github.com/airlock-dev/airlock/internal/scope"
)

// iamPolicy is the subset of the IAM policy grammar a session policy needs.
type iamPolicy struct {
	Version   string         `json:"Version"`
	Statement []iamStatement `json:"Statement"`
}

type iamStatement struct {
	Effect    string                       `json:"Effect"`
	Action    []string                     `json:"Action"`
	Resource  []string                     `json:"Resource"`
	Condition map[string]map[string]string `json:"Condition,omitempty"`
}

// prefixListActions are the bucket-level actions whose object prefix IAM
// expresses as the s3:prefix condition key rather than in the resource.
var prefixListActions = []string{"s3:ListBucket", "s3:ListBucketVersions"}

// SessionPolicy renders a grant's scope as an IAM session policy, so that
// the credentials STS hands the gateway for a grant can do no more than the
// grant, even if the gateway's own checks had a bug. Airlock writes a
// listing of "logs/app/" as s3:ListBucket on "arn:aws:s3:::logs/app/*";
// IAM authorizes ListBucket on the bucket ARN with the prefix as a
// condition, so those statements are rewritten. Statements with the same
// resource and condition are merged to keep the packed policy small.
func SessionPolicy(sc scope.Scope) (string, error) {
	type key struct{ resource, prefix string }
	var order []key
	actions := map[key][]string{}
	add := func(k key, a string) {
		if _, ok := actions[k]; !ok {
			order = append(order, k)
		}
		if !slices.Contains(actions[k], a) {
			actions[k] = append(actions[k], a)
		}
	}
	for _, p := range sc.Pairs() {
		if slices.Contains(prefixListActions, p.Action) {
			if bucket, prefix, ok := splitBucketARN(p.Resource); ok && prefix != "" {
				if prefix == "*" {
					// The whole bucket: no condition. IAM finds no
					// s3:prefix in a listing that sends no prefix, and a
					// StringLike on a missing key is false, so "*" would
					// refuse exactly the listing the grant allows most
					// plainly.
					prefix = ""
				}
				add(key{resource: "arn:aws:s3:::" + bucket, prefix: prefix}, p.Action)
				continue
			}
		}
		add(key{resource: p.Resource}, p.Action)
		if g, ok := logGroupARN(p.Resource); ok {
			add(key{resource: g}, p.Action)
		}
	}
	pol := iamPolicy{Version: "2012-10-17"}
	for _, k := range order {
		st := iamStatement{Effect: "Allow", Action: actions[k], Resource: []string{iamLiteral(k.resource)}}
		if k.prefix != "" {
			st.Condition = map[string]map[string]string{"StringLike": {"s3:prefix": iamLiteral(k.prefix)}}
		}
		pol.Statement = append(pol.Statement, st)
	}
	b, err := json.Marshal(pol)
	if err != nil {
		return "", err
	}
	return string(b), nil
}

// logGroupARN: Airlock names a log group "…:log-group:NAME", as IAM's
// resource table does, but for several Logs actions IAM evaluates the
// group's ARN with a ":*" suffix ("…:log-group:NAME:*"), which a policy
// naming the group exactly would not match. The session policy names
// both, so that AWS's wall allows what the gateway's does.
func logGroupARN(res string) (string, bool) {
	if !strings.HasPrefix(res, "arn:") || strings.HasSuffix(res, "*") {
		return "", false
	}
	parts := strings.SplitN(res, ":", 6)
	if len(parts) != 6 || parts[2] != "logs" || !strings.HasPrefix(parts[5], "log-group:") || strings.Contains(parts[5], ":log-stream:") {
		return "", false
	}
	return res + ":*", true
}

// splitBucketARN splits "arn:aws:s3:::bucket/prefix*" into bucket and
// "prefix*". A bucket pattern ("arn:aws:s3:::log*") is not split.
func splitBucketARN(res string) (bucket, prefix string, ok bool) {
	rest, ok := strings.CutPrefix(res, "arn:aws:s3:::")
	if !ok {
		return "", "", false
	}
	bucket, prefix, ok = strings.Cut(rest, "/")
	if !ok || bucket == "" || strings.Contains(bucket, "*") {
		return "", "", false
	}
	return bucket, prefix, true
}

// iamLiteral escapes the characters IAM would read as wildcards or policy
// variables but Airlock reads literally ('?' and '$'); a trailing '*' is a
// prefix match in both and stays as it is. ('*' cannot occur elsewhere: the
// scope grammar rejects it.)
func iamLiteral(s string) string {
	if !strings.ContainsAny(s, "?$") {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		switch r {
		case '?':
			b.WriteString("${?}")
		case '$':
			b.WriteString("${$}")
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}
