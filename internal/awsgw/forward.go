package awsgw

import (
	"context"
	"io"
	"net/http"
	"net/textproto"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/airlock-dev/airlock/internal/s3iam"
	"github.com/airlock-dev/airlock/internal/sigv4"
)

// unsignedPayload is what the upstream is told when the gateway has no
// digest of the body to pass on.
const unsignedPayload = "UNSIGNED-PAYLOAD"

// dropHeaders are the client's headers that never go upstream: its own
// authentication (replaced by the gateway's), hop-by-hop headers, the
// aws-chunked framing headers (the body goes upstream decoded), and the
// headers by which a proxy tells the next hop who the client is.
var dropHeaders = []string{
	"Authorization", "X-Amz-Security-Token", "X-Amz-Date", "X-Amz-Content-Sha256",
	"X-Amz-Decoded-Content-Length", "X-Amz-Trailer",
	"Connection", "Keep-Alive", "Proxy-Connection", "Proxy-Authenticate", "Proxy-Authorization",
	"Te", "Trailer", "Transfer-Encoding", "Upgrade", "Expect", "Host", "Content-Length",
	// Rebuilt from the Op, in canonical encoding, so the upstream reads the
	// copy source that was authorized.
	"X-Amz-Copy-Source",
	// Who the client is and how it connected, as proxies state it to the
	// next hop (X-Forwarded-* by prefix: see clientOnly). The agent is not
	// a proxy: from it these are claims about itself, which upstreams
	// behind a balancer take as the client's address for their logs, some
	// for policy conditions (MinIO reads aws:SourceIp from them, Ceph RGW
	// when rgw_remote_addr_param names one), or as the host and scheme
	// they were asked for. The gateway is the upstream's client, and its
	// peer address tells the truth about it.
	"Forwarded", "Via", "X-Real-Ip", "X-Client-Ip", "True-Client-Ip", "Client-Ip",
	"X-Cluster-Client-Ip", "Cf-Connecting-Ip", "Fastly-Client-Ip", "X-Originating-Ip",
	"X-Remote-Ip", "X-Remote-Addr",
}

// dropped is dropHeaders by canonical name, in slots by the name's length
// and first letter (dropSlotLen long at most, an upper-case letter
// first, as every name of the list is; init fails otherwise): clientOnly
// compares a key with the one or two names of its slot, where a lookup in
// a set of the names cost about 115 instructions on every header of every
// call, some 900 a S3 GET 1 KiB (bench/HISTORY.md, "S3 GET 1 KiB: the
// signed names' keys, their byte check and the unsigned-header check's
// compares").
var dropped = func() (t [dropSlotLen][26][2]string) {
	for _, k := range dropHeaders {
		ck := textproto.CanonicalMIMEHeaderKey(k)
		slot := dropSlot(&t, ck)
		switch {
		case slot == nil:
			panic("awsgw: no slot in dropped for " + ck)
		case slot[0] == "":
			slot[0] = ck
		case slot[1] == "":
			slot[1] = ck
		default:
			panic("awsgw: a third name in dropped's slot of " + ck)
		}
	}
	return t
}()

// dropSlotLen bounds the length of dropHeaders' names.
const dropSlotLen = 32

// dropSlot is the slot of t where a canonical key ck is, if ck is in
// dropHeaders; nil where none of their names can be.
func dropSlot(t *[dropSlotLen][26][2]string, ck string) *[2]string {
	if len(ck) == 0 || len(ck) >= dropSlotLen || ck[0] < 'A' || ck[0] > 'Z' {
		return nil
	}
	return &t[len(ck)][ck[0]-'A']
}

// clientOnly reports whether the client's header ck (canonical) stays at
// the gateway: one of dropHeaders, or an X-Forwarded-* header (For, Host,
// Proto, Port, Prefix, Server, Ssl, and whatever a proxy names so next).
func clientOnly(ck string) bool {
	if slot := dropSlot(&dropped, ck); slot != nil && (ck == slot[0] || ck == slot[1]) {
		return true
	}
	return len(ck) > 12 && ck[:12] == "X-Forwarded-"
}

// dropNominated removes from h the headers the client's Connection
// header names: hop-by-hop by that naming (RFC 9110, section 7.6.1).
func dropNominated(h, in http.Header) {
	for _, c := range in["Connection"] { // canonical: Values would canonicalise it again
		for f := range strings.SplitSeq(c, ",") {
			if f = strings.TrimSpace(f); f != "" {
				h.Del(f)
			}
		}
	}
}

