package awsgw

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/airlock-dev/airlock/internal/gateway"
	"github.com/airlock-dev/airlock/internal/gateway/gatewaytest"
)

// slowRecords is an Authority whose Record takes d, like a log with group
// commit; it shows what waiting for the result record would cost.
type slowRecords struct {
	*gatewaytest.Authority
	d time.Duration
}

func (s slowRecords) StartSession(ctx context.Context, g *gateway.Grant, client string) (*gateway.Session, error) {
	rec := func(ctx context.Context, c gateway.Call) error {
		select {
		case <-time.After(s.d):
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return gateway.NewSession("s_bench", g, rec, func(context.Context) error { return nil }), nil
}

func newLoopbackServer(h http.Handler) *httptest.Server { return httptest.NewServer(h) }

// BenchmarkGateway compares GetObject through the gateway with GetObject
// directly from the same upstream, 8 clients in parallel.
func BenchmarkGateway(b *testing.B) {
	for _, bc := range []struct {
		name        string
		size        int
		direct      bool
		delay       time.Duration
		syncResults bool
	}{
		{"Get1KiB/direct", 1 << 10, true, 0, false},
		{"Get1KiB/gateway", 1 << 10, false, 0, false},
		{"Get1KiB/gateway-record2ms-async", 1 << 10, false, 2 * time.Millisecond, false},
		{"Get1KiB/gateway-record2ms-sync", 1 << 10, false, 2 * time.Millisecond, true},
		{"Get1MiB/direct", 1 << 20, true, 0, false},
		{"Get1MiB/gateway", 1 << 20, false, 0, false},
	} {
		b.Run(bc.name, func(b *testing.B) {
			auth := gatewaytest.New()
			up := newFakeS3(b, upstreamAK, upstreamSK)
			var a gateway.Authority = auth
			if bc.delay > 0 {
				a = slowRecords{auth, bc.delay}
			}
			gw, err := New(Options{Authority: a, Targets: []Target{{Name: testTarget, Region: testRegion, Endpoint: up.srv.URL, AccessKeyID: upstreamAK, SecretAccessKey: upstreamSK}}})
			if err != nil {
				b.Fatal(err)
			}
			gw.syncResults = bc.syncResults
			srv := newLoopbackServer(gw)
			defer func() { srv.Close(); gw.Close() }()
			g := auth.Add(gatewaytest.Spec{Target: testTarget, TargetKind: "aws", Scope: []string{walkScope}})
			up.put("logs/app/obj", bytes.Repeat([]byte("x"), bc.size))
			endpoint, ak, sk, tok := srv.URL, g.CredentialID, g.Secret, g.SessionToken
			if bc.direct {
				endpoint, ak, sk, tok = up.srv.URL, upstreamAK, upstreamSK, ""
			}
			tr := &http.Transport{MaxIdleConnsPerHost: 64}
			defer tr.CloseIdleConnections()
			cl := s3.New(s3.Options{Region: testRegion, BaseEndpoint: aws.String(endpoint), UsePathStyle: true,
				Credentials: credentials.NewStaticCredentialsProvider(ak, sk, tok), HTTPClient: &http.Client{Transport: tr}})
			b.SetBytes(int64(bc.size))
			b.SetParallelism(4) // 2 cores x 4 = 8 clients
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					out, err := cl.GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String("logs"), Key: aws.String("app/obj")})
					if err != nil {
						b.Error(err)
						return
					}
					_, _ = io.Copy(io.Discard, out.Body)
					out.Body.Close()
				}
			})
		})
	}
}
