package sigv4

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"net/textproto"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/airlock-dev/airlock/internal/s3err"
)

// Header and query names, as Go canonicalises header keys.
const (
	hAuthorization = "Authorization"
	hAmzDate       = "X-Amz-Date"
	hDate          = "Date"
	hContentSHA256 = "X-Amz-Content-Sha256"
	hSecurityToken = "X-Amz-Security-Token"
	hDecodedLength = "X-Amz-Decoded-Content-Length"
	hTrailer       = "X-Amz-Trailer"

	qAlgorithm     = "X-Amz-Algorithm"
	qCredential    = "X-Amz-Credential"
	qDate          = "X-Amz-Date"
	qExpires       = "X-Amz-Expires"
	qSignedHeaders = "X-Amz-SignedHeaders"
	qSignature     = "X-Amz-Signature"
	qSecurityToken = "X-Amz-Security-Token"
	qContentSHA256 = "X-Amz-Content-Sha256"
)

// scratch is the per-call working memory, pooled so that a verification
// allocates little beyond the Auth it returns.
type scratch struct {
	buf   []byte // canonical request
	sts   []byte // string to sign
	id    []byte // signing key cache id
	pairs []queryPair
	names []string    // the SignedHeaders names, slices of the request's header or query
	amz   []amzHeader // the request's x-amz-* headers (amzHeaders)
	key   [64]byte
	sum   [64]byte // an HMAC's output (and its inner digest, which Sum appends first)
	// Used by Signer.Sign: the signed headers, and their names' list.
	signed []signedHeader
	hdrs   []byte
}

// maxPooledNames bounds the SignedHeaders names a pooled scratch keeps
// room for; a request signs about ten.
const maxPooledNames = 256

var scratchPool = sync.Pool{New: func() any {
	return &scratch{buf: make([]byte, 0, 1024), sts: make([]byte, 0, 256)}
}}

// Verify checks r's SigV4 signature (Authorization header or presigned
// query). It does not read the body. Errors are *s3err.Error, except that
// an error from Lookup is returned unchanged.
func (v *Verifier) Verify(r *http.Request) (*Auth, error) {
	return v.VerifyWith(r, v.Lookup)
}

// VerifyWith is Verify resolving the access key with lookup instead of
// v.Lookup. It lets a server keep one Verifier, and so its cache of
// derived signing keys, across requests while its lookup carries
// per-request state.
func (v *Verifier) VerifyWith(r *http.Request, lookup Lookup) (*Auth, error) {
	return v.VerifyInto(r, lookup, nil)
}

// VerifyInto is VerifyWith, setting the Auth it returns in *into (whole:
// nothing of what it held stays) rather than allocating one, unless into
// is nil: a gateway keeps it in the memory it allocates for the call
// anyway. On an error *into may have been written.
func (v *Verifier) VerifyInto(r *http.Request, lookup Lookup, into *Auth) (*Auth, error) {
	if lookup == nil {
		return nil, s3err.New(s3err.InternalError, "sigv4: the Verifier has no Lookup")
	}
	sc := scratchPool.Get().(*scratch)
	defer func() {
		// Keep no huge buffer alive: a SignedHeaders list may name
		// thousands of headers within net/http's header limit.
		if cap(sc.buf) <= 64<<10 && cap(sc.sts) <= 64<<10 && cap(sc.names) <= maxPooledNames && cap(sc.amz) <= maxPooledNames {
			sc.buf, sc.sts = sc.buf[:0], sc.sts[:0]
			clear(sc.pairs)
			sc.pairs = sc.pairs[:0]
			clear(sc.names)
			sc.names = sc.names[:0]
			clear(sc.amz)
			sc.amz = sc.amz[:0]
			scratchPool.Put(sc)
		}
	}()

	authz, hasHeader := r.Header[hAuthorization]
	presigned := hasParam(r.URL.RawQuery, qAlgorithm) || hasParam(r.URL.RawQuery, qSignature)
	switch {
	case hasHeader && presigned:
		return nil, s3err.New(s3err.InvalidArgument, "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter or the Authorization header should be specified")
	case hasHeader:
		if len(authz) != 1 {
			return nil, malformed("only one Authorization header is allowed")
		}
		return allSigned(sc)(v.verifyHeader(r, authz[0], lookup, sc, into))
	case presigned:
		return allSigned(sc)(v.verifyPresigned(r, lookup, sc, into))
	}
	if hasParam(r.URL.RawQuery, "AWSAccessKeyId") || hasParam(r.URL.RawQuery, "Signature") {
		// A Signature Version 2 presigned URL (older boto3, 1.26 for one, presigns
		// so by default; so does s3cmd signurl).
		return nil, unsupportedMechanism()
	}
	e := s3err.New(s3err.AccessDenied, "Anonymous access is not allowed: sign the request with AWS Signature Version 4 (%s) using the grant's credentials", algorithmV4)
	e.Anonymous = true // no credentials at all, not denied ones
	return nil, e
}