// presignParams are the query parameters of a presigned URL; they
// authenticate the agent and must not reach the upstream.
// Compared case-insensitively, in case an upstream reads them so.
var presignParams = map[string]bool{
	"x-amz-algorithm": true, "x-amz-credential": true, "x-amz-date": true, "x-amz-expires": true,
	"x-amz-signedheaders": true, "x-amz-signature": true, "x-amz-security-token": true,
	"x-amz-content-sha256": true,
}

// setUpstreamURL sets *u, a zero URL (held in the exchange rather than
// allocated apart), to op's address at the target: path-style at a custom
// endpoint; at AWS itself virtual-hosted where the bucket name allows it
// (AWS is retiring path-style), path-style otherwise.
func (t *target) setUpstreamURL(u *url.URL, op *s3iam.Op, rawQuery string) {
	u.RawQuery = filterQuery(rawQuery)
	p := op.UpstreamPath()
	if t.base != nil {
		u.Scheme, u.Host = t.base.Scheme, t.base.Host
		if t.base.Path != "" {
			p = t.base.EscapedPath() + p
		}
	} else {
		u.Scheme = "https"
		u.Host = "s3." + t.Region + ".amazonaws.com"
		if op.Bucket != "" && dnsBucket(op.Bucket) {
			u.Host = op.Bucket + "." + u.Host
			p = strings.TrimPrefix(p, "/"+op.Bucket)
			if p == "" {
				p = "/"
			}
		}
	}
	setEscapedPath(u, p)
}

// setEscapedPath sets u's path from its escaped form, so that the request
// line carries exactly that encoding.
func setEscapedPath(u *url.URL, escaped string) {
	if dec, err := url.PathUnescape(escaped); err == nil {
		u.Path, u.RawPath = dec, escaped
	} else { // cannot happen for what UpstreamPath builds
		u.Path = escaped
	}
}

