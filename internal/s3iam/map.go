package s3iam

import (
	"net/http"
	"slices"
	"strings"

	"github.com/airlock-dev/airlock/internal/s3err"
	"github.com/airlock-dev/airlock/internal/scope"
)

// ARNPrefix starts every S3 resource ARN.
const ARNPrefix = "arn:aws:s3:::"

// AllBucketsARN is the resource of ListBuckets: scope resources must be
// ARNs or "*", and this is the ARN that names every bucket.
const AllBucketsARN = ARNPrefix + "*"

// Check is one IAM authorization a call needs.
type Check struct {
	Action, Resource string
	// InBucket widens the check for HeadBucket: Resource is a bucket ARN,
	// and a statement granting Action on the bucket or on anything in it
	// ("arn:aws:s3:::bucket/app/*") allows it.
	InBucket bool
	// OrAction, when set, stands in for Action: the check is allowed when
	// either is. Only DeleteObjects' check before its body has one: each
	// key needs s3:DeleteObject, or s3:DeleteObjectVersion with a version.
	OrAction string
}

// AllowedBy reports whether sc allows c.
func (c Check) AllowedBy(sc scope.Scope) bool {
	if c.OrAction != "" {
		alt := c
		alt.Action, alt.OrAction = c.OrAction, ""
		if alt.AllowedBy(sc) {
			return true
		}
	}
	if sc.Allows(c.Action, c.Resource) {
		return true
	}
	if !c.InBucket {
		return false
	}
	inside := c.Resource + "/"
	for _, st := range sc {
		if slices.Contains(st.Actions, c.Action) && strings.HasPrefix(strings.TrimSuffix(st.Resource, "*"), inside) {
			return true
		}
	}
	return false
}

// Op is one S3 operation, as mapped from a request.
type Op struct {
	// Name is the S3 API operation name ("GetObject", "ListObjectsV2", ...).
	Name string
	// Bucket is "" for ListBuckets.
	Bucket string
	// Key is the decoded object key, "" for bucket and service operations.
	Key string
	// Checks must all be allowed. A mapped Op always has at least one;
	// for a NeedsBody Op it holds a placeholder that no scope can allow
	// until AddBodyChecks replaces it, so forgetting the body fails closed.
	Checks []Check
	// Params is what a reviewer needs to see besides Name, Bucket and Key:
	// prefix, delimiter, range, version_id, upload_id, part_number,
	// copy_source, acl and the x-amz-grant-* grantees (grant_read, ...),
	// object_lock_mode, ... Never a credential. Nil when there is none (a
	// map is two allocations, and most object reads and writes have no
	// parameter but their key): read it as any map, write it with param.
	Params map[string]string
	// NeedsBody is true for operations whose checks depend on the body
	// (DeleteObjects, PutBucketReplication, CreateBucket with a body), or
	// whose record does (PutObjectAcl, PutBucketAcl, PutObjectRetention,
	// PutObjectLegalHold, PutObjectTagging, PutBucketTagging and the
	// bucket configurations of recordedConfigs with a body):
	// the caller checks ChecksBeforeBody, then reads the verified body, at
	// most MaxBodyCheckBytes, and calls AddBodyChecks.
	NeedsBody bool

	// CopySourceBucket, CopySourceKey and CopySourceVersionID are the
	// decoded x-amz-copy-source of CopyObject and UploadPartCopy.
	CopySourceBucket, CopySourceKey, CopySourceVersionID string

	bypassGovernance bool // x-amz-bypass-governance-retention: true
	// pending are the checks a NeedsBody op has besides those its body
	// adds (CreateBucket's, PutBucketReplication's).
	pending []Check
	// checkRoom holds Checks for the usual op (one or two actions and the
	// header checks' room), in the Op rather than a slice of its own.
	checkRoom [4]Check
	// upstream is an object op's UpstreamPath, made by objectResource in
	// the resource's allocation, for the Bucket and Key it holds (so that
	// an Op whose Bucket or Key is set again is never sent the old path).
	upstream struct{ bucket, key, path string }
}

// param sets Params[k] to v, making Params if it is nil.
func (op *Op) param(k, v string) {
	if op.Params == nil {
		op.Params = make(map[string]string, 4)
	}
	op.Params[k] = v
}

// addParams copies m into Params (made if need be).
func (op *Op) addParams(m map[string]string) {
	for k, v := range m {
		op.param(k, v)
	}
}

