package sigv4

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"

	"github.com/airlock-dev/airlock/internal/s3err"
)

const (
	testAK     = "AKIDAIRLOCKTEST"
	testSecret = "s3cr3t/with+chars=="
	testToken  = "session-token-value"
	testRegion = "us-east-1"
)

// testNow is the fixed clock of the unit tests.
var testNow = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

func testCreds() aws.Credentials {
	return aws.Credentials{AccessKeyID: testAK, SecretAccessKey: testSecret, SessionToken: testToken}
}

// testVerifier knows testAK with its secret and token.
func testVerifier() *Verifier {
	return &Verifier{
		Lookup: func(ak string) (string, string, error) {
			if ak != testAK {
				return "", "", s3err.New(s3err.InvalidAccessKeyID, "The AWS Access Key Id you provided does not exist in our records.")
			}
			return testSecret, testToken, nil
		},
		Now: func() time.Time { return testNow },
	}
}

// s3Signer signs the way the S3 client does: the path is already escaped
// and is not escaped again.
func s3Signer() *v4.Signer {
	return v4.NewSigner(func(o *v4.SignerOptions) { o.DisableURIPathEscaping = true })
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// signHeader signs req with the SDK, setting x-amz-content-sha256 to
// payloadHash first, as the S3 client does.
func signHeader(t *testing.T, req *http.Request, payloadHash string, creds aws.Credentials, at time.Time) {
	t.Helper()
	req.Header.Set("X-Amz-Content-Sha256", payloadHash)
	if err := s3Signer().SignHTTP(context.Background(), creds, req, payloadHash, "s3", testRegion, at); err != nil {
		t.Fatalf("SignHTTP: %v", err)
	}
}

// onWire sends req through HTTP/1.1 serialisation and parses it back the
// way Go's server does, so RequestURI, Host and header handling are what a
// handler would see.
func onWire(t *testing.T, req *http.Request) *http.Request {
	t.Helper()
	var buf bytes.Buffer
	if err := req.Write(&buf); err != nil {
		t.Fatalf("writing request: %v", err)
	}
	got, err := http.ReadRequest(bufio.NewReader(&buf))
	if err != nil {
		t.Fatalf("reading request back: %v\n%s", err, buf.String())
	}
	return got
}

func newReq(t *testing.T, method, url string, body []byte) *http.Request {
	t.Helper()
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, url, r)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

// wantCode fails unless err is an *s3err.Error with code.
func wantCode(t *testing.T, err error, code string) {
	t.Helper()
	var e *s3err.Error
	if !errors.As(err, &e) {
		t.Fatalf("error = %v (%T), want *s3err.Error %s", err, err, code)
	}
	if e.Code != code {
		t.Fatalf("code = %s (%s), want %s", e.Code, e.Message, code)
	}
	noSecrets(t, e.Message)
}

// wantAnonymous fails unless err marks a request with no credentials at
// all exactly when want says so (the AWS gateway answers such a request
// to a service other than S3 with MissingAuthenticationToken).
func wantAnonymous(t *testing.T, err error, want bool) {
	t.Helper()
	var e *s3err.Error
	if !errors.As(err, &e) || e.Anonymous != want {
		t.Fatalf("error %v: Anonymous is not %v", err, want)
	}
}

// noSecrets fails if a message leaks the secret or the token.
func noSecrets(t *testing.T, msg string) {
	t.Helper()
	for _, s := range []string{testSecret, testToken} {
		if strings.Contains(msg, s) {
			t.Fatalf("message leaks a secret: %q", msg)
		}
	}
}
