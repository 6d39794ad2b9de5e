package s3iam

import (
	"net/http"
	"strings"

	"github.com/airlock-dev/airlock/internal/s3err"
)

// headers are the request headers that change what an operation does or
// which permissions IAM requires for it.
type headers struct {
	copySource      string
	hasCopySource   bool
	copySourceRange string
	rng             string
	acl             string // x-amz-acl, or "grant" for an x-amz-grant-* header
	tagging         string
	hasTagging      bool
	retention       bool // x-amz-object-lock-mode / -retain-until-date
	legalHold       bool // x-amz-object-lock-legal-hold
	bypass          bool // x-amz-bypass-governance-retention other than "false"
	rename          bool // x-amz-rename-source (RenameObject)
	// CreateBucket: x-amz-bucket-object-lock-enabled other than "false",
	// and x-amz-object-ownership.
	objectLockEnabled bool
	objectOwnership   string
	objectAttrs       string
	// mfaSerial is the device of x-amz-mfa ("SERIAL CODE"), without the
	// one-time code.
	mfaSerial string
	// grants are the x-amz-grant-* values by their Params name
	// ("grant_read"), and lock the object-lock headers' values by theirs:
	// who an ACL grants access to, and which retention a write sets, are
	// what a reviewer of the call needs to see.
	grants map[string]string
	lock   map[string]string
}

// scanHeaders reads the headers that matter in one pass. Header names are
// matched case-insensitively, so a map key that bypassed Go's
// canonicalisation is still seen. A header that decides the operation
// may appear only once.
func scanHeaders(h http.Header) (headers, error) {
	var out headers
	for k, vs := range h {
		if len(vs) == 0 {
			continue
		}
		// ASCII comparisons, as strings.EqualFold's for these names: no
		// byte of k that is not ASCII can match (a rune folding onto
		// ASCII, as the Kelvin sign onto k, takes more bytes than one,
		// and "range" has no k or s), where EqualFold's rune decoding
		// cost about 800 instructions a call (bench/HISTORY.md, "S3 GET
		// 1 KiB: the signed names' keys, their byte check and the
		// unsigned-header check's compares").
		if len(k) == len("range") && hasLowerPrefixFold(k, "range") {
			out.rng = vs[0]
			continue
		}
		if !hasLowerPrefixFold(k, "x-amz-") {
			continue
		}
		name := k[6:]
		switch amzKindOf(name) {
		case amzCopySource:
			if len(vs) > 1 || out.hasCopySource {
				return out, s3err.New(s3err.InvalidArgument, "x-amz-copy-source is given more than once")
			}
			out.copySource, out.hasCopySource = vs[0], true
		case amzCopySourceRange:
			out.copySourceRange = vs[0]
		case amzACL:
			// Its presence alone asks for the ACL action: a first value
			// of "" must not hide a second one the upstream may read.
			if len(vs) > 1 || vs[0] == "" || out.acl != "" && out.acl != "grant" {
				return out, s3err.New(s3err.InvalidArgument, "x-amz-acl is empty or given more than once")
			}
			out.acl = vs[0]
		case amzGrant:
			if out.acl == "" {
				out.acl = "grant"
			}
			out.grants = setParam(out.grants, "grant_"+name[6:], vs)
		case amzTagging:
			out.tagging, out.hasTagging = vs[0], true
		case amzLock:
			out.retention = true
			out.lock = setParam(out.lock, name, vs)
		case amzLegalHold:
			out.legalHold = true
			out.lock = setParam(out.lock, name, vs)
		case amzBypass:
			for _, v := range vs {
				if !strings.EqualFold(strings.TrimSpace(v), "false") {
					out.bypass = true
				}
			}
		case amzBucketLock:
			for _, v := range vs {
				if !strings.EqualFold(strings.TrimSpace(v), "false") {
					out.objectLockEnabled = true
				}
			}
		case amzOwnership:
			if len(vs) > 1 || vs[0] == "" || out.objectOwnership != "" {
				return out, s3err.New(s3err.InvalidArgument, "x-amz-object-ownership is empty or given more than once")
			}
			out.objectOwnership = vs[0]
		case amzRename:
			out.rename = true
		case amzObjectAttrs:
			out.objectAttrs = strings.Join(vs, ",")
		case amzMFA:
			serials := make([]string, 0, len(vs))
			for _, v := range vs {
				serial, _, _ := strings.Cut(strings.TrimSpace(v), " ")
				if len(serial) > maxMFASerial {
					serial = serial[:maxMFASerial] + "..."
				}
				serials = append(serials, serial)
			}
			out.mfaSerial = strings.Join(serials, ", ")
		}
	}
	return out, nil
}

