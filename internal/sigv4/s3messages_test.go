package sigv4

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/airlock-dev/airlock/internal/s3err"
)

// Faults S3 defines are answered with S3's code and message word for
// word (clients and versitygw's suite compare them); Airlock's
// explanation, if any, is in Detail only.
func TestAuthorizationS3Messages(t *testing.T) {
	const cred = "Credential=AK/20250912/us-east-1/s3/aws4_request"
	const sig = "Signature=5fb279ae552098ea7c5c807df54cdb159e74939e19449b29831552639ec34b29"
	for _, tc := range []struct{ h, code, msg string }{
		{"invalid_header", s3err.InvalidArgument, "Authorization header is invalid -- one and only one ' ' (space) required."},
		{"AWS2-HMAC-SHA1 " + cred, s3err.InvalidArgument, "Unsupported Authorization Type"},
		{"AWS AK:sig", s3err.InvalidRequest, "The authorization mechanism you have provided is not supported. Please use AWS4-HMAC-SHA256."},
		{"AWS4-HMAC-SHA256 " + cred + "," + sig, s3err.AuthorizationHeaderMalformed, "The authorization header is malformed; the authorization header requires three components: Credential, SignedHeaders, and Signature."},
		{"AWS4-HMAC-SHA256 " + cred + ",SignedHeaders-Content-Length," + sig, s3err.AuthorizationHeaderMalformed, `The authorization header is malformed; the authorization component "SignedHeaders-Content-Length" is malformed.`},
		{"AWS4-HMAC-SHA256 missing_creds=AK/20250912/us-east-1/s3/aws4_request,SignedHeaders=host," + sig, s3err.AuthorizationHeaderMalformed, "The authorization header is malformed; missing Credential."},
		{"AWS4-HMAC-SHA256 " + cred + ",missing=host," + sig, s3err.AuthorizationHeaderMalformed, "The authorization header is malformed; missing SignedHeaders."},
		{"AWS4-HMAC-SHA256 " + cred + ",SignedHeaders=host,missing=x", s3err.AuthorizationHeaderMalformed, "The authorization header is malformed; missing Signature."},
		{"AWS4-HMAC-SHA256 Credential=AK/20250912/us-east-1/s3,SignedHeaders=host," + sig, s3err.AuthorizationHeaderMalformed, `The authorization header is malformed; the Credential is mal-formed; expecting "<YOUR-AKID>/YYYYMMDD/REGION/SERVICE/aws4_request".`},
		{"AWS4-HMAC-SHA256 Credential=AK/32234/us-east-1/ec2/aws4_request,SignedHeaders=host," + sig, s3err.AuthorizationHeaderMalformed, `The authorization header is malformed; incorrect service "ec2". This endpoint belongs to "s3".`},
		{"AWS4-HMAC-SHA256 Credential=AK/20250912/us-east-1/s3/aws_request,SignedHeaders=host," + sig, s3err.AuthorizationHeaderMalformed, `The authorization header is malformed; incorrect terminal "aws_request". This endpoint uses "aws4_request".`},
		{"AWS4-HMAC-SHA256 Credential=AK/3223423234/us-east-1/s3/aws4_request,SignedHeaders=host," + sig, s3err.AuthorizationHeaderMalformed, `The authorization header is malformed; incorrect date format "3223423234". This date in the credential must be in the format "yyyyMMdd".`},
	} {
		_, e := parseAuthorization(tc.h, "s3", nil)
		if e == nil || e.Code != tc.code || e.Message != tc.msg {
			t.Errorf("%s:\n got %v\nwant %s: %s", tc.h, e, tc.code, tc.msg)
		}
	}
	if _, e := parseAuthorization("AWS4-HMAC-SHA256 Credential=AK/20250912/us-east-1/s3/aws4_request, SignedHeaders=host;x-amz-date, "+sig, "s3", nil); e != nil {
		t.Fatalf("a well-formed header: %v", e)
	}
}

func TestSplitComposite(t *testing.T) {
	for v, want := range map[string]bool{"AAAAAA==-3": true, "AAAAAA==": false, "AAAAAA==-0": false, "AAAAAA==-10001": false, "AAAAAA==-x": false, "AAAAAA==-+3": false, "AAAAAA==-03": false} {
		base, c := splitComposite(v)
		if c != want || c && base != "AAAAAA==" {
			t.Errorf("splitComposite(%q) = %q, %v", v, base, c)
		}
	}
}

