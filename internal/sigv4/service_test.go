package sigv4

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"

	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"

	"github.com/airlock-dev/airlock/internal/s3err"
)

// signService signs req for service the way every SDK but S3's does: the
// body's digest is signed, not sent.
func signService(t *testing.T, req *http.Request, body []byte, service string) {
	t.Helper()
	if err := v4.NewSigner().SignHTTP(context.Background(), testCreds(), req, sha256Hex(body), service, testRegion, testNow); err != nil {
		t.Fatal(err)
	}
}

func serviceRequest(t *testing.T, body []byte, service string) *http.Request {
	t.Helper()
	req, _ := http.NewRequest("POST", "http://127.0.0.1:8701/", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/x-amz-json-1.0")
	req.Header.Set("X-Amz-Target", "DynamoDB_20120810.GetItem")
	signService(t, req, body, service)
	return onWire(t, req)
}

// hashingVerifier reads the body whole, as the AWS gateway does.
func hashingVerifier(calls *int) *Verifier {
	v := testVerifier()
	v.HashBody = func(r *http.Request) (string, error) {
		*calls++
		b, err := io.ReadAll(io.LimitReader(r.Body, 1<<10+1))
		if err != nil {
			return "", err
		}
		if len(b) > 1<<10 {
			return "", errors.New("too big")
		}
		r.Body = io.NopCloser(bytes.NewReader(b))
		return sha256Hex(b), nil
	}
	return v
}

func TestVerifyServiceBodyDigest(t *testing.T) {
	body := []byte(`{"TableName":"orders","Key":{"id":{"S":"1"}}}`)
	calls := 0
	v := hashingVerifier(&calls)
	a, err := v.Verify(serviceRequest(t, body, "dynamodb"))
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if a.Service != "dynamodb" || a.Payload != SHA256 || a.PayloadSHA256 != sha256Hex(body) || calls != 1 {
		t.Fatalf("auth %+v, HashBody calls %d", a, calls)
	}

	// The body the client signed is the body verified: another one fails.
	r := serviceRequest(t, body, "dynamodb")
	r.Body = io.NopCloser(strings.NewReader(`{"TableName":"secrets","Key":{"id":{"S":"1"}}}`))
	if _, err := v.Verify(r); s3err.As(err).Code != s3err.SignatureDoesNotMatch {
		t.Fatalf("tampered body: %v", err)
	}

	// Without HashBody, the S3 rule holds: the digest header is required.
	if _, err := testVerifier().Verify(serviceRequest(t, body, "dynamodb")); err == nil || !strings.Contains(err.Error(), "x-amz-content-sha256") {
		t.Fatalf("no HashBody: %v", err)
	}
	// An S3 request never has its body read by HashBody.
	calls = 0
	if _, err := v.Verify(serviceRequest(t, body, "s3")); err == nil || calls != 0 {
		t.Fatalf("s3 without digest header: %v, HashBody calls %d", err, calls)
	}
	// Nor does an unknown key's request.
	r = serviceRequest(t, body, "dynamodb")
	r.Header.Set("Authorization", strings.Replace(r.Header.Get("Authorization"), testAK, "AKIDUNKNOWN", 1))
	if _, err := v.Verify(r); s3err.As(err).Code != s3err.InvalidAccessKeyID || calls != 0 {
		t.Fatalf("unknown key: %v, HashBody calls %d", err, calls)
	}
	// HashBody's error is returned unchanged.
	if _, err := v.Verify(serviceRequest(t, bytes.Repeat([]byte("x"), 2<<10), "dynamodb")); err == nil || err.Error() != "too big" {
		t.Fatalf("oversized: %v", err)
	}
}

func TestVerifyServiceName(t *testing.T) {
	calls := 0
	v := hashingVerifier(&calls)
	for _, svc := range []string{"logs", "ssm", "execute-api", "kinesisvideo", "a1"} {
		if _, err := v.Verify(serviceRequest(t, nil, svc)); err != nil {
			t.Errorf("%s: %v", svc, err)
		}
	}
	for _, svc := range []string{"DynamoDB", "1abc", "dyn.amodb", "dyn_db", "ex%41mple", strings.Repeat("a", 65)} {
		req, _ := http.NewRequest("POST", "http://127.0.0.1:8701/", nil)
		signService(t, req, nil, svc)
		_, err := v.Verify(onWire(t, req))
		if e := s3err.As(err); e == nil || e.Code != s3err.AuthorizationHeaderMalformed || !strings.Contains(e.Message, "incorrect service") {
			t.Errorf("%q: %v", svc, err)
		}
	}
	if ValidService("") || !ValidService("sts") {
		t.Error("ValidService")
	}
}

// A REST-JSON path with escapes (Lambda's function ARN) is signed escaped
// twice by every SDK but S3's; the verifier and the signer agree with the
// SDK.
func TestServicePathEscapedTwice(t *testing.T) {
	calls := 0
	v := hashingVerifier(&calls)
	req, _ := http.NewRequest("POST", "http://127.0.0.1:8701/2015-03-31/functions/arn%3Aaws%3Alambda%3Aus-east-1%3A111122223333%3Afunction%3Afn/invocations", nil)
	signService(t, req, nil, "lambda")
	if _, err := v.Verify(onWire(t, req)); err != nil {
		t.Fatalf("SDK-signed lambda path: %v", err)
	}
	// Our signer, checked by the SDK's own signature over the same request.
	ours, _ := http.NewRequest("POST", req.URL.String(), nil)
	if err := (&Signer{}).Sign(ours, Credentials{AccessKeyID: testAK, SecretAccessKey: testSecret, SessionToken: testToken}, testRegion, "lambda", sha256Hex(nil), testNow); err != nil {
		t.Fatal(err)
	}
	if got, want := ours.Header.Get("Authorization"), req.Header.Get("Authorization"); got[strings.LastIndex(got, "Signature="):] != want[strings.LastIndex(want, "Signature="):] {
		t.Fatalf("signer disagrees with the SDK:\n%s\n%s", got, want)
	}
}