// amzKind is which of the headers scanHeaders reads an x-amz-* header is.
type amzKind uint8

const (
	amzOther amzKind = iota
	amzCopySource
	amzCopySourceRange
	amzACL
	amzGrant // x-amz-grant-*
	amzTagging
	amzLock // x-amz-object-lock-mode, -retain-until-date
	amzLegalHold
	amzBypass
	amzBucketLock
	amzOwnership
	amzRename
	amzObjectAttrs
	amzMFA
)

// amzKinds are the names scanHeaders reads, after "x-amz-", lower case.
var amzKinds = map[string]amzKind{
	"copy-source": amzCopySource, "copy-source-range": amzCopySourceRange, "acl": amzACL,
	"tagging": amzTagging, "object-lock-mode": amzLock, "object-lock-retain-until-date": amzLock,
	"object-lock-legal-hold": amzLegalHold, "bypass-governance-retention": amzBypass,
	"bucket-object-lock-enabled": amzBucketLock, "object-ownership": amzOwnership,
	"rename-source": amzRename, "object-attributes": amzObjectAttrs, "mfa": amzMFA,
}

// amzKindOf names what an x-amz-* header is (name is what follows
// "x-amz-"), matching as strings.EqualFold does. An ASCII name (every
// name Go's server passes on) is lowered on the stack and looked up once,
// where a chain of strings.EqualFold against every name cost each of a
// request's x-amz-* headers a comparison per case; any other name is
// matched by strings.EqualFold itself, whose Unicode folding ("K" for "k")
// an ASCII comparison would miss.
//
// An ASCII name of no length amzKinds has (a GET's date, content-sha256
// and security-token) can be no kind but a grant, and is not lowered or
// looked up: that was some 300 instructions a header. A name that is not
// ASCII may match one of fewer bytes (the Kelvin sign, three bytes, folds
// onto the k of object-lock-mode), so it still takes the whole way.
func amzKindOf(name string) amzKind {
	if n := len(name); n < 64 && amzKindLens&(1<<n) == 0 && isASCII(name) {
		if n > 6 && hasLowerPrefixFold(name, "grant-") {
			return amzGrant
		}
		return amzOther
	}
	return amzKindOfAny(name)
}

// amzKindOfAny is amzKindOf for any name: lowered and looked up if ASCII
// and short, else matched by strings.EqualFold.
func amzKindOfAny(name string) amzKind {
	var buf [32]byte
	if lower, ok := appendLowerASCII(buf[:0], name); ok {
		if k, ok := amzKinds[string(lower)]; ok {
			return k
		}
		if len(lower) > 6 && string(lower[:6]) == "grant-" {
			return amzGrant
		}
		return amzOther
	}
	for n, k := range amzKinds {
		if strings.EqualFold(name, n) {
			return k
		}
	}
	if len(name) > 6 && strings.EqualFold(name[:6], "grant-") {
		return amzGrant
	}
	return amzOther
}

// amzKindLens has bit n set for each length n of amzKinds' names.
var amzKindLens = func() (m uint64) {
	for n := range amzKinds {
		if len(n) >= 64 {
			panic("s3iam: amzKinds holds a name of 64 bytes or more: " + n)
		}
		m |= 1 << len(n)
	}
	return m
}()

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// hasLowerPrefixFold reports whether k starts with prefix, ASCII lower
// case, in any case, comparing bytes as ASCII. That is
// strings.EqualFold(k[:len(prefix)], prefix): a byte of k's first
// len(prefix) that is not ASCII leaves them fewer runes than prefix has,
// or decodes as U+FFFD, which folds onto no ASCII letter. (As sigv4's,
// which this package does not import.)
func hasLowerPrefixFold(k, prefix string) bool {
	if len(k) < len(prefix) {
		return false
	}
	for i := 0; i < len(prefix); i++ {
		if c := k[i]; c != prefix[i] && ('A' > c || c > 'Z' || c+('a'-'A') != prefix[i]) {
			return false
		}
	}
	return true
}

