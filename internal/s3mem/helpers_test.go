package s3mem

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
)

const (
	testAK = "AKIAS3MEMTEST0000001"
	testSK = "s3mem-test-secret-key-0123456789abcdefgh"
)

// fixture is a server behind a loopback httptest server and an SDK
// client signing with the server's keys.
type fixture struct {
	srv    *Server
	url    string
	client *s3.Client
	modes  *modeRecorder // TLS fixtures only
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	srv := New(testAK, testSK)
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)
	return &fixture{srv: srv, url: hs.URL, client: newClient(hs.URL, testAK, testSK)}
}

// newTLSFixture serves over TLS, where the SDK streams uploads as
// aws-chunked with a trailing checksum instead of hashing them first.
func newTLSFixture(t *testing.T) *fixture {
	t.Helper()
	srv := New(testAK, testSK)
	hs := httptest.NewTLSServer(srv)
	t.Cleanup(hs.Close)
	hc := hs.Client()
	rec := &modeRecorder{next: hc.Transport}
	hc.Transport = rec
	c := newClient(hs.URL, testAK, testSK, func(o *s3.Options) { o.HTTPClient = hc })
	return &fixture{srv: srv, url: hs.URL, client: c, modes: rec}
}

// modeRecorder records the x-amz-content-sha256 of the last PUT sent.
type modeRecorder struct {
	next http.RoundTripper
	mu   sync.Mutex
	last string
}

func (m *modeRecorder) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Method == http.MethodPut {
		m.mu.Lock()
		m.last = r.Header.Get("X-Amz-Content-Sha256")
		m.mu.Unlock()
	}
	return m.next.RoundTrip(r)
}

func (m *modeRecorder) lastPut() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.last
}

// newClient is an SDK client for a path-style endpoint, without retries
// so a refused request fails at once.
func newClient(endpoint, ak, sk string, opts ...func(*s3.Options)) *s3.Client {
	cfg := aws.Config{
		Region:           "us-east-1",
		Credentials:      credentials.NewStaticCredentialsProvider(ak, sk, ""),
		RetryMaxAttempts: 1,
	}
	return s3.NewFromConfig(cfg, append([]func(*s3.Options){func(o *s3.Options) {
		o.UsePathStyle = true
		o.BaseEndpoint = aws.String(endpoint)
	}}, opts...)...)
}

func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// wantCode fails unless err is an S3 API error with code.
func wantCode(t *testing.T, err error, code string) {
	t.Helper()
	var ae smithy.APIError
	if !errors.As(err, &ae) {
		t.Fatalf("got error %v, want API error %s", err, code)
	}
	if ae.ErrorCode() != code {
		t.Fatalf("got code %s (%v), want %s", ae.ErrorCode(), err, code)
	}
}
