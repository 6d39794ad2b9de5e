package sigv4

import (
	"net/http"
	"strings"
	"time"
)

// Lookup resolves an access key id to its secret and session token ("" if
// the credential has none). A non-nil error is returned by Verify
// unchanged (the caller passes an *s3err.Error such as InvalidAccessKeyId
// or ExpiredToken).
type Lookup func(accessKeyID string) (secret, sessionToken string, err error)

// Verifier checks SigV4 signatures. Its zero value needs only Lookup. It
// is safe for concurrent use.
//
// Session tokens are always enforced: when Lookup returns a non-empty
// token, the request must carry it (the X-Amz-Security-Token header,
// signed, or the query parameter of a presigned URL) and it must match in
// constant time; a missing or wrong token is InvalidToken.
type Verifier struct {
	Lookup  Lookup
	Now     func() time.Time // time.Now if nil
	MaxSkew time.Duration    // 5 minutes if zero
	// Region and Service, when set, are the only scope values accepted
	// (AuthorizationHeaderMalformed otherwise, naming the expected one, as
	// S3 does). Empty accepts any; Auth reports what was signed.
	Region  string
	Service string
	// HashBody, if set, is called for a header-signed request to a service
	// other than s3 that has no x-amz-content-sha256 header: the SDKs of
	// every other service sign the body's digest without sending it. It
	// must read the body (bounded), leave r.Body readable again from the
	// start, and return the body's lowercase hex SHA-256; its error is
	// returned by Verify unchanged. It is called only once the access key
	// is known, so an unknown caller cannot make the server read a body.
	// Nil refuses such requests, as S3 does.
	HashBody func(r *http.Request) (string, error)

	keys keyCache
}

// DefaultMaxSkew is the clock skew S3 tolerates.
const DefaultMaxSkew = 5 * time.Minute

// MaxPresignExpiry is the longest X-Amz-Expires S3 accepts: seven days.
const MaxPresignExpiry = 7 * 24 * time.Hour

// PayloadMode is how the request's payload is covered by the signature,
// from its x-amz-content-sha256 value.
type PayloadMode int

const (
	// Unsigned is UNSIGNED-PAYLOAD; presigned URLs are Unsigned.
	Unsigned PayloadMode = iota
	// SHA256 means x-amz-content-sha256 is the hex digest of the body.
	SHA256
	// StreamingSigned is STREAMING-AWS4-HMAC-SHA256-PAYLOAD: aws-chunked
	// framing, every chunk signed.
	StreamingSigned
	// StreamingSignedTrailer is STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER:
	// signed chunks followed by signed trailing headers.
	StreamingSignedTrailer
	// StreamingUnsignedTrailer is STREAMING-UNSIGNED-PAYLOAD-TRAILER:
	// aws-chunked framing without signatures, with trailing headers
	// (normally a checksum).
	StreamingUnsignedTrailer
)

// Values of x-amz-content-sha256.
const (
	unsignedPayload          = "UNSIGNED-PAYLOAD"
	streamingSigned          = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
	streamingSignedTrailer   = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"
	streamingUnsignedTrailer = "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
)

func (m PayloadMode) String() string {
	switch m {
	case Unsigned:
		return unsignedPayload
	case SHA256:
		return "SHA256"
	case StreamingSigned:
		return streamingSigned
	case StreamingSignedTrailer:
		return streamingSignedTrailer
	case StreamingUnsignedTrailer:
		return streamingUnsignedTrailer
	}
	return "PayloadMode(?)"
}

// Streaming reports whether the body uses aws-chunked framing.
func (m PayloadMode) Streaming() bool { return m >= StreamingSigned }