// appendLowerASCII appends s in lower case to b if s is ASCII and fits
// b's capacity without growing it (so that b can be a stack array); ok
// is false otherwise.
func appendLowerASCII(b []byte, s string) (_ []byte, ok bool) {
	if len(s) > cap(b)-len(b) {
		return b, false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x80 {
			return b, false
		}
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		b = append(b, c)
	}
	return b, true
}

// maxMFASerial bounds a recorded MFA device serial (an ARN for a
// virtual device, IAM's 256 at most; longer ones, which S3 refuses, are
// recorded cut).
const maxMFASerial = 256

// setParam adds a header's values to m (made if nil) under its Params
// name: header name in lower case, '-' as '_' ("object_lock_mode").
func setParam(m map[string]string, header string, vs []string) map[string]string {
	if m == nil {
		m = make(map[string]string, 2)
	}
	m[strings.ReplaceAll(strings.ToLower(header), "-", "_")] = strings.Join(vs, ", ")
	return m
}

// parseCopySource decodes an x-amz-copy-source value: "bucket/key" or
// "/bucket/key", percent-encoded, optionally followed by
// "?versionId=ID". The key obeys the same rules as a request path's key.
// Access point and Outposts ARNs are refused.
func parseCopySource(v string) (bucket, key, versionID string, err error) {
	raw, rawQuery, hasQuery := strings.Cut(v, "?")
	raw = strings.TrimPrefix(raw, "/")
	if strings.HasPrefix(raw, "arn:") || strings.HasPrefix(raw, "arn%3A") || strings.HasPrefix(raw, "arn%3a") {
		return "", "", "", s3err.New(s3err.NotImplemented, "Airlock does not support copying from an access point or Outposts ARN")
	}
	if !validEscapes(raw) {
		return "", "", "", s3err.New(s3err.InvalidArgument, "Invalid copy source encoding")
	}
	bucket, rawKey, ok := strings.Cut(raw, "/")
	// S3's own messages where S3 has one, so that clients see the same
	// error as without Airlock.
	if !validBucket(bucket) {
		return "", "", "", s3err.New(s3err.InvalidArgument, "Invalid copy source bucket name")
	}
	if !ok || rawKey == "" {
		return "", "", "", s3err.New(s3err.InvalidArgument, "Invalid copy source object key")
	}
	if key, err = unescape(rawKey, "x-amz-copy-source key"); err != nil {
		return "", "", "", err
	}
	if strings.IndexByte(key, '?') >= 0 {
		// S3 reads an encoded '?' as part of the key, but versitygw
		// decodes the whole header before it looks for "?versionId=", and
		// would copy that version of the key before the '?': the version
		// checked (none, s3:GetObject) would not be the one read.
		return "", "", "", s3err.New(s3err.InvalidArgument, "x-amz-copy-source key contains an encoded '?', which S3-compatible servers that decode the header before splitting off ?versionId= would read as a version")
	}
	if err = checkName(key, "x-amz-copy-source key", false); err != nil {
		if seg := "/" + key + "/"; strings.Contains(seg, "/./") || strings.Contains(seg, "/../") {
			return "", "", "", s3err.New(s3err.InvalidArgument, "Invalid copy source object key")
		}
		return "", "", "", err
	}
	if hasQuery {
		q, err := parseQuery(rawQuery)
		if err != nil {
			return "", "", "", err
		}
		p, ok := q.get("versionId")
		if len(q) != 1 || !ok || p.value == "" {
			return "", "", "", s3err.New(s3err.InvalidArgument, "x-amz-copy-source may only be followed by ?versionId=ID")
		}
		if err := CheckOpaqueID("the versionId of x-amz-copy-source", p.value); err != nil {
			return "", "", "", err
		}
		versionID = p.value
	}
	return bucket, key, versionID, nil
}

// validEscapes reports whether every '%' in s starts a two-digit hex
// escape.
func validEscapes(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			continue
		}
		if i+2 >= len(s) || !isHex(s[i+1]) || !isHex(s[i+2]) {
			return false
		}
		i += 2
	}
	return true
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}
