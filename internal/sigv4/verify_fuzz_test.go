package sigv4

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"

	"github.com/airlock-dev/airlock/internal/s3err"
)

// wireBytes is req as it goes on the wire, or nil if it cannot.
func wireBytes(req *http.Request) []byte {
	var buf bytes.Buffer
	if err := req.Write(&buf); err != nil {
		return nil
	}
	return buf.Bytes()
}

// readWire parses a request the way Go's server does, or nil.
func readWire(b []byte) *http.Request {
	r, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(b)))
	if err != nil {
		return nil
	}
	return r
}

// FuzzVerifyRequest feeds arbitrary HTTP requests (as bytes on the wire)
// to Verify, header-signed and presigned alike: it must never panic,
// must refuse with a complete *s3err.Error that quotes no secret, must
// answer the same twice, and whatever it accepts must carry the one
// known access key (a forged signature is never accepted). An accepted
// request's body decoder stays within its declared length.
func FuzzVerifyRequest(f *testing.F) {
	ctx := context.Background()
	seed := func(method, rawURL string, body []byte, presign bool, hdr ...string) {
		req, err := http.NewRequest(method, rawURL, bytes.NewReader(body))
		if err != nil {
			f.Fatal(err)
		}
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		if presign {
			q := req.URL.Query()
			q.Set("X-Amz-Expires", "900")
			req.URL.RawQuery = q.Encode()
			u, _, err := s3Signer().PresignHTTP(ctx, testCreds(), req, unsignedPayload, "s3", testRegion, testNow)
			if err != nil {
				f.Fatal(err)
			}
			req, _ = http.NewRequest(method, u, bytes.NewReader(body))
		} else {
			h := sha256Hex(body)
			req.Header.Set("X-Amz-Content-Sha256", h)
			if err := s3Signer().SignHTTP(ctx, testCreds(), req, h, "s3", testRegion, testNow); err != nil {
				f.Fatal(err)
			}
		}
		f.Add(wireBytes(req))
	}
	seed("GET", objectURL("logs", "app/one.log", ""), nil, false)
	seed("GET", "http://127.0.0.1:9000/logs?list-type=2&prefix=a%2Fb&delimiter=%2F", nil, false)
	seed("PUT", objectURL("logs", "k", ""), []byte("hello"), false, "X-Amz-Meta-A", "b", "Content-Type", "text/plain")
	seed("GET", objectURL("logs", "app/one.log", ""), nil, true)
	seed("PUT", objectURL("logs", "k", ""), []byte("hello"), true, "X-Amz-Meta-A", "b")
	f.Add([]byte("GET /logs/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIDAIRLOCKTEST%2F20250601%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20250601T120000Z&X-Amz-Expires=60&X-Amz-SignedHeaders=host&X-Amz-Signature=" + strings.Repeat("0", 64) + "&x-amz-meta-a=%0d%0aX:1 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"))
	f.Add([]byte("GET / HTTP/1.1\r\nHost: h\r\nAuthorization: AWS4-HMAC-SHA256 Credential=AKIDAIRLOCKTEST/20250601/us-east-1/s3/aws4_request, SignedHeaders=host;x-amz-date, Signature=" + strings.Repeat("a", 64) + "\r\nX-Amz-Date: 20250601T120000Z\r\n\r\n"))
	f.Add([]byte("PUT /b/k HTTP/1.1\r\nHost: h\r\nX-Amz-Content-Sha256: STREAMING-UNSIGNED-PAYLOAD-TRAILER\r\nX-Amz-Trailer: x-amz-checksum-crc32\r\nX-Amz-Decoded-Content-Length: 5\r\n\r\n"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		v := testVerifier()
		verify := func() (*Auth, error) {
			r := readWire(raw)
			if r == nil {
				return nil, nil
			}
			return v.Verify(r)
		}
		a, err := verify()
		if a == nil && err == nil {
			return // not an HTTP request
		}
		a2, err2 := verify()
		if (err == nil) != (err2 == nil) || (err != nil && err.Error() != err2.Error()) {
			t.Fatalf("not deterministic: %v / %v", err, err2)
		}
		// VerifyInto fails the same way, or sets the same Auth in memory
		// the caller holds, whatever that held before.
		into := staleAuth()
		a3, err3 := v.VerifyInto(readWire(raw), v.Lookup, into)
		if fmt.Sprint(err) != fmt.Sprint(err3) || err == nil && (a3 != into || !reflect.DeepEqual(*a3, *a)) {
			t.Fatalf("VerifyInto: %+v, %v; Verify: %+v, %v", a3, err3, a, err)
		}
		if err != nil {
			var e *s3err.Error
			if !errors.As(err, &e) {
				t.Fatalf("error %T %v is not an *s3err.Error", err, err)
			}
			if e.Code == "" || e.Status < 400 || e.Status > 599 || e.Message == "" {
				t.Fatalf("incomplete error %+v", e)
			}
			for _, secret := range []string{testSecret, testToken} {
				// The client's own text may come back; a secret it did not send may not.
				if strings.Contains(e.Message, secret) && !bytes.Contains(raw, []byte(secret)) {
					t.Fatalf("message quotes a secret: %q", e.Message)
				}
			}
			return
		}
		if a.AccessKeyID != testAK || a2.AccessKeyID != testAK {
			t.Fatalf("accepted access key %q", a.AccessKeyID)
		}
		for k, vs := range a.Hoisted {
			for _, s := range vs {
				if !validHeaderName(k) || !validHeaderValue(s) {
					t.Fatalf("hoisted a header that cannot be one: %q: %q", k, s)
				}
			}
		}
		// The body decoder is bounded by the declared length.
		r := readWire(raw)
		if _, err := v.Verify(r); err != nil {
			t.Fatal(err)
		}
		limit := a.DecodedLength
		if limit < 0 {
			limit = 1 << 20
		}
		got, _ := io.ReadAll(io.LimitReader(a.Body(r.Body), limit+1))
		if a.DecodedLength >= 0 && int64(len(got)) > a.DecodedLength {
			t.Fatalf("decoded %d bytes, declared %d", len(got), a.DecodedLength)
		}
	})
}

