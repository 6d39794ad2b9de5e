package awsgw

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/xml"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/airlock-dev/airlock/internal/gateway"
	"github.com/airlock-dev/airlock/internal/gateway/gatewaytest"
)

const (
	testTarget  = "aws-test"
	upstreamAK  = "UPSTREAMKEY"
	upstreamSK  = "upstream-secret-key"
	testRegion  = "us-east-1"
	testAccount = "111122223333"
)

// env is a gateway in front of an upstream, with a fake control plane.
type env struct {
	t    testing.TB
	auth *gatewaytest.Authority
	up   *fakeS3
	gw   *Gateway
	srv  *httptest.Server
	logs *syncWriter
}

// logText is what the gateway logged so far.
func (e *env) logText() string {
	e.logs.mu.Lock()
	defer e.logs.mu.Unlock()
	return e.logs.w.(*bytes.Buffer).String()
}

type envOpt func(*Options)

func newEnv(t testing.TB, opts ...envOpt) *env {
	t.Helper()
	return newEnvTLS(t, false, opts...)
}

// newEnvTLS serves the gateway over TLS if useTLS, where the SDK streams
// uploads with aws-chunked framing and a trailing checksum instead of
// signing a digest.
func newEnvTLS(t testing.TB, useTLS bool, opts ...envOpt) *env {
	t.Helper()
	e := &env{t: t, auth: gatewaytest.New(), up: newFakeS3(t, upstreamAK, upstreamSK), logs: &syncWriter{w: &bytes.Buffer{}}}
	// Last, once the gateway has closed: every session's records came
	// before its end.
	t.Cleanup(func() {
		if n := e.auth.LateRecords(); n != 0 {
			t.Errorf("%d records were made after their session's end", n)
		}
	})
	o := Options{
		Authority: e.auth,
		Targets: []Target{{Name: testTarget, Account: testAccount, Region: testRegion, Endpoint: e.up.srv.URL,
			AccessKeyID: upstreamAK, SecretAccessKey: upstreamSK}},
		Hosts:  []string{"s3.gw.test"},
		Logger: slog.New(slog.NewTextHandler(e.logs, nil)),
	}
	for _, f := range opts {
		f(&o)
	}
	gw, err := New(o)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	e.gw = gw
	e.srv = httptest.NewUnstartedServer(gw)
	e.srv.Config.ConnContext = ConnContext // as internal/server serves it
	if useTLS {
		e.srv.StartTLS()
	} else {
		e.srv.Start()
	}
	t.Cleanup(func() {
		e.srv.Close()
		if err := gw.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return e
}

// grant adds an active aws grant with the given scope statements.
func (e *env) grant(stmts ...string) *gateway.Grant {
	return e.auth.Add(gatewaytest.Spec{Identity: "log-triage-bot", Target: testTarget, TargetKind: "aws", Account: testAccount, Scope: stmts})
}

// client is an AWS SDK S3 client with g's credentials, pointed at the gateway.
func (e *env) client(g *gateway.Grant) *s3.Client {
	return e.clientWith(g.CredentialID, g.Secret, g.SessionToken)
}

func (e *env) clientWith(ak, sk, token string) *s3.Client {
	return s3.New(s3.Options{
		Region:           testRegion,
		BaseEndpoint:     aws.String(e.srv.URL),
		UsePathStyle:     true,
		Credentials:      credentials.NewStaticCredentialsProvider(ak, sk, token),
		RetryMaxAttempts: 1,
		HTTPClient:       e.srv.Client(),
	})
}

// signed builds a request to the gateway signed as an SDK would, with
// the path exactly as given (for encoding tricks the SDK would not send).
func (e *env) signed(g *gateway.Grant, method, rawPath string, body []byte) *http.Request {
	e.t.Helper()
	return e.sign(g, method, "", rawPath, body)
}

// signedHost is signed, addressed virtual-hosted style to host.
func (e *env) signedHost(g *gateway.Grant, method, host, rawPath string) *http.Request {
	e.t.Helper()
	return e.sign(g, method, host, rawPath, nil)
}

// signedWith signs with explicit credentials (wrong ones, for tests).
func (e *env) signedWith(ak, sk, token, method, rawPath string) *http.Request {
	e.t.Helper()
	return e.signRaw(aws.Credentials{AccessKeyID: ak, SecretAccessKey: sk, SessionToken: token}, method, "", rawPath, nil, time.Now())
}

// signedAt signs as of at.
func (e *env) signedAt(g *gateway.Grant, method, rawPath string, at time.Time) *http.Request {
	e.t.Helper()
	return e.signRaw(aws.Credentials{AccessKeyID: g.CredentialID, SecretAccessKey: g.Secret, SessionToken: g.SessionToken}, method, "", rawPath, nil, at)
}

func (e *env) sign(g *gateway.Grant, method, host, rawPath string, body []byte) *http.Request {
	e.t.Helper()
	return e.signRaw(aws.Credentials{AccessKeyID: g.CredentialID, SecretAccessKey: g.Secret, SessionToken: g.SessionToken}, method, host, rawPath, body, time.Now())
}

func (e *env) signRaw(creds aws.Credentials, method, host, rawPath string, body []byte, at time.Time) *http.Request {
	e.t.Helper()
	return e.signRawHeader(creds, method, host, rawPath, body, at, nil)
}

// signedHeader is signed with the headers of h set (and signed) too.
func (e *env) signedHeader(g *gateway.Grant, method, rawPath string, body []byte, h http.Header) *http.Request {
	e.t.Helper()
	return e.signRawHeader(aws.Credentials{AccessKeyID: g.CredentialID, SecretAccessKey: g.Secret, SessionToken: g.SessionToken}, method, "", rawPath, body, time.Now(), h)
}

func (e *env) signRawHeader(creds aws.Credentials, method, host, rawPath string, body []byte, at time.Time, h http.Header) *http.Request {
	e.t.Helper()
	req, err := http.NewRequest(method, e.srv.URL+rawPath, bytes.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	if host != "" {
		req.Host = host
	}
	for k, vs := range h {
		req.Header[k] = vs
	}
	sum := sha256.Sum256(body)
	hash := hex.EncodeToString(sum[:])
	req.Header.Set("X-Amz-Content-Sha256", hash)
	signer := v4.NewSigner(func(o *v4.SignerOptions) { o.DisableURIPathEscaping = true })
	if err := signer.SignHTTP(context.Background(), creds, req, hash, "s3", testRegion, at); err != nil {
		e.t.Fatal(err)
	}
	return req
}

// do sends req and returns status and body.
func do(t *testing.T, req *http.Request) (int, []byte) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading: %v", err)
	}
	return resp.StatusCode, b
}

type s3Error struct {
	Code, Message string
}

func parseErr(t *testing.T, b []byte) s3Error {
	t.Helper()
	var e s3Error
	if err := xml.Unmarshal(b, &e); err != nil {
		t.Fatalf("not an S3 error document: %v: %q", err, b)
	}
	return e
}

// errCode extracts the S3 error code and message from an SDK error.
func errCode(err error) string {
	if err == nil {
		return ""
	}
	var ae interface {
		ErrorCode() string
		ErrorMessage() string
	}
	if asErr(err, &ae) {
		return ae.ErrorCode() + ": " + ae.ErrorMessage()
	}
	return err.Error()
}

// requests returns the request calls recorded for g, in order.
func (e *env) requests(g *gateway.Grant) []gateway.Call {
	var out []gateway.Call
	for _, c := range e.auth.Calls(g.ID) {
		if c.Kind == "request" {
			out = append(out, c)
		}
	}
	return out
}

// results waits (bounded) for n result calls of g and returns them.
func (e *env) results(g *gateway.Grant, n int) []gateway.Call {
	e.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		var out []gateway.Call
		for _, c := range e.auth.Calls(g.ID) {
			if c.Kind == "result" {
				out = append(out, c)
			}
		}
		if len(out) >= n || time.Now().After(deadline) {
			if len(out) < n {
				e.t.Fatalf("got %d result records, want %d: %+v", len(out), n, e.auth.Calls(g.ID))
			}
			return out
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// eventually polls cond for up to 5s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
