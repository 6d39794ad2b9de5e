package s3iam

import (
	"slices"
	"strconv"

	"github.com/airlock-dev/airlock/internal/s3err"
)

// request is what Map has parsed from an *http.Request.
type request struct {
	method, bucket, key string
	sub                 string
	q                   query
	h                   headers
	hasBody             bool // a Content-Length other than 0, or chunked
}

func (req *request) level() level {
	switch {
	case req.bucket == "":
		return levelService
	case req.key == "":
		return levelBucket
	}
	return levelObject
}

// describe names the request shape for a refusal message.
func describe(method string, lv level, sub string) string {
	s := method
	switch lv {
	case levelService:
		s += " /"
	case levelBucket:
		s += " on a bucket"
	default:
		s += " on an object"
	}
	if sub != "" {
		s += " with ?" + sub
	}
	return s
}

// classify selects the rule for req and builds its Op, in *into if into
// is not nil.
func (req *request) classify(into *Op) (*Op, error) {
	lv := req.level()
	if !slices.Contains(s3Methods, req.method) {
		return nil, s3err.New(s3err.NotImplemented, "%q is not an S3 method: Airlock forwards the S3 API only, not a server's own admin API (such as versitygw's)", truncate(req.method))
	}
	cands := ruleIndex[ruleKey{req.method, lv, req.sub}]
	if len(cands) == 0 {
		if n, why := refused(req.method, lv, req.sub); n != "" {
			return nil, s3err.New(s3err.AccessDenied, "Airlock does not allow the S3 operation %s (%s): %s", n, describe(req.method, lv, req.sub), why)
		}
		return nil, s3err.New(s3err.NotImplemented, "Airlock does not support this S3 request (%s)", describe(req.method, lv, req.sub))
	}
	r := cands[0]
	if len(cands) > 1 {
		r = req.pick(cands)
		if r == nil {
			return nil, s3err.New(s3err.InvalidArgument, "list-type must be 2 or absent")
		}
	}
	if req.h.rename {
		return nil, s3err.New(s3err.AccessDenied, "Airlock does not allow the S3 operation RenameObject (x-amz-rename-source)")
	}
	copies := r.name == "CopyObject" || r.name == "UploadPartCopy"
	if req.h.hasCopySource && !copies {
		return nil, s3err.New(s3err.InvalidRequest, "x-amz-copy-source is not valid on %s", r.name)
	}

	// Params is made by the first parameter set (param): a GetObject
	// without a range has none, and its key is in Key.
	op := into
	if op == nil {
		op = new(Op)
	}
	*op = Op{Name: r.name, Bucket: req.bucket, Key: req.key}
	if req.h.mfaSerial != "" {
		// An MFA-authenticated call (MfaDelete set or unset, a version
		// deleted in an MFA-delete bucket): its device is recorded, its
		// one-time code, a credential, never.
		op.param("mfa_serial", req.h.mfaSerial)
	}
	versionID, err := req.checkParams(r, op)
	if err != nil {
		return nil, err
	}

	var res string
	switch r.res {
	case resObject:
		res = op.objectResource() // op's Bucket and Key are req's
	case resBucket:
		res = ARNPrefix + req.bucket
	case resAll:
		res = AllBucketsARN
	case resPrefix:
		prefix := ""
		if p, ok := req.q.get("prefix"); ok {
			prefix = p.value
		}
		if err := checkName(prefix, "prefix", true); err != nil {
			return nil, err
		}
		op.param("prefix", prefix)
		// A listing names every key that starts with its prefix, so its
		// resource is the prefix pattern: only a statement covering
		// every such key ("…/app/*") allows it. Without the '*' an exact
		// statement ("…/logs/") would match the bare prefix and list
		// everything under it, past a policy's forbid on a part of it
		// (the forbid sees an exact resource that overlaps nothing).
		res = ARNPrefix + req.bucket + "/" + prefix + "*"
	}

	if r.name == "DeleteObjects" {
		op.NeedsBody = true
		op.bypassGovernance = req.h.bypass
		op.Checks = []Check{{Action: bodyPlaceholder, Resource: ARNPrefix + req.bucket}}
		return op, nil
	}
	if r.name == "HeadBucket" {
		// A grant that may list a prefix of the bucket learns that the
		// bucket exists from any listing; HeadBucket tells it no more
		// (clients such as rclone ask it before they upload).
		op.Checks = []Check{{Action: "s3:ListBucket", Resource: res, InBucket: true}}
		return op, nil
	}

	actions := r.actions
	if versionID != "" {
		actions = r.versioned
	}
	if n := len(actions) + 2; n <= len(op.checkRoom) {
		op.Checks = op.checkRoom[:0:n]
	} else {
		op.Checks = make([]Check, 0, n)
	}
	for _, act := range actions {
		op.Checks = append(op.Checks, Check{Action: act, Resource: res})
	}
	switch r.name {
	case "PutObject", "CopyObject", "CreateMultipartUpload":
		req.headerChecks(op, res)
	case "DeleteObject", "PutObjectRetention":
		if req.h.bypass {
			op.Checks = append(op.Checks, Check{Action: "s3:BypassGovernanceRetention", Resource: res})
		}
		if r.name == "PutObjectRetention" && req.hasBody {
			op.deferBody() // the retention it sets is recorded (lockBody)
		}
	case "PutObjectLegalHold":
		if req.hasBody {
			op.deferBody() // the hold it sets is recorded (lockBody)
		}
	case "PutObjectTagging", "PutBucketTagging":
		if req.hasBody {
			op.deferBody() // the tags it sets are recorded (tagBody)
		}
	case "CreateBucket":
		req.createBucketChecks(op, res)
		if req.hasBody {
			op.deferBody()
		}
	case "PutBucketReplication":
		op.deferBody()
	case "PutObjectAcl", "PutBucketAcl":
		req.recordACL(op)
		if req.hasBody {
			// The grantees may be in an AccessControlPolicy body rather
			// than in headers: recorded from it (aclBody).
			op.deferBody()
		}
	default:
		if recordedConfigs[r.name] && req.hasBody {
			op.deferBody() // the configuration it sets is recorded (configRecord)
		}
	}
	if copies {
		if !req.h.hasCopySource {
			return nil, s3err.New(s3err.InvalidRequest, "%s needs x-amz-copy-source", r.name)
		}
		b, k, v, err := parseCopySource(req.h.copySource)
		if err != nil {
			return nil, err
		}
		op.CopySourceBucket, op.CopySourceKey, op.CopySourceVersionID = b, k, v
		act := "s3:GetObject"
		if v != "" {
			act = "s3:GetObjectVersion"
			op.param("copy_source_version_id", v)
		}
		op.Checks = append(op.Checks, Check{Action: act, Resource: ARNPrefix + b + "/" + k})
		op.param("copy_source", b+"/"+k)
		if req.h.copySourceRange != "" {
			op.param("copy_source_range", req.h.copySourceRange)
		}
	}
	if req.h.rng != "" && (r.name == "GetObject" || r.name == "HeadObject") {
		op.param("range", req.h.rng)
	}
	if req.h.objectAttrs != "" && r.name == "GetObjectAttributes" {
		op.param("object_attributes", req.h.objectAttrs)
	}
	return op, nil
}