// staleAuth is an Auth with every field a verification sets already set,
// for VerifyInto to overwrite.
func staleAuth() *Auth {
	a := &Auth{AccessKeyID: "stale", Region: "stale", Service: "stale", SignedAt: time.Unix(1, 0), Presigned: true,
		Expires: time.Unix(2, 0), SignedHeaders: []string{"stale"}, Payload: StreamingSignedTrailer, PayloadSHA256: "stale",
		DecodedLength: 7, Trailer: http.Header{"Stale": {"1"}}, Checksum: "stale", Hoisted: http.Header{"Stale": {"1"}},
		chain: &chain{amzDate: "stale"}, headerChecksum: "stale", headerComposite: true}
	a.signedRoom[0] = "stale"
	return a
}

// FuzzVerifySDKSigned holds the Verifier to the AWS SDK's signer: a
// request of fuzzed method, path, query and one extra header, signed by
// the SDK in the Authorization header or presigned, for S3 (path signed
// as sent) or another service (path escaped again), must verify; the same
// request with one more query parameter must not. It skips only what
// Airlock refuses on purpose (a query with a malformed escape, which Go
// would drop silently; the presigning parameters in a header-signed
// request).
func FuzzVerifySDKSigned(f *testing.F) {
	f.Add(uint8(0), "GET", "logs/app/one.log", "", "", "")
	f.Add(uint8(1), "GET", "logs/app/one.log", "response-content-type=text%2Fplain", "", "")
	f.Add(uint8(0), "PUT", "logs/a%20b/%E2%82%AC", "partNumber=1&uploadId=x", "X-Amz-Meta-Note", "  a   b ")
	f.Add(uint8(1), "PUT", "logs/k", "", "X-Amz-Tagging", "a=b&c=d")
	f.Add(uint8(2), "POST", "", "", "X-Amz-Target", "DynamoDB_20120810.GetItem")
	f.Add(uint8(3), "POST", "2015-03-31/functions/f%3A1/invocations", "Qualifier=%241", "", "")
	f.Add(uint8(0), "GET", "b", "a=1&a=0&b&c=&=d&e=+%2B", "Range", "bytes=0-1")
	f.Add(uint8(1), "GET", "b/k", "x-id=GetObject&X-Amz-Meta-A=b", "", "")
	f.Fuzz(func(t *testing.T, mode uint8, method, path, query, hname, hval string) {
		presign := mode&1 != 0
		service, signer := "s3", s3Signer()
		if mode&2 != 0 {
			service, signer = "sqs", v4.NewSigner()
		}
		if strings.ContainsAny(path, "?#") || strings.ContainsAny(query, "#") {
			return
		}
		if _, err := url.ParseQuery(query); err != nil {
			return // malformed escapes: refused on purpose
		}
		if presign && hasAmzParam(query) {
			return // the presigner's own parameters, given twice
		}
		if !presign && (hasParam(query, qAlgorithm) || hasParam(query, qSignature)) {
			return // both mechanisms: refused on purpose
		}
		rawURL := "http://127.0.0.1:9000/" + path
		if query != "" {
			rawURL += "?" + query
		}
		req, err := http.NewRequest(method, rawURL, nil)
		if err != nil || req.URL.Host != "127.0.0.1:9000" {
			return
		}
		if hname != "" && (!validHeaderName(hname) || !validHeaderValue(hval)) {
			return // no client can send it
		}
		if http.CanonicalHeaderKey(hname) == "Authorization" {
			return // a second mechanism
		}
		if hname != "" {
			req.Header.Set(hname, hval)
		}
		// What goes on the wire, and what the signer sees, must be one
		// request: skip any the wire round trip changes.
		if back := readWire(wireBytes(req)); back == nil || back.URL.RequestURI() != req.URL.RequestURI() ||
			(hname != "" && back.Header.Get(hname) != strings.TrimSpace(hval)) {
			return
		} else if hname != "" {
			req.Header.Set(hname, back.Header.Get(hname))
		}
		ctx := context.Background()
		if presign {
			// As the S3 presigner does, the expiry is a parameter
			// before signing.
			if req.URL.RawQuery != "" {
				req.URL.RawQuery += "&"
			}
			req.URL.RawQuery += "X-Amz-Expires=900"
			u, sh, err := signer.PresignHTTP(ctx, testCreds(), req, unsignedPayload, service, testRegion, testNow)
			if err != nil {
				return
			}
			signed, err := http.NewRequest(method, u, nil)
			if err != nil {
				t.Fatalf("the SDK's presigned URL does not parse: %v", err)
			}
			for k, vs := range sh {
				if k != "Host" {
					signed.Header[k] = vs
				}
			}
			req = signed
		} else {
			h := sha256Hex(nil)
			if service == "s3" {
				req.Header.Set("X-Amz-Content-Sha256", h)
			}
			if err := signer.SignHTTP(ctx, testCreds(), req, h, service, testRegion, testNow); err != nil {
				return
			}
		}
		raw := wireBytes(req)
		r := readWire(raw)
		if r == nil {
			return
		}
		v := testVerifier()
		if service != "s3" {
			// Other services sign the body's digest without sending it.
			v.HashBody = func(*http.Request) (string, error) { return sha256Hex(nil), nil }
		}
		a, err := v.Verify(r)
		if err != nil {
			t.Fatalf("the SDK's %s-signed request (presigned %v) is refused: %v\n%s", service, presign, err, raw)
		}
		// VerifyInto sets the same Auth in memory the caller holds,
		// whatever that held before.
		into := staleAuth()
		if got, err := v.VerifyInto(readWire(raw), v.Lookup, into); err != nil || got != into || !reflect.DeepEqual(*got, *a) {
			t.Fatalf("VerifyInto: %+v, %v; Verify: %+v", got, err, a)
		}
		// One parameter more than was signed is refused.
		tampered := readWire(raw)
		if tampered.URL.RawQuery != "" {
			tampered.URL.RawQuery += "&"
		}
		tampered.URL.RawQuery += "airlock-fuzz=1"
		tampered.RequestURI = tampered.URL.RequestURI()
		if _, err := v.Verify(tampered); err == nil {
			t.Fatalf("a parameter added after signing is accepted\n%s", raw)
		}
	})
}

// hasAmzParam reports whether a raw query has any parameter whose name
// starts with X-Amz- in any case.
func hasAmzParam(raw string) bool {
	q, _ := url.ParseQuery(raw)
	for k := range q {
		if len(k) >= 6 && strings.EqualFold(k[:6], "x-amz-") {
			return true
		}
	}
	return false
}