// objectResource returns the ARN of op's object, "arn:aws:s3:::bucket/key",
// and keeps its UpstreamPath, "/bucket/key" with the key escaped, in the
// same string: one allocation where the two took one each on every
// object call.
func (op *Op) objectResource() string {
	esc := EscapeKey(op.Key)
	var b strings.Builder
	b.Grow(len(ARNPrefix) + len(op.Bucket) + 1 + len(op.Key) + 2 + len(op.Bucket) + len(esc))
	b.WriteString(ARNPrefix)
	b.WriteString(op.Bucket)
	b.WriteByte('/')
	b.WriteString(op.Key)
	n := b.Len()
	b.WriteByte('/')
	b.WriteString(op.Bucket)
	b.WriteByte('/')
	b.WriteString(esc)
	s := b.String()
	op.upstream.bucket, op.upstream.key, op.upstream.path = op.Bucket, op.Key, s[n:]
	return s[:n]
}

// deferBody makes op a NeedsBody op whose checks so far wait, behind the
// placeholder, for AddBodyChecks.
func (op *Op) deferBody() {
	op.NeedsBody = true
	op.pending = op.Checks
	op.Checks = []Check{{Action: bodyPlaceholder, Resource: ARNPrefix + op.Bucket}}
}

// ChecksBeforeBody are the checks that do not depend on the body: for a
// NeedsBody op, those AddBodyChecks keeps (the action's own, the headers');
// for DeleteObjects, whose every check names a key of the body, that the
// grant may delete something in the bucket (and bypass governance
// retention there, when asked to); for any other op, its Checks. A caller
// checks them before it reads a body, so that a call outside its grant is
// refused without the body read.
func (op *Op) ChecksBeforeBody() []Check {
	if !op.NeedsBody {
		return op.Checks
	}
	if op.Name == "DeleteObjects" {
		bucket := ARNPrefix + op.Bucket
		checks := []Check{{Action: "s3:DeleteObject", OrAction: "s3:DeleteObjectVersion", Resource: bucket, InBucket: true}}
		if op.bypassGovernance {
			checks = append(checks, Check{Action: "s3:BypassGovernanceRetention", Resource: bucket, InBucket: true})
		}
		return checks
	}
	return op.pending
}

// Mapper maps requests to operations. The zero value only understands
// path-style requests.
type Mapper struct {
	// Hosts are the base host names for virtual-hosted-style requests: a
	// request to "<bucket>.<host>" addresses bucket (e.g.
	// "s3.amazonaws.com", "localhost", the gateway's own host name). Any
	// other host means path-style. Compared case-insensitively, port
	// ignored; when several match, the longest wins.
	Hosts []string
}

// bodyPlaceholder is the action of a NeedsBody Op's check before
// AddBodyChecks: it contains '/', which the scope grammar forbids in an
// action, so no grant can ever allow it.
const bodyPlaceholder = "s3:Body/not-yet-checked"

// Map returns the operation r performs and the checks it needs. An
// unrecognised or refused operation, and any malformed request, is an
// *s3err.Error saying what was refused and why.
//
// The caller must send the upstream the request Op describes (bucket, key
// and copy source rebuilt from the Op, see UpstreamPath and
// CopySourceHeader), never the client's Host header or raw path: for a
// virtual-hosted request the raw path does not name the bucket.
func (m *Mapper) Map(r *http.Request) (*Op, error) {
	return m.MapInto(r, nil)
}

// MapInto is Map, building the Op in *into (set whole: nothing of what it
// held stays) rather than allocating one, unless into is nil: a gateway
// keeps it in the memory it allocates for the call anyway. On an error
// *into may have been written; the Op returned on success is into.
func (m *Mapper) MapInto(r *http.Request, into *Op) (*Op, error) {
	if r.URL == nil || r.URL.Opaque != "" {
		return nil, s3err.New(codeInvalidURI, "the request target is not a path")
	}
	bucket, rawKey, err := m.locate(r)
	if err != nil {
		return nil, err
	}
	key := ""
	if rawKey != "" {
		if key, err = unescape(rawKey, "object key"); err != nil {
			return nil, err
		}
		if err := checkName(key, "object key", false); err != nil {
			return nil, err
		}
	}
	q, err := parseQuery(r.URL.RawQuery)
	if err != nil {
		return nil, err
	}
	h, err := scanHeaders(r.Header)
	if err != nil {
		return nil, err
	}
	req := &request{method: r.Method, bucket: bucket, key: key, q: q, h: h,
		hasBody: r.ContentLength != 0 || len(r.TransferEncoding) > 0}
	for _, p := range q {
		if subresources[p.name] {
			if req.sub != "" {
				return nil, s3err.New(s3err.NotImplemented, "Airlock does not support S3 requests that combine ?%s and ?%s", req.sub, p.name)
			}
			req.sub = p.name
		}
	}
	op, err := req.classify(into)
	if err != nil {
		return nil, err
	}
	if p, ok := q.get("x-id"); ok && p.value != op.Name {
		// The SDKs label each request with its operation; a label that
		// disagrees with what the request does is a forgery or a bug,
		// and either way Airlock would be guessing.
		return nil, s3err.New(s3err.AccessDenied, "the request is %s but its x-id says %q", op.Name, p.value)
	}
	return op, nil
}

