package s3mem

import (
	"context"
	"errors"
	"net/http/httptest"
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
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	srv := New(testAK, testSK)
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)
	return &fixture{srv: srv, url: hs.URL, client: newClient(hs.URL, testAK, testSK)}
}

// newClient is an SDK client for a path-style endpoint, without retries
// so a refused request fails at once.
func newClient(endpoint, ak, sk string) *s3.Client {
	cfg := aws.Config{
		Region:           "us-east-1",
		Credentials:      credentials.NewStaticCredentialsProvider(ak, sk, ""),
		RetryMaxAttempts: 1,
	}
	return s3.NewFromConfig(cfg, func(o *s3.Options) {
		o.UsePathStyle = true
		o.BaseEndpoint = aws.String(endpoint)
	})
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