// Checksum headers: more than one is refused whatever their values; an
// x-amz-sdk-checksum-algorithm naming another algorithm is refused; a
// composite value ("…-N") is a whole multipart object's and fails a
// payload check; a wrong one is S3's BadDigest naming the algorithm.
func TestChecksumHeaderS3Messages(t *testing.T) {
	data := payload(1000)
	verify := func(set func(h map[string]string)) (*Auth, error, []byte) {
		req := newReq(t, "PUT", objectURL("logs", "k", ""), data)
		h := map[string]string{}
		set(h)
		for k, v := range h {
			req.Header.Set(k, v)
		}
		signHeader(t, req, unsignedPayload, testCreds(), testNow)
		srv := onWire(t, req)
		a, err := testVerifier().Verify(srv)
		if err != nil {
			return nil, err, nil
		}
		b, err := io.ReadAll(a.Body(srv.Body))
		return a, err, b
	}
	crc := sumOf(t, "x-amz-checksum-crc32", data)
	_, err, _ := verify(func(h map[string]string) {
		h["X-Amz-Checksum-Crc32"] = crc
		h["X-Amz-Checksum-Sha1"] = "not base64"
	})
	wantMessage(t, err, s3err.InvalidRequest, "Expecting a single x-amz-checksum- header. Multiple checksum Types are not allowed.")
	_, err, _ = verify(func(h map[string]string) {
		h["X-Amz-Checksum-Crc32"] = crc
		h["X-Amz-Sdk-Checksum-Algorithm"] = "CRC32C"
	})
	wantMessage(t, err, s3err.InvalidRequest, "Value for x-amz-sdk-checksum-algorithm header is invalid.")
	if _, err, _ = verify(func(h map[string]string) {
		h["X-Amz-Checksum-Crc32"] = crc
		h["X-Amz-Sdk-Checksum-Algorithm"] = "crc32"
	}); err != nil {
		t.Fatalf("matching x-amz-sdk-checksum-algorithm: %v", err)
	}
	_, err, _ = verify(func(h map[string]string) { h["X-Amz-Checksum-Crc32"] = crc + "-3" })
	wantMessage(t, err, s3err.InvalidRequest, "Value for x-amz-checksum-crc32 header is invalid.")
	_, err, _ = verify(func(h map[string]string) { h["X-Amz-Checksum-Crc32"] = "AAAAAA==" })
	wantMessage(t, err, s3err.BadDigest, "The CRC32 you specified did not match the calculated checksum.")
	if d := s3err.As(err).Detail; d == "" {
		t.Fatal("BadDigest carries no AirlockDetail")
	}
	// On CompleteMultipartUpload the composite value is left to the
	// upstream.
	a, err := func() (*Auth, error) {
		req := newReq(t, "POST", objectURL("logs", "k", "uploadId=u1"), []byte("<CompleteMultipartUpload/>"))
		req.Header.Set("X-Amz-Checksum-Crc32", crc+"-3")
		signHeader(t, req, unsignedPayload, testCreds(), testNow)
		srv := onWire(t, req)
		a, err := testVerifier().Verify(srv)
		if err != nil {
			return nil, err
		}
		a.LeaveChecksumToUpstream()
		_, err = io.ReadAll(a.Body(srv.Body))
		return a, err
	}()
	if err != nil || a == nil {
		t.Fatalf("composite checksum on CompleteMultipartUpload: %v", err)
	}
}

func wantMessage(t *testing.T, err error, code, msg string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want %s: %s", code, msg)
	}
	if e := s3err.As(err); e.Code != code || e.Message != msg {
		t.Fatalf("got %s: %q, want %s: %q", e.Code, e.Message, code, msg)
	}
}