// Auth is a verified request's authentication.
type Auth struct {
	AccessKeyID     string
	Region, Service string
	SignedAt        time.Time
	// CheckedAt is the Verifier's clock (its Now) when it checked the
	// signature's time against it: a caller that needs the time of the
	// verification (a credential's lifetime) reads it here rather than
	// the clock again.
	CheckedAt time.Time
	Presigned bool
	// Expires is SignedAt + X-Amz-Expires for a presigned URL; zero
	// otherwise.
	Expires       time.Time
	SignedHeaders []string
	Payload       PayloadMode
	// PayloadSHA256 is the lowercase hex digest in SHA256 mode.
	PayloadSHA256 string
	// DecodedLength is the payload length after aws-chunked decoding
	// (x-amz-decoded-content-length, which they require) in streaming modes,
	// else r.ContentLength.
	DecodedLength int64
	// Trailer holds the trailing headers (e.g. x-amz-checksum-crc32) once
	// the reader from Body has returned io.EOF; nil before, and in
	// non-trailer modes.
	Trailer http.Header
	// Checksum is the x-amz-checksum-* header or declared trailer that the
	// reader from Body verifies ("x-amz-checksum-crc32", …), or "". For an
	// algorithm the package cannot compute (Verifiable is false) the value
	// is only checked for its size, and must be forwarded for the upstream
	// to verify.
	Checksum string
	// Hoisted holds the x-amz-* parameters of a presigned URL's query
	// other than the presigning ones (x-amz-sdk-checksum-algorithm,
	// x-amz-checksum-crc32, x-amz-checksum-mode, x-amz-acl, …), under
	// canonical header keys, one value each. Presigners move headers into
	// the query so that the URL alone carries them, and S3 reads them as
	// the headers they stand for: a server must do the same (authorize and
	// forward them as headers). They are covered by the signature, as the
	// whole query is. Nil when there are none.
	Hoisted http.Header

	// signedRoom holds SignedHeaders for the usual request (up to eight
	// names), in the Auth rather than a slice of its own.
	signedRoom [8]string

	// chain holds what chunk verification needs. It is a pointer so that
	// printing an Auth with %v shows an address, never the signing key.
	chain *chain
	// headerChecksum is the expected value of a checksum sent as a header.
	headerChecksum string
	// headerComposite says headerChecksum is a multipart object's
	// composite checksum ("…-N"), valid only where LeaveChecksumToUpstream
	// applies.
	headerComposite bool
}

// chain is the state a streaming-signed body is verified against.
type chain struct {
	key      [32]byte // the day's signing key; never printed
	seed     [32]byte // the request's own signature
	amzDate  string
	scope    string
	trailers []string   // declared in x-amz-trailer, lowercase
	alg      *algorithm // checksum verified over the decoded payload, or nil
}

// LeaveChecksumToUpstream tells Body not to verify the request's
// x-amz-checksum-* header over the payload, because for this operation it
// describes something else: on CompleteMultipartUpload it is the checksum
// of the whole object (x-amz-checksum-type FULL_OBJECT or COMPOSITE), which
// only the upstream, holding the parts, can verify. A checksum sent in the
// trailer is the payload's and stays verified. Call it before Body.
func (a *Auth) LeaveChecksumToUpstream() {
	if a.headerChecksum == "" {
		return
	}
	if a.chain != nil { // nil when no checksum is computed here
		a.chain.alg = nil
	}
	a.Checksum = ""
	a.headerChecksum = ""
	a.headerComposite = false
}

// isHoistable reports whether a presigned URL's query parameter stands for
// a header: x-amz-*, other than the presigning parameters themselves.
func isHoistable(name string) bool {
	if len(name) < 6 || !strings.EqualFold(name[:6], "x-amz-") {
		return false
	}
	for _, q := range [...]string{qAlgorithm, qCredential, qDate, qExpires, qSignedHeaders, qSignature, qSecurityToken, qContentSHA256} {
		if strings.EqualFold(name, q) {
			return false
		}
	}
	return true
}

// validHeaderName reports whether s is an HTTP field name (a token).
func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if !tokenChar(c) {
			return false
		}
	}
	return true
}

// validHeaderValue reports whether s can be sent as an HTTP field value:
// no control character but tab (bytes from 0x80 are obs-text, as net/http
// allows).
func validHeaderValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}