// pick chooses among rules sharing a (method, level, sub).
func (req *request) pick(cands []*rule) *rule {
	want := ""
	switch cands[0].name {
	case "ListObjectsV2", "ListObjects":
		want = "ListObjects"
		if p, ok := req.q.get("list-type"); ok {
			if p.value != "2" {
				return nil
			}
			want = "ListObjectsV2"
		}
	case "PutObject", "CopyObject":
		want = "PutObject"
		if req.h.hasCopySource {
			want = "CopyObject"
		}
	case "UploadPart", "UploadPartCopy":
		want = "UploadPart"
		if req.h.hasCopySource {
			want = "UploadPartCopy"
		}
	default:
		// A bucket configuration with ids: Get… names one by its id,
		// List… lists them all.
		want = cands[0].name
		if _, ok := req.q.get("id"); !ok {
			want = cands[1].name
		}
	}
	for _, r := range cands {
		if r.name == want {
			return r
		}
	}
	return nil
}

// checkParams refuses any query parameter r does not take (fail closed: an
// unknown parameter might change what the upstream does), validates the
// ones that select or address something, and records the ones a reviewer
// needs. It returns the versionId, if any.
func (req *request) checkParams(r *rule, op *Op) (versionID string, err error) {
	partNumber := false
	for _, p := range req.q {
		// An empty versionId is not an identifier to validate: the
		// switch below decides whether this operation may read it as
		// "no version" (as SDKs mean it) or must refuse it.
		if p.name != "versionId" || p.value != "" {
			if err := CheckQueryID(p.name, p.value); err != nil {
				return "", err // an identifier that is not one (ids.go)
			}
		}
		switch {
		case p.name == r.sub:
			if r.sub == "uploadId" {
				if p.value == "" {
					return "", s3err.New(s3err.InvalidArgument, "uploadId is empty")
				}
				op.param("upload_id", p.value)
			} else if p.value != "" {
				return "", s3err.New(s3err.InvalidArgument, "?%s takes no value", r.sub)
			}
			continue
		case slices.Contains(authParams, p.name):
			continue
		case !slices.Contains(r.params, p.name):
			return "", s3err.New(s3err.NotImplemented, "Airlock does not support the query parameter %q on %s", truncate(p.name), r.name)
		}
		switch p.name {
		case "versionId":
			if p.value == "" {
				// SDKs send "versionId=" for an empty VersionId; S3
				// servers read it as no version. Harmless only where the
				// version does not change the action IAM checks.
				if r.versioned != nil && sameStrings(r.versioned, r.actions) {
					continue
				}
				return "", s3err.New(s3err.InvalidArgument, "versionId is empty")
			}
			versionID = p.value
		case "partNumber":
			if !validPartNumber(p.value) {
				return "", s3err.New(s3err.InvalidArgument, "%s", MsgPartNumber)
			}
			partNumber = true
		case "prefix":
			continue // recorded with the resource
		}
		if slices.Contains(responseParams, p.name) {
			if err := checkResponseOverride(p.name, p.value); err != nil {
				return "", err
			}
		}
		if k := paramKeys[p.name]; k != "" {
			op.param(k, p.value)
		}
	}
	if (r.name == "UploadPart" || r.name == "UploadPartCopy") && !partNumber {
		return "", s3err.New(s3err.InvalidArgument, "%s needs partNumber", r.name)
	}
	return versionID, nil
}