// Framing faults in an aws-chunked body are S3's IncompleteBody "The
// request body terminated unexpectedly" (bodies from versitygw's suite,
// x-amz-decoded-content-length 10); a declared trailer that is not sent is
// MalformedTrailerError; only a well-framed body of the wrong length gets
// the Content-Length message.
func TestChunkedFramingS3Messages(t *testing.T) {
	data := []byte("dummy data")
	crc := "x-amz-checksum-crc64nvme:" + sumOf(t, "x-amz-checksum-crc64nvme", data)
	const terminated = "The request body terminated unexpectedly"
	for _, tc := range []struct {
		body, code, msg string
	}{
		{"A\ndummy data\r\n0\r\n\r\n", s3err.IncompleteBody, terminated},
		{"A\r\ndummy data0\r\n\r\n", s3err.IncompleteBody, terminated},
		{"B\r\ndummy data\r\n0\r\n\r\n", s3err.IncompleteBody, terminated},
		{"A\r\ndummy data\r\n0\r\n", s3err.IncompleteBody, terminated},
		{"A\r\ndummy data\r\n0\r\n" + crc + "\r\n", s3err.IncompleteBody, terminated},
		{"A\r\n", s3err.IncompleteBody, terminated},
		{"A\r\ndummy data\r\nJ\r\n" + crc + "\r\n\r\n", s3err.IncompleteBody, terminated},
		{"A\r\ndummy data\r\n0\r\n\r\n", s3err.MalformedTrailerError, "The request contained trailing data that was not well-formed or did not conform to our published schema."},
		{"C\r\ndummy data!!\r\n0\r\n" + crc + "\r\n\r\n", s3err.IncompleteBody, "You did not provide the number of bytes specified by the Content-Length HTTP header"},
	} {
		body := []byte(tc.body)
		_, _, err := readStreaming(t, streamingRequest(t, streamingUnsignedTrailer, data, 65536, []string{crc}, func([]byte) []byte { return body }))
		if err == nil {
			t.Fatalf("%q accepted", tc.body)
		}
		if e := s3err.As(err); e.Code != tc.code || e.Message != tc.msg {
			t.Errorf("%q: %s: %q (%s), want %s: %q", tc.body, e.Code, e.Message, e.Detail, tc.code, tc.msg)
		}
	}
}

// A signed trailer sent without x-amz-trailer is MalformedTrailerError, not
// a garbled signature line.
func TestUndeclaredSignedTrailer(t *testing.T) {
	data := []byte("hello")
	crc := "x-amz-checksum-crc32:" + sumOf(t, "x-amz-checksum-crc32", data)
	r := streamingRequest(t, streamingSignedTrailer, data, 65536, nil, func(b []byte) []byte {
		if !bytes.HasSuffix(b, []byte("\r\n\r\n")) {
			t.Fatalf("unexpected body %q", b)
		}
		return append(b[:len(b)-2:len(b)-2], crc+"\r\nx-amz-trailer-signature:"+strings.Repeat("0", 64)+"\r\n\r\n"...)
	})
	_, _, err := readStreaming(t, r)
	wantMessage(t, err, s3err.MalformedTrailerError, "The request contained trailing data that was not well-formed or did not conform to our published schema.")
}

// Every aws-chunked mode must declare x-amz-decoded-content-length as a
// non-negative decimal integer; otherwise the request is S3's (and
// versitygw's) MissingContentLength, before any of the body is read, so a
// gateway never forwards an upload of unknown length.
func TestDecodedLengthRequired(t *testing.T) {
	body := []byte("5\r\nhello\r\n0\r\n\r\n")
	for _, mode := range []string{streamingSigned, streamingSignedTrailer, streamingUnsignedTrailer} {
		for _, dl := range []string{"", "abc", "12x", "-1", "+5", "99999999999999999999"} {
			req := newReq(t, "PUT", objectURL("logs", "app/x", ""), body)
			req.Header.Set("Content-Encoding", "aws-chunked")
			if dl != "" {
				req.Header.Set("X-Amz-Decoded-Content-Length", dl)
			}
			signHeader(t, req, mode, testCreds(), testNow)
			_, err := testVerifier().Verify(onWire(t, req))
			if err == nil {
				t.Fatalf("%s with decoded length %q accepted", mode, dl)
			}
			if e := s3err.As(err); e.Code != s3err.MissingContentLength || e.Message != "You must provide the Content-Length HTTP header." || e.Status != http.StatusLengthRequired {
				t.Errorf("%s with decoded length %q: %d %s: %q", mode, dl, e.Status, e.Code, e.Message)
			}
		}
	}
}