// locate splits the request into bucket and raw (still escaped) key.
func (m *Mapper) locate(r *http.Request) (bucket, rawKey string, err error) {
	// EscapedPath is the path as the client encoded it (RawPath) when
	// that is a valid encoding of r.URL.Path, else Go's re-encoding of
	// it: either way decoding it once gives r.URL.Path, which is what
	// Airlock decodes (unescape only refuses more: a raw '+').
	p := r.URL.EscapedPath()
	if p == "" {
		p = "/"
	}
	if p[0] != '/' {
		return "", "", s3err.New(codeInvalidURI, "the request path does not start with '/'")
	}
	p = p[1:]
	if b, ok := m.hostBucket(r.Host); ok {
		if !validBucket(b) {
			return "", "", s3err.New(codeInvalidBucketName, "the bucket name in the host name is not a valid S3 bucket name")
		}
		bucket, rawKey = b, p
	} else {
		bucket, rawKey, _ = strings.Cut(p, "/")
		if bucket != "" && !validBucket(bucket) {
			// Bucket names have no characters that need escaping, so an
			// escaped one is refused rather than decoded.
			return "", "", s3err.New(codeInvalidBucketName, "The specified bucket is not valid.")
		}
	}
	if bucket == "" && rawKey != "" {
		return "", "", s3err.New(codeInvalidBucketName, "the request path has an empty bucket name")
	}
	return bucket, rawKey, nil
}

// HostBucket returns the bucket a virtual-hosted-style Host names, as Map
// reads it, if it is a valid bucket name. A caller that records a request
// Map refused uses it to name the bucket the request addressed: the path
// of a virtual-hosted request holds the key alone.
func (m *Mapper) HostBucket(host string) (string, bool) {
	b, ok := m.hostBucket(host)
	return b, ok && validBucket(b)
}

// hostBucket returns the bucket a virtual-hosted-style Host names.
func (m *Mapper) hostBucket(host string) (string, bool) {
	if len(m.Hosts) == 0 || host == "" || host[0] == '[' {
		return "", false
	}
	if i := strings.LastIndexByte(host, ':'); i >= 0 {
		host = host[:i]
	}
	host = strings.TrimSuffix(host, ".")
	best := -1
	for i, base := range m.Hosts {
		n := len(host) - len(base)
		if base != "" && n > 1 && host[n-1] == '.' && strings.EqualFold(host[n:], base) && (best < 0 || len(base) > len(m.Hosts[best])) {
			best = i
		}
	}
	if best < 0 {
		return "", false
	}
	// DNS names are case-insensitive; bucket names are lower case.
	return strings.ToLower(host[:len(host)-len(m.Hosts[best])-1]), true
}

func truncate(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}

// UpstreamPath is the escaped path-style path of op ("/bucket/key"), to
// send upstream so that it decodes exactly Op.Bucket and Op.Key.
func (op *Op) UpstreamPath() string {
	switch {
	case op.Bucket == "":
		return "/"
	case op.Key == "":
		return "/" + op.Bucket
	}
	if u := &op.upstream; u.path != "" && u.bucket == op.Bucket && u.key == op.Key {
		return u.path
	}
	return "/" + op.Bucket + "/" + EscapeKey(op.Key)
}

// CopySourceHeader is the x-amz-copy-source value to send upstream, in
// canonical encoding, or "" if op has no copy source.
func (op *Op) CopySourceHeader() string {
	if op.CopySourceBucket == "" {
		return ""
	}
	s := "/" + op.CopySourceBucket + "/" + EscapeKey(op.CopySourceKey)
	if op.CopySourceVersionID != "" {
		s += "?versionId=" + EscapeKey(op.CopySourceVersionID)
	}
	return s
}