// unsupportedMechanism is S3's answer to Signature Version 2, in a header
// or a presigned URL.
func unsupportedMechanism() *s3err.Error {
	return s3err.Detailed(s3err.InvalidRequest, "The authorization mechanism you have provided is not supported. Please use "+algorithmV4+".", "Airlock accepts Signature Version 4 only: boto3 presigns with it given signature_version s3v4")
}

// authIn is into, or a new Auth if into is nil.
func authIn(into *Auth) *Auth {
	if into == nil {
		return new(Auth)
	}
	return into
}

func (v *Verifier) now() time.Time {
	if v.Now != nil {
		return v.Now()
	}
	return time.Now()
}

func (v *Verifier) skew() time.Duration {
	if v.MaxSkew > 0 {
		return v.MaxSkew
	}
	return DefaultMaxSkew
}

func (v *Verifier) verifyHeader(r *http.Request, authz string, lookup Lookup, sc *scratch, into *Auth) (*Auth, error) {
	c, e := parseAuthorization(authz, v.Service, sc.names[:0])
	sc.names = c.names
	if e != nil {
		return nil, e
	}
	if e := v.checkScope(&c, false); e != nil {
		return nil, e
	}

	amzDate := first(r.Header, hAmzDate)
	var signedAt time.Time
	if amzDate != "" {
		t, ok := parseAmzDate(amzDate)
		if !ok {
			return nil, s3err.Detailed(s3err.AccessDenied, msgNoDate, "X-Amz-Date must be in the ISO 8601 basic format yyyyMMdd'T'HHmmss'Z'")
		}
		signedAt = t
	} else if d := first(r.Header, hDate); d != "" {
		t, err := http.ParseTime(d)
		if err != nil {
			return nil, s3err.Detailed(s3err.AccessDenied, msgNoDate, "the Date header is not a valid HTTP date")
		}
		signedAt = t.UTC()
		amzDate = signedAt.Format(amzDateFmt)
	} else {
		return nil, s3err.New(s3err.AccessDenied, msgNoDate)
	}
	if amzDate[:8] != c.date {
		return nil, malformedDetail("Invalid credential date. Date is not the same as X-Amz-Date.", "credential date %q, X-Amz-Date %q", c.date, amzDate[:8])
	}
	now := v.now()
	if d := now.Sub(signedAt); d > v.skew() || d < -v.skew() {
		return nil, s3err.New(s3err.RequestTimeTooSkewed, "The difference between the request time (%s) and the server time (%s) is more than %s; check the client's clock", signedAt.Format(time.RFC3339), now.UTC().Format(time.RFC3339), v.skew())
	}

	payload := first(r.Header, hContentSHA256)
	hashBody := payload == "" && c.service != "s3" && v.HashBody != nil
	if payload == "" && !hashBody {
		return nil, s3err.New(s3err.InvalidRequest, "Missing required header for this request: x-amz-content-sha256")
	}
	sc.amz = amzHeaders(r.Header, sc.amz[:0])
	a := authIn(into)
	*a = Auth{
		AccessKeyID: c.accessKey, Region: c.region, Service: c.service,
		SignedAt: signedAt, CheckedAt: now, DecodedLength: r.ContentLength,
	}
	if !hashBody {
		if e := a.setPayload(r, payload, sc.amz); e != nil {
			return nil, e
		}
	}

	secret, token, err := lookup(c.accessKey)
	if err != nil {
		return nil, err
	}
	if e := checkToken(token, first(r.Header, hSecurityToken), slices.Contains(c.names, "x-amz-security-token"), false); e != nil {
		return nil, e
	}
	if hashBody {
		h, err := v.HashBody(r)
		if err != nil {
			return nil, err
		}
		if payload = h; !isHex64(payload) {
			return nil, s3err.New(s3err.InternalError, "sigv4: HashBody returned no lowercase hex SHA-256")
		}
		if e := a.setPayload(r, payload, sc.amz); e != nil {
			return nil, e
		}
	}

	buf, e := buildCanonical(sc, r, &c, nil, "", payload)
	if e != nil {
		return nil, e
	}
	return v.finish(a, &c, secret, amzDate, buf, sc)
}