// checkResponseOverride refuses a response-* value that cannot be the
// header the upstream echoes it as: a control character other than a tab
// (CR and LF included) or DEL. Sent on, the upstream either writes it
// into its answer (a header no one authorized, on servers that do not
// clean it) or writes a header section the gateway cannot read, which
// the agent would then be told was an upstream outage to retry.
func checkResponseOverride(name, v string) error {
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < 0x20 && c != '\t' || c == 0x7f {
			return s3err.New(s3err.InvalidArgument, "%s contains a control character (byte 0x%02x), which cannot be a response header's value", name, c)
		}
	}
	return nil
}

// validPartNumber accepts 1..10000 written in plain decimal digits (no
// sign, no leading zero), so every server reads the same number.
func validPartNumber(s string) bool {
	if s == "" || len(s) > 5 || s[0] == '0' {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	n, _ := strconv.Atoi(s)
	return n <= 10000
}

// headerChecks adds the permissions IAM requires for headers that set
// more than the object's bytes.
func (req *request) headerChecks(op *Op, res string) {
	if req.h.acl != "" {
		op.Checks = append(op.Checks, Check{Action: "s3:PutObjectAcl", Resource: res})
		req.recordACL(op)
	}
	if req.h.hasTagging {
		op.Checks = append(op.Checks, Check{Action: "s3:PutObjectTagging", Resource: res})
		op.param("tagging", req.h.tagging)
	}
	if req.h.retention {
		op.Checks = append(op.Checks, Check{Action: "s3:PutObjectRetention", Resource: res})
	}
	if req.h.legalHold {
		op.Checks = append(op.Checks, Check{Action: "s3:PutObjectLegalHold", Resource: res})
	}
	op.addParams(req.h.lock)
}

// recordACL records the canned ACL (x-amz-acl, or "grant") and every
// x-amz-grant-* value: "grant" alone would not tell a reviewer whom the
// call gave access to.
func (req *request) recordACL(op *Op) {
	if req.h.acl != "" {
		op.param("acl", req.h.acl)
	}
	op.addParams(req.h.grants)
}

// createBucketChecks adds the permissions IAM requires for CreateBucket's
// headers that configure more than the bucket's existence.
func (req *request) createBucketChecks(op *Op, res string) {
	add := func(act string) { op.Checks = append(op.Checks, Check{Action: act, Resource: res}) }
	if req.h.acl != "" {
		add("s3:PutBucketAcl")
		req.recordACL(op)
	}
	if req.h.objectLockEnabled {
		add("s3:PutBucketObjectLockConfiguration")
		add("s3:PutBucketVersioning")
		op.param("object_lock_enabled", "true")
	}
	if req.h.objectOwnership != "" {
		add("s3:PutBucketOwnershipControls")
		op.param("object_ownership", req.h.objectOwnership)
	}
}