// dnsBucket reports whether a bucket can be a TLS-safe host label: no dots
// (which break the *.s3 wildcard certificate), lower case, digits, '-'.
func dnsBucket(b string) bool {
	if len(b) < 3 || len(b) > 63 {
		return false
	}
	for i := 0; i < len(b); i++ {
		c := b[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return b[0] != '-' && b[len(b)-1] != '-'
}

// filterQuery removes the presigning parameters from a raw query,
// leaving every other parameter as the client encoded it.
func filterQuery(raw string) string {
	if raw == "" {
		return raw
	}
	kept := make([]string, 0, 8)
	dropped := false
	for part := range strings.SplitSeq(raw, "&") {
		name, _, _ := strings.Cut(part, "=")
		if n, err := url.QueryUnescape(name); err == nil && presignParams[strings.ToLower(n)] {
			dropped = true
			continue
		}
		kept = append(kept, part)
	}
	if !dropped {
		return raw
	}
	return strings.Join(kept, "&")
}

// upstreamHeader copies the client's headers minus its authentication,
// the hop-by-hop headers and the aws-chunked framing.
func upstreamHeader(in http.Header, op *s3iam.Op, auth *sigv4.Auth) http.Header {
	// Sized for what goes upstream: the client's headers less its
	// authentication, which the signer adds back as three headers of its
	// own (a GetObject from an SDK ends with 7, one small map's worth;
	// len(in)+2 took a larger map, two allocations more).
	// A request sigv4 verified by its Authorization header has that key,
	// and an S3 one X-Amz-Content-Sha256 too (sigv4 refuses it without):
	// only X-Amz-Date is looked up then, where the three lookups cost
	// about 420 instructions a call (bench/HISTORY.md, "S3 GET 1 KiB: the
	// signed names' keys, their byte check and the unsigned-header
	// check's compares"). The count only sizes the map.
	n := len(in) + 3
	replaced := [...]string{"X-Amz-Date", "Authorization", "X-Amz-Content-Sha256"}
	lookup := replaced[:]
	if auth.Service == "s3" && !auth.Presigned {
		n -= 2
		lookup = replaced[:1]
	}
	for _, k := range lookup {
		if _, ok := in[k]; ok {
			n--
		}
	}
	if op.CopySourceBucket != "" {
		n++
	}
	h := newUpstreamHeader(n)
	// recanon is set once a key has been canonicalised into another: only
	// then can a later key find its name in h already. Until then every
	// key copied is a distinct map key of in, written as it is, so none
	// can collide, in whatever order the map gives them, and the lookup
	// that merges them is skipped (it was a map lookup per header).
	recanon := false
	for k, v := range in {
		// The value slices are shared, not copied: nothing here or in the
		// transport writes into them (Set and Del replace map entries), and
		// the clip makes any append copy. Keys are canonicalised (the
		// server does so already, so this rarely allocates) and values
		// under keys that canonicalise alike are merged.
		ck := canonicalHeaderKey(k)
		if ck != k {
			recanon = true
		}
		if clientOnly(ck) || !signedAmz(ck, auth) || underscored(ck) && !strings.HasPrefix(ck, "X-Amz-Meta-") {
			continue
		}
		v = slices.Clip(v)
		if recanon {
			if prev, ok := h[ck]; ok {
				v = append(prev, v...)
			}
		}
		h[ck] = v
	}
	dropNominated(h, in)
	if cs := op.CopySourceHeader(); cs != "" {
		h.Set("X-Amz-Copy-Source", cs)
	}
	if auth.Payload.Streaming() {
		// The body goes upstream decoded, so its aws-chunked coding goes.
		var rest []string
		for _, v := range h.Values("Content-Encoding") {
			for f := range strings.SplitSeq(v, ",") {
				if f = strings.TrimSpace(f); f != "" && !strings.EqualFold(f, "aws-chunked") {
					rest = append(rest, f)
				}
			}
		}
		h.Del("Content-Encoding")
		if len(rest) > 0 {
			h.Set("Content-Encoding", strings.Join(rest, ","))
		}
		if len(auth.Trailer) > 0 || auth.Payload == sigv4.StreamingSignedTrailer || auth.Payload == sigv4.StreamingUnsignedTrailer {
			// The checksum travelled in the trailer, which is checked
			// here (sigv4); upstreamRequest sends it on in a trailer of
			// its own, and sets the algorithm again when it does.
			h.Del("X-Amz-Sdk-Checksum-Algorithm")
		}
	}
	return h
}

// upstreamHeaders keeps the header maps of upstream requests that awsgw's
// own HTTP/1 client sent, once their answers' bodies are closed
// (releaseUpstreamHeader): a map of up to 8 names, what an SDK's
// GetObject sends upstream, was two allocations on every call.
var upstreamHeaders sync.Pool

// maxPooledHeader is the most names a kept map had: a larger one holds
// more memory than a call needs, and costs more to clear.
const maxPooledHeader = 8

// newUpstreamHeader returns an empty header map for n names, a kept one
// if n is small.
func newUpstreamHeader(n int) http.Header {
	if n <= maxPooledHeader {
		if h, ok := upstreamHeaders.Get().(http.Header); ok {
			return h
		}
	}
	return make(http.Header, n)
}

// releaseUpstreamHeader keeps req's header map for another call's
// upstream request. Only for a request that h1Conn.roundTrip sent, and
// only once its answer's body is closed: that client writes the head
// before it reads the answer and keeps nothing of the request once the
// body is done. net/http's Transport writes a request on a goroutine of
// its own, which may not be done with the map when the body is closed
// (an upstream that answers before it has the whole head), so its
// requests' maps are left to the collector. req no longer has a header.
func releaseUpstreamHeader(req *http.Request) {
	h := req.Header
	req.Header = nil
	if len(h) > maxPooledHeader {
		return
	}
	clear(h)
	upstreamHeaders.Put(h)
}

// canonicalHeaderKey is textproto.CanonicalMIMEHeaderKey(k), with the
// common case, a key Go's server has canonicalised already, found by one
// table lookup and test per byte, where textproto's own check of it cost
// about twice as much on every header of every call. Any other key goes
// to textproto, which returns it as it is when it holds a byte outside a
// token, as this check finds it already canonical only when it holds
// none.
func canonicalHeaderKey(k string) string {
	want := keyAtUpper
	for i := 0; i < len(k); i++ {
		c := keyByte[k[i]]
		if c&want == 0 {
			return textproto.CanonicalMIMEHeaderKey(k)
		}
		want = c >> 2
	}
	return k
}

// keyByte classes the bytes of a header key for canonicalHeaderKey: bit
// keyAtUpper if the byte may start a word of a canonical key (an upper
// case letter, or a token byte that is no letter), bit keyAtLower if it
// may follow within one (a lower case letter, or such a byte); bits 2 and
// 3 say which the next byte must be: keyAtUpper after '-', keyAtLower
// after anything else. A byte outside a token (tokenByte) has neither.
var keyByte = func() (t [256]uint8) {
	for c := range t {
		switch b := byte(c); {
		case !tokenByte[b]:
			continue
		case 'A' <= b && b <= 'Z':
			t[c] = keyAtUpper
		case 'a' <= b && b <= 'z':
			t[c] = keyAtLower
		default:
			t[c] = keyAtUpper | keyAtLower
		}
		if c == '-' {
			t[c] |= keyAtUpper << 2
		} else {
			t[c] |= keyAtLower << 2
		}
	}
	return t
}()

const (
	keyAtUpper uint8 = 1 << iota
	keyAtLower
)

// underscored reports whether a header name has an '_'. No S3 or AWS
// header has one but user metadata (x-amz-meta-key_name, which S3 keeps
// and which, signed and under its prefix, stays metadata: the S3 path lets
// those through), and servers that keep headers CGI-style (Ceph RGW:
// HTTP_X_AMZ_COPY_SOURCE) read '_' as '-', so "X_amz_copy_source" would
// reach them as the x-amz-copy-source the mapper never saw, unsigned and
// unauthorized, and, sorted after the gateway's own "X-Amz-..." headers,
// would even replace them. Such headers never go upstream (nginx drops them
// by default for the same reason).
func underscored(name string) bool { return strings.IndexByte(name, '_') >= 0 }

// checksumInTrailer reports whether the client's flexible checksum travels
// in the body's trailer rather than in a header.
func checksumInTrailer(r *http.Request, auth *sigv4.Auth) bool {
	return (auth.Payload == sigv4.StreamingSignedTrailer || auth.Payload == sigv4.StreamingUnsignedTrailer) &&
		auth.Checksum != "" && r.Header.Get(auth.Checksum) == ""
}

// joinEncoding puts first before the other content codings in rest.
func joinEncoding(first, rest string) string {
	if rest == "" {
		return first
	}
	return first + "," + rest
}

// upstreamRequest builds and signs the request to send upstream for a
// verified, authorized call. body is the verified payload (nil for none);
// length is its decoded length (-1 unknown).
// u is a zero URL, set here to the upstream address (setUpstreamURL);
// signRoom holds the values of the headers the signer sets (SignIn).
func (t *target) upstreamRequest(ctx context.Context, room *http.Request, u *url.URL, signRoom *[3]string, r *http.Request, op *s3iam.Op, auth *sigv4.Auth, creds aws.Credentials, body io.Reader, length int64) (*http.Request, error) {
	t.setUpstreamURL(u, op, r.URL.RawQuery)
	// Built directly rather than with NewRequest, which would format u and
	// parse it back on every call: u keeps its exact escaping as it is.
	// The method is the one the server parsed, a valid token.
	// It is built in room, the exchange's (on the heap already): only
	// WithContext can set a request's context, and its copy, which does
	// not escape here, is made on the stack and copied into room, where
	// it was an allocation of its own on every call.
	*room = *(&http.Request{
		Method: r.Method, URL: u, Host: u.Host,
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: upstreamHeader(r.Header, op, auth),
		Body:   http.NoBody,
	}).WithContext(ctx)
	req := room
	if body == nil || length == 0 {
		body, length = http.NoBody, 0
	} else {
		req.Body = io.NopCloser(body)
	}
	req.ContentLength = length
	payload := unsignedPayload
	if auth.Payload == sigv4.SHA256 {
		// The upstream checks the digest the client signed, again.
		payload = auth.PayloadSHA256
	}
	if checksumInTrailer(r, auth) && length > 0 {
		if tb, n, ok := newTrailerBody(body, length, auth); ok {
			// The verified checksum goes upstream in a trailer of its own
			// (see trailer.go), so the object is stored with it.
			req.Body, req.ContentLength = io.NopCloser(tb), n
			payload = streamingUnsignedTrlr
			req.Header.Set("Content-Encoding", joinEncoding("aws-chunked", req.Header.Get("Content-Encoding")))
			req.Header.Set("X-Amz-Decoded-Content-Length", strconv.FormatInt(length, 10))
			req.Header.Set("X-Amz-Trailer", tb.name)
			if alg, ok := strings.CutPrefix(tb.name, "x-amz-checksum-"); ok {
				req.Header.Set("X-Amz-Sdk-Checksum-Algorithm", strings.ToUpper(alg))
			}
		}
	}
	if v := r.Header["X-Amz-Content-Sha256"]; len(v) == 1 && v[0] == payload {
		// The client's value, shared as upstreamHeader shares the others
		// (clipped: an append copies): no slice of its own per call.
		req.Header["X-Amz-Content-Sha256"] = v[:1:1]
	} else {
		req.Header.Set("X-Amz-Content-Sha256", payload)
	}
	sc := sigv4.Credentials{AccessKeyID: creds.AccessKeyID, SecretAccessKey: creds.SecretAccessKey, SessionToken: creds.SessionToken}
	if err := t.signer.SignIn(req, sc, t.Region, "s3", payload, time.Now(), signRoom); err != nil {
		return nil, err
	}
	return req, nil
}