func (v *Verifier) verifyPresigned(r *http.Request, lookup Lookup, sc *scratch, into *Auth) (*Auth, error) {
	pairs, ok := parseQuery(r.URL.RawQuery, sc.pairs[:0])
	sc.pairs = pairs
	if !ok {
		return nil, queryError("the query string has a malformed percent-encoding")
	}
	var alg, cred, amzDate, expires, signedHeaders, sig, token, payload string
	var hoisted http.Header
	for _, p := range pairs {
		var dst *string
		switch p.key {
		case qAlgorithm:
			dst = &alg
		case qCredential:
			dst = &cred
		case qDate:
			dst = &amzDate
		case qExpires:
			dst = &expires
		case qSignedHeaders:
			dst = &signedHeaders
		case qSignature:
			dst = &sig
		case qSecurityToken:
			dst = &token
		case qContentSHA256:
			dst = &payload
		default:
			if isHoistable(p.key) {
				if !validHeaderName(p.key) || !validHeaderValue(p.value) {
					// It goes upstream as a header: a name or value that
					// cannot be one (CR, LF, a space, a colon, NUL) must
					// never reach the upstream request, where a CRLF
					// would splice in a header nobody authorized.
					return nil, s3err.Detailed(s3err.InvalidArgument, "Query parameter "+clip(printable(p.key))+" is not a valid header",
						"a presigned URL's x-amz-* parameters stand for headers: the name must be an HTTP token and the value free of control characters")
				}
				k := textproto.CanonicalMIMEHeaderKey(p.key)
				if hoisted == nil {
					hoisted = http.Header{}
				} else if _, dup := hoisted[k]; dup {
					return nil, s3err.New(s3err.InvalidArgument, "Query parameter %s is given more than once", clip(p.key))
				}
				hoisted[k] = []string{p.value}
			}
			continue
		}
		if *dst != "" {
			return nil, queryError("Query parameter %s is given more than once", p.key)
		}
		*dst = p.value
	}
	if alg != algorithmV4 {
		if alg == algorithmV4A {
			return nil, queryErrorDetail("X-Amz-Algorithm only supports \""+algorithmV4+"\"", "Signature Version 4A (%s) is not supported", algorithmV4A)
		}
		return nil, queryErrorDetail(`X-Amz-Algorithm only supports "AWS4-HMAC-SHA256 and AWS4-ECDSA-P256-SHA256"`, "Airlock verifies %s only", algorithmV4)
	}
	for _, req := range [...]struct{ name, v string }{{qCredential, cred}, {qDate, amzDate}, {qExpires, expires}, {qSignedHeaders, signedHeaders}, {qSignature, sig}} {
		if req.v == "" {
			return nil, queryErrorDetail("Query-string authentication version 4 requires the X-Amz-Algorithm, X-Amz-Credential, X-Amz-Signature, X-Amz-Date, X-Amz-SignedHeaders, and X-Amz-Expires parameters.", "%s is missing", req.name)
		}
	}
	var c credentials
	if msg := parseCredential(cred, v.Service, &c); msg != "" {
		return nil, queryError("Error parsing the X-Amz-Credential parameter; %s", msg)
	}
	names, msg := splitSignedHeaders(signedHeaders, sc.names[:0])
	sc.names = names
	if msg != "" {
		return nil, queryError("Error parsing the X-Amz-SignedHeaders parameter: %s", msg)
	}
	c.signedHeaders, c.names, c.signature = signedHeaders, names, sig
	if c.sig, ok = decodeSig(sig); !ok {
		return nil, queryError("X-Amz-Signature must be 64 lowercase hexadecimal characters")
	}
	if e := v.checkScope(&c, true); e != nil {
		return nil, e
	}
	signedAt, ok := parseAmzDate(amzDate)
	if !ok {
		return nil, queryError(`X-Amz-Date must be in the ISO8601 Long Format "yyyyMMdd'T'HHmmss'Z'"`)
	}
	if amzDate[:8] != c.date {
		return nil, queryError("Invalid credential date %q. This date is not the same as X-Amz-Date: %q.", c.date, amzDate[:8])
	}
	secs, err := strconv.ParseInt(expires, 10, 64)
	switch {
	case err != nil || expires[0] == '+':
		return nil, queryErrorDetail("X-Amz-Expires should be a number", "a whole number of seconds from 1 to 604800")
	case secs < 0:
		return nil, queryErrorDetail("X-Amz-Expires must be non-negative", "a whole number of seconds from 1 to 604800")
	case secs == 0:
		return nil, queryErrorDetail("X-Amz-Expires must be a whole number of seconds from 1 to 604800", "a presigned URL valid for 0 seconds has expired when it is made")
	}
	if secs > int64(MaxPresignExpiry/time.Second) {
		return nil, queryError("X-Amz-Expires must be less than a week (in seconds); that is, the given X-Amz-Expires must be less than 604800 seconds")
	}
	now := v.now()
	if signedAt.Sub(now) > v.skew() {
		return nil, s3err.New(s3err.AccessDenied, "Request is not valid yet: it is dated %s, in the future (server time %s)", signedAt.Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	exp := signedAt.Add(time.Duration(secs) * time.Second)
	if !now.Before(exp) {
		e := s3err.Detailed(s3err.AccessDenied, "Request has expired.", "the presigned URL was valid until %s", exp.Format(time.RFC3339))
		e.Expired = &s3err.Expired{ServerTime: now.UTC().Format(time.RFC3339), Expires: exp.Format(time.RFC3339), XAmzExpires: secs}
		return nil, e
	}

	a := authIn(into)
	*a = Auth{
		AccessKeyID: c.accessKey, Region: c.region, Service: c.service,
		SignedAt: signedAt, CheckedAt: now, Presigned: true, Expires: exp, DecodedLength: r.ContentLength,
		Hoisted: hoisted,
	}
	// A presigned URL normally leaves the payload unsigned; a client that
	// signed a digest (as a parameter, or as a signed header) gets it
	// checked.
	if payload == "" && slices.Contains(names, "x-amz-content-sha256") {
		payload = first(r.Header, hContentSHA256)
	}
	if payload == "" {
		payload = unsignedPayload
	}
	sc.amz = amzHeaders(r.Header, sc.amz[:0])
	if e := a.setPayload(r, payload, sc.amz); e != nil {
		return nil, e
	}
	if a.Payload.Streaming() {
		return nil, queryError("a presigned URL cannot use %s", payload)
	}

	secret, sessionToken, lerr := lookup(c.accessKey)
	if lerr != nil {
		return nil, lerr
	}
	if e := checkToken(sessionToken, token, true, true); e != nil {
		return nil, e
	}
	buf, e := buildCanonical(sc, r, &c, pairs, qSignature, payload)
	if e != nil {
		return nil, e
	}
	return v.finish(a, &c, secret, amzDate, buf, sc)
}

// checkScope enforces the Verifier's Region and Service, if set.
func (v *Verifier) checkScope(c *credentials, presigned bool) *s3err.Error {
	if v.Region != "" && c.region != v.Region {
		return regionError(c.region, v.Region, presigned)
	}
	if v.Service != "" && c.service != v.Service {
		if presigned {
			return queryError("Error parsing the X-Amz-Credential parameter; incorrect service %q. This endpoint belongs to %q.", clip(c.service), v.Service)
		}
		return malformed("incorrect service %q. This endpoint belongs to %q.", clip(c.service), v.Service)
	}
	return nil
}

// CheckRegion refuses a request signed for another region than want, as
// S3 does (the credential scope names the region the signature is good
// for; accepting any would let a request signed for one region's endpoint
// be replayed at another's). Use it when the region is known only once the
// credential is (the gateway's targets each have their own).
func (a *Auth) CheckRegion(want string) *s3err.Error {
	if a.Region == want {
		return nil
	}
	return regionError(a.Region, want, a.Presigned)
}

// regionError is S3's answer to a credential scope for the wrong region,
// naming the right one in <Region> as S3 does (boto3 retries with it).
func regionError(got, want string, presigned bool) *s3err.Error {
	var e *s3err.Error
	if presigned {
		e = queryError("Error parsing the X-Amz-Credential parameter; the region '%s' is wrong; expecting '%s'", clip(got), want)
	} else {
		e = s3err.New(s3err.AuthorizationHeaderMalformed, "The authorization header is malformed; the region '%s' is wrong; expecting '%s'", clip(got), want)
	}
	e.Region = want
	return e
}

// checkToken enforces the session token rule. want is the credential's
// token, got the request's; signed says whether the request's signature
// covers it (always, for a presigned URL, whose query is signed).
func checkToken(want, got string, signed, presigned bool) *s3err.Error {
	where := "the X-Amz-Security-Token header"
	if presigned {
		where = "the X-Amz-Security-Token query parameter"
	}
	switch {
	case want == "" && got == "":
		return nil
	case want == "":
		return s3err.Detailed(s3err.InvalidToken, msgBadToken, "this credential has no session token, but %s is set", where)
	case got == "":
		return s3err.New(s3err.InvalidToken, "This credential requires its session token in %s (set AWS_SESSION_TOKEN)", where)
	case !signed:
		return s3err.New(s3err.InvalidToken, "The X-Amz-Security-Token header must be included in SignedHeaders")
	case subtle.ConstantTimeCompare([]byte(want), []byte(got)) != 1:
		return s3err.New(s3err.InvalidToken, msgBadToken)
	}
	return nil
}

// setPayload interprets the x-amz-content-sha256 value and the headers
// that go with it.
func (a *Auth) setPayload(r *http.Request, payload string, amz []amzHeader) *s3err.Error {
	switch payload {
	case unsignedPayload:
		a.Payload = Unsigned
	case streamingSigned:
		a.Payload = StreamingSigned
	case streamingSignedTrailer:
		a.Payload = StreamingSignedTrailer
	case streamingUnsignedTrailer:
		a.Payload = StreamingUnsignedTrailer
	case "STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD", "STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD-TRAILER":
		return s3err.New(s3err.NotImplemented, "Signature Version 4A payload signing (%s) is not supported", payload)
	default:
		lower, ok := lowerHex64(payload)
		if !ok {
			e := s3err.Detailed(s3err.InvalidArgument, "x-amz-content-sha256 must be UNSIGNED-PAYLOAD, STREAMING-UNSIGNED-PAYLOAD-TRAILER, STREAMING-AWS4-HMAC-SHA256-PAYLOAD, STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER, STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD, STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD-TRAILER or a valid sha256 value.",
				"Airlock does not verify the ECDSA (Signature Version 4A) modes")
			e.ArgumentName, e.ArgumentValue = "x-amz-content-sha256", clip(payload)
			return e
		}
		a.Payload = SHA256
		a.PayloadSHA256 = lower
	}

	// The chain is allocated only for a body that needs it (aws-chunked
	// framing, trailers, a checksum to compute): a plain GET's Auth is then
	// its verification's one allocation.
	var st chain
	if a.Payload.Streaming() {
		// Every aws-chunked mode declares the decoded length, as S3 (and
		// versitygw) require: an upload of unknown length is refused here,
		// before anything is forwarded, rather than left to the upstream,
		// whose early refusal would race the body still being sent.
		d := first(r.Header, hDecodedLength)
		if d == "" {
			return s3err.Detailed(s3err.MissingContentLength, "You must provide the Content-Length HTTP header.", "x-amz-decoded-content-length is required with %s", payload)
		}
		n, err := strconv.ParseInt(d, 10, 64)
		if err != nil || n < 0 || d[0] == '+' {
			return s3err.Detailed(s3err.MissingContentLength, "You must provide the Content-Length HTTP header.", "x-amz-decoded-content-length must be a non-negative integer")
		}
		a.DecodedLength = n
	}
	if a.Payload == StreamingSignedTrailer || a.Payload == StreamingUnsignedTrailer {
		for _, v := range r.Header[hTrailer] {
			for _, name := range strings.Split(v, ",") {
				name = strings.ToLower(strings.TrimSpace(name))
				if name == "" {
					continue
				}
				if len(st.trailers) >= maxTrailers {
					return s3err.New(s3err.InvalidArgument, "x-amz-trailer declares too many trailers")
				}
				if isChecksumName(name) {
					alg := algorithmFor(name)
					if alg == nil {
						return s3err.New(s3err.InvalidRequest, "The value specified in the x-amz-trailer header is not supported: %q", clip(name))
					}
					if a.Checksum != "" {
						return s3err.New(s3err.InvalidRequest, "Expecting a single x-amz-checksum- header. Multiple checksum Types are not allowed.")
					}
					if alg.new != nil {
						st.alg = alg
					}
					a.Checksum = name
				}
				st.trailers = append(st.trailers, name)
			}
		}
	}
	// A checksum sent as a header (or hoisted into a presigned URL's query)
	// is verified over the payload too: the gateway consumes the body, and
	// in streaming modes it must re-frame it, so it cannot rely on the
	// upstream to check a value it may not forward. Algorithms the gateway
	// cannot compute are forwarded for the upstream to check.
	// Count the checksum headers first: with more than one, S3 says so
	// whatever their values.
	var held [2]amzHeader
	sums := checksumHeaders(amz, a.Hoisted, held[:0])
	if len(sums)+btoi(a.Checksum != "") > 1 || len(sums) == 1 && len(sums[0].vs) != 1 {
		return s3err.New(s3err.InvalidRequest, "Expecting a single x-amz-checksum- header. Multiple checksum Types are not allowed.")
	}
	for _, c := range sums {
		lower := c.k
		alg := algorithmFor(lower)
		if alg == nil {
			return s3err.Detailed(s3err.InvalidRequest, "The algorithm type you specified in x-amz-checksum- header is invalid.", "%q", clip(lower))
		}
		v := strings.TrimSpace(c.vs[0])
		base, composite := splitComposite(v)
		if !alg.validValue(base) {
			return s3err.New(s3err.InvalidRequest, "Value for %s header is invalid.", lower)
		}
		if alg.new != nil {
			st.alg = alg
		}
		a.Checksum = lower
		a.headerChecksum = v
		a.headerComposite = composite
	}
	// x-amz-sdk-checksum-algorithm names the algorithm of the checksum
	// header or trailer; S3 refuses one that names another.
	if sdk := first(r.Header, hSDKChecksumAlgorithm); sdk != "" && a.Checksum != "" &&
		!strings.EqualFold(sdk, strings.TrimPrefix(a.Checksum, checksumPrefix)) {
		return s3err.Detailed(s3err.InvalidRequest, "Value for x-amz-sdk-checksum-algorithm header is invalid.", "it is %q, but the checksum sent is %s", clip(sdk), a.Checksum)
	}
	if a.Payload.Streaming() || st.alg != nil || len(st.trailers) > 0 {
		a.chain = &chain{trailers: st.trailers, alg: st.alg}
	}
	return nil
}

// checksumHeaders appends to into the checksum headers among amz (the
// request's x-amz-* headers, amzHeaders) and hoisted (a presigned URL's
// hoisted headers), each with its name in lower case. Every checksum
// header is an x-amz-* header, so amz holds all the request's.
func checksumHeaders(amz []amzHeader, hoisted http.Header, into []amzHeader) []amzHeader {
	for _, h := range amz {
		into = appendChecksum(into, h.k, h.vs)
	}
	for k, vs := range hoisted {
		into = appendChecksum(into, k, vs)
	}
	return into
}

// appendChecksum appends header k to into, its name in lower case, if it
// is a checksum header.
func appendChecksum(into []amzHeader, k string, vs []string) []amzHeader {
	if len(k) == len(checksumPrefix) || !hasLowerPrefixFold(k, checksumPrefix) {
		return into
	}
	if lower := strings.ToLower(k); isChecksumName(lower) {
		into = append(into, amzHeader{lower, vs})
	}
	return into
}

const maxTrailers = 8

const hSDKChecksumAlgorithm = "X-Amz-Sdk-Checksum-Algorithm"

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// splitComposite splits a multipart object's composite checksum
// ("<base64>-<part count>", what CompleteMultipartUpload may carry) into
// its digest; composite says whether it had the suffix.
func splitComposite(v string) (base string, composite bool) {
	i := strings.LastIndexByte(v, '-')
	if i < 0 {
		return v, false
	}
	n, err := strconv.Atoi(v[i+1:])
	if err != nil || n < 1 || n > 10000 || v[i+1] == '0' || v[i+1] == '+' {
		return v, false
	}
	return v[:i], true
}

// lowerHex64 reports whether s is 64 hexadecimal digits of either case,
// and returns it in lower case. The SDKs send lower case: one pass by
// hexValue's table finds that and returns s itself, where isHexAnyCase's
// comparisons and then strings.ToLower's own pass over the 64 bytes cost
// about 1,100 instructions on every request with a payload digest.
func lowerHex64(s string) (string, bool) {
	if len(s) != 64 {
		return "", false
	}
	var bad byte
	for i := 0; i < len(s); i++ {
		bad |= hexValue[s[i]]
	}
	if bad&0x80 == 0 {
		return s, true
	}
	if !isHexAnyCase(s) {
		return "", false
	}
	return strings.ToLower(s), true
}

func isHexAnyCase(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

// buildCanonical writes the canonical request for c's service and signed
// headers into sc.buf. pairs is the parsed query (nil to parse it here);
// skip is a parameter left out.
func buildCanonical(sc *scratch, r *http.Request, c *credentials, pairs []queryPair, skip, payload string) ([]byte, *s3err.Error) {
	b := sc.buf[:0]
	b = append(b, r.Method...)
	b = append(b, '\n')
	b = appendCanonicalPath(b, canonicalURI(r), c.service)
	b = append(b, '\n')
	if pairs == nil && r.URL.RawQuery != "" {
		var ok bool
		pairs, ok = parseQuery(r.URL.RawQuery, sc.pairs[:0])
		sc.pairs = pairs
		if !ok {
			return nil, s3err.New(s3err.InvalidArgument, "the query string has a malformed percent-encoding")
		}
	}
	b = appendCanonicalQuery(b, pairs, skip)
	b = append(b, '\n')
	for _, name := range c.names {
		if name == "host" { // headerValues' first case, without its slice
			h := r.Host
			if h == "" {
				h = r.URL.Host
			}
			if h == "" {
				return nil, s3err.New(s3err.SignatureDoesNotMatch, "The request signature we calculated does not match the signature you provided: signed header %q is not in the request", name)
			}
			b = append(b, "host:"...)
			b = appendOneValue(b, h)
			b = append(b, '\n')
			continue
		}
		vs, ok := headerValues(r, name, sc.key[:0])
		if !ok {
			return nil, s3err.New(s3err.SignatureDoesNotMatch, "The request signature we calculated does not match the signature you provided: signed header %q is not in the request", name)
		}
		b = appendHeaderLine(b, name, vs)
	}
	b = appendCanonicalTail(b, c.signedHeaders, payload)
	sc.buf = b
	return b, nil
}

// appendHeaderLine appends one canonical header line, "name:values\n".
func appendHeaderLine(b []byte, name string, vs []string) []byte {
	b = append(b, name...)
	b = append(b, ':')
	b = appendHeaderValue(b, vs)
	return append(b, '\n')
}

// appendCanonicalTail ends a canonical request after its header lines.
func appendCanonicalTail(b []byte, signedHeaders, payload string) []byte {
	b = append(b, '\n')
	b = append(b, signedHeaders...)
	b = append(b, '\n')
	return append(b, payload...)
}

// appendStringToSign appends the SigV4 string to sign for a canonical
// request whose SHA-256 is crHash.
func appendStringToSign(b []byte, amzDate, scope string, crHash *[32]byte) []byte {
	b = append(b, algorithmV4...)
	b = append(b, '\n')
	b = append(b, amzDate...)
	b = append(b, '\n')
	b = append(b, scope...)
	b = append(b, '\n')
	return appendHex(b, crHash[:])
}

// finish signs the canonical request and compares signatures.
func (v *Verifier) finish(a *Auth, c *credentials, secret, amzDate string, canonical []byte, sc *scratch) (*Auth, error) {
	crHash := sha256.Sum256(canonical)
	sts := appendStringToSign(sc.sts[:0], amzDate, c.scope, &crHash)
	sc.sts = sts

	key, want := v.keys.sign(secret, c, sc, sts)
	got := c.sig // decoded when the signature was checked (64 lowercase hex)
	if !hmac.Equal(want[:], got[:]) {
		return nil, s3err.Detailed(s3err.SignatureDoesNotMatch, "The request signature we calculated does not match the signature you provided. Check your key and signing method.", "Airlock's canonical request has SHA-256 %x; compare it with your client's debug output", crHash)
	}
	a.SignedHeaders = append(a.signedRoom[:0], c.names...)
	if a.Payload.Streaming() {
		a.chain.key = key
		a.chain.seed = got
		a.chain.amzDate = amzDate
		a.chain.scope = c.scope
	}
	return a, nil
}

func first(h http.Header, k string) string {
	if vs := h[k]; len(vs) > 0 {
		return vs[0]
	}
	return ""
}

// hasParam reports whether the raw query has a parameter spelled name.
func hasParam(raw, name string) bool {
	for raw != "" {
		var part string
		part, raw, _ = strings.Cut(raw, "&")
		if strings.HasPrefix(part, name) && (len(part) == len(name) || part[len(name)] == '=') {
			return true
		}
	}
	return false
}
