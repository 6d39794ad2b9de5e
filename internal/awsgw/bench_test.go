package awsgw

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/airlock-dev/airlock/internal/clock"
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
	return gateway.NewSession("s_bench", g, gateway.Recorder{Request: rec, Result: rec, End: func(context.Context) error { return nil }}), nil
}

func newLoopbackServer(h http.Handler) *httptest.Server { return httptest.NewServer(h) }

// BenchmarkGateway compares GetObject and PutObject through the gateway
// with the same calls made directly to the same upstream, 8 clients in
// parallel. Besides the usual figures it reports cpu-µs/op, the process CPU
// (user+system, from getrusage) per operation: clients, gateway and
// upstream all run in this process, so a gateway case's cpu-µs/op minus
// its direct case's is what the gateway adds to each call. Their goroutines
// carry the pprof label side=client, gateway or upstream, so that
// "go tool pprof -tags" on a -cpuprofile splits the CPU between them.
func BenchmarkGateway(b *testing.B) {
	for _, bc := range []struct {
		name        string
		put         bool
		size        int
		direct      bool
		delay       time.Duration
		syncResults bool
		netTr       bool // net/http's Transport upstream, not h1Transport
		goproxy     bool // through httputil.ReverseProxy instead of the gateway
	}{
		{"Get1KiB/direct", false, 1 << 10, true, 0, false, false, false},
		{"Get1KiB/goproxy", false, 1 << 10, true, 0, false, false, true},
		{"Get1KiB/gateway", false, 1 << 10, false, 0, false, false, false},
		{"Get1KiB/gateway-nettransport", false, 1 << 10, false, 0, false, true, false},
		{"Get1KiB/gateway-record2ms-async", false, 1 << 10, false, 2 * time.Millisecond, false, false, false},
		{"Get1KiB/gateway-record2ms-sync", false, 1 << 10, false, 2 * time.Millisecond, true, false, false},
		{"Get1MiB/direct", false, 1 << 20, true, 0, false, false, false},
		{"Get1MiB/goproxy", false, 1 << 20, true, 0, false, false, true},
		{"Get1MiB/gateway", false, 1 << 20, false, 0, false, false, false},
		{"Put1MiB/direct", true, 1 << 20, true, 0, false, false, false},
		{"Put1MiB/goproxy", true, 1 << 20, true, 0, false, false, true},
		{"Put1MiB/gateway", true, 1 << 20, false, 0, false, false, false},
	} {
		b.Run(bc.name, func(b *testing.B) {
			auth := gatewaytest.New()
			var up *fakeS3
			pprof.Do(context.Background(), pprof.Labels("side", "upstream"), func(context.Context) { up = newFakeS3(b, upstreamAK, upstreamSK) })
			up.forgetful = true // keep no per-request history over millions of calls
			var a gateway.Authority = auth
			if bc.delay > 0 {
				a = slowRecords{auth, bc.delay}
			}
			var upTr http.RoundTripper // the default
			if bc.netTr {
				upTr = UpstreamTransport()
			}
			gw, err := New(Options{Authority: a, Transport: upTr, Targets: []Target{{Name: testTarget, Region: testRegion, Endpoint: up.srv.URL, AccessKeyID: upstreamAK, SecretAccessKey: upstreamSK}}})
			if err != nil {
				b.Fatal(err)
			}
			gw.syncResults = bc.syncResults
			// Goroutines inherit pprof labels from the one that starts them,
			// so a CPU profile splits by side: go tool pprof -tags.
			var srv *httptest.Server
			pprof.Do(context.Background(), pprof.Labels("side", "gateway"), func(context.Context) { srv = newLoopbackServer(gw) })
			defer func() { srv.Close(); gw.Close() }()
			g := auth.Add(gatewaytest.Spec{Target: testTarget, TargetKind: "aws", Scope: []string{walkScope}})
			payload := bytes.Repeat([]byte("x"), bc.size)
			up.put("logs/app/obj", payload)
			endpoint, ak, sk, tok := srv.URL, g.CredentialID, g.Secret, g.SessionToken
			if bc.direct {
				endpoint, ak, sk, tok = up.srv.URL, upstreamAK, upstreamSK, ""
			}
			if bc.goproxy {
				// The peer s3bench compares with: Go's ReverseProxy with the
				// gateway's net/http Transport settings, signed for the
				// upstream (the proxy keeps the Host the client signed).
				target, err := url.Parse(up.srv.URL)
				if err != nil {
					b.Fatal(err)
				}
				rp := &httputil.ReverseProxy{
					Rewrite: func(r *httputil.ProxyRequest) {
						r.SetURL(target)
						r.Out.Host = r.In.Host
					},
					Transport: UpstreamTransport(),
				}
				var ps *httptest.Server
				pprof.Do(context.Background(), pprof.Labels("side", "gateway"), func(context.Context) { ps = newLoopbackServer(rp) })
				defer ps.Close()
				endpoint = ps.URL
			}
			tr := &http.Transport{MaxIdleConnsPerHost: 64}
			defer tr.CloseIdleConnections()
			cl := s3.New(s3.Options{Region: testRegion, BaseEndpoint: aws.String(endpoint), UsePathStyle: true,
				Credentials: credentials.NewStaticCredentialsProvider(ak, sk, tok), HTTPClient: &http.Client{Transport: tr}})
			op := func() error {
				if bc.put {
					_, err := cl.PutObject(context.Background(), &s3.PutObjectInput{Bucket: aws.String("logs"), Key: aws.String("app/up"), Body: bytes.NewReader(payload)})
					return err
				}
				out, err := cl.GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String("logs"), Key: aws.String("app/obj")})
				if err != nil {
					return err
				}
				n, err := io.Copy(io.Discard, out.Body)
				out.Body.Close()
				if err == nil && n != int64(bc.size) {
					err = fmt.Errorf("got %d bytes, want %d", n, bc.size)
				}
				return err
			}
			pprof.Do(context.Background(), pprof.Labels("side", "client"), func(context.Context) { err = op() }) // warm up connections and caches
			if err != nil {
				b.Fatal(err)
			}
			if bc.put {
				if got, _ := up.object("logs/app/up"); !bytes.Equal(got, payload) {
					b.Fatalf("the upstream stored %d bytes, want the %d sent", len(got), len(payload))
				}
			}
			b.SetBytes(int64(bc.size))
			b.SetParallelism(4) // 2 cores x 4 = 8 clients
			cpu0 := processCPU(b)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				pprof.SetGoroutineLabels(pprof.WithLabels(context.Background(), pprof.Labels("side", "client")))
				for pb.Next() {
					if err := op(); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.StopTimer()
			b.ReportMetric(float64((processCPU(b)-cpu0).Microseconds())/float64(b.N), "cpu-µs/op")
		})
	}
}

// processCPU is the CPU time (user and system) this process has used.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkGatewayHandler measures the gateway's own work per call, with
// no sockets and no HTTP server or client around it: ServeHTTP is called
// directly with a request signed once (replayed; the signature stays
// valid within the clock skew) and an in-memory upstream that answers at
// once. What net/http costs on either side is left out, so the figures
// (ns/op, allocs/op) are steadier than BenchmarkGateway's on a busy
// machine and show what the gateway's code itself costs.
func BenchmarkGatewayHandler(b *testing.B) {
	for _, bc := range []struct {
		name string
		put  bool
		size int
		h1   bool
	}{
		{"Get1KiB", false, 1 << 10, false},
		// The same with the client's connection known, as airlock serve
		// tells it (ConnContext): the answer's stall watch is armed.
		{"Get1KiB-conn", false, 1 << 10, false},
		// The same through awsgw's own HTTP/1 client, as airlock serve
		// sends it, to cannedUpstream over loopback TCP.
		{"Get1KiB-h1", false, 1 << 10, true},
		{"Get1MiB", false, 1 << 20, false},
		{"Put1MiB", true, 1 << 20, false},
	} {
		b.Run(bc.name, func(b *testing.B) {
			var serve func()
			switch {
			case bc.h1:
				serve = handlerBenchH1(b)
			case strings.HasSuffix(bc.name, "-conn"):
				c, _ := stalledConn(b)
				up := &memUpstream{body: bytes.Repeat([]byte("x"), bc.size)}
				serve = handlerBenchOn(b, nil, c, false, bc.size, "http://upstream.test", up, func() int64 { return 0 })
			default:
				serve, _ = handlerBench(b, bc.put, bc.size)
			}
			serve()
			b.SetBytes(int64(bc.size))
			b.ReportAllocs()
			cpu0 := processCPU(b)
			b.ResetTimer()
			for b.Loop() {
				serve()
			}
			b.StopTimer()
			b.ReportMetric(float64((processCPU(b)-cpu0).Microseconds())/float64(b.N), "cpu-µs/op")
		})
	}
}

// handlerBench sets up BenchmarkGatewayHandler's gateway, upstream and
// signed request, and returns a func that serves one call through the
// handler and the upstream, checking the answer.
func handlerBench(tb testing.TB, put bool, size int) (serve func(), up *memUpstream) {
	tb.Helper()
	up = &memUpstream{body: bytes.Repeat([]byte("x"), size)}
	serve = handlerBenchVia(tb, put, size, "http://upstream.test", up, func() int64 { return up.lastIn })
	return serve, up
}

// handlerBenchH1 is handlerBench's GET 1 KiB with the gateway's own
// transport (awsgw's HTTP/1 client) to cannedUpstream.
func handlerBenchH1(tb testing.TB) (serve func()) {
	tb.Helper()
	endpoint := strings.TrimSuffix(cannedUpstream(tb), "/b/k")
	return handlerBenchVia(tb, false, 1<<10, endpoint, nil, func() int64 { return 0 })
}

// handlerBenchVia is handlerBench with the upstream at endpoint through
// tr (nil: the gateway's own); lastIn is what the upstream last read.
func handlerBenchVia(tb testing.TB, put bool, size int, endpoint string, tr http.RoundTripper, lastIn func() int64) (serve func()) {
	tb.Helper()
	return handlerBenchOn(tb, nil, nil, put, size, endpoint, tr, lastIn)
}

// handlerBenchOn is handlerBenchVia with the gateway on clk (nil: the
// real clock) and, if conn is not nil, the requests' context telling the
// handler their client's connection, as ConnContext does in airlock
// serve (so that answers are watched for a stalled client, idle.go).
func handlerBenchOn(tb testing.TB, clk clock.Clock, conn net.Conn, put bool, size int, endpoint string, tr http.RoundTripper, lastIn func() int64) (serve func()) {
	tb.Helper()
	auth := gatewaytest.New()
	payload := bytes.Repeat([]byte("x"), size)
	gw, err := New(Options{Authority: auth, Transport: tr, Clock: clk, Targets: []Target{{Name: testTarget, Region: testRegion, Endpoint: endpoint, AccessKeyID: upstreamAK, SecretAccessKey: upstreamSK}}})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { gw.Close() })
	g := auth.Add(gatewaytest.Spec{Target: testTarget, TargetKind: "aws", Scope: []string{walkScope}})
	method, body := http.MethodGet, []byte(nil)
	if put {
		method, body = http.MethodPut, payload
	}
	tmpl, err := http.NewRequest(method, "http://gw.test/logs/app/obj", bytes.NewReader(body))
	if err != nil {
		tb.Fatal(err)
	}
	sum := sha256.Sum256(body)
	hash := hex.EncodeToString(sum[:])
	tmpl.Header.Set("X-Amz-Content-Sha256", hash)
	tmpl.Header.Set("User-Agent", "aws-sdk-go-v2/1.0 bench")
	tmpl.Header.Set("Amz-Sdk-Invocation-Id", "00000000-0000-0000-0000-000000000000")
	tmpl.Header.Set("Amz-Sdk-Request", "attempt=1; max=3")
	tmpl.Header.Set("Accept-Encoding", "identity")
	signer := v4.NewSigner(func(o *v4.SignerOptions) { o.DisableURIPathEscaping = true })
	if err := signer.SignHTTP(context.Background(), aws.Credentials{AccessKeyID: g.CredentialID, SecretAccessKey: g.Secret, SessionToken: g.SessionToken}, tmpl, hash, "s3", testRegion, time.Now()); err != nil {
		tb.Fatal(err)
	}
	w := &discardWriter{h: http.Header{}}
	ctx := context.Background()
	if conn != nil {
		ctx = ConnContext(ctx, conn)
	}
	serve = func() {
		r := tmpl.Clone(ctx)
		r.RequestURI = "/logs/app/obj"
		r.RemoteAddr = "127.0.0.1:40000"
		r.Body = io.NopCloser(bytes.NewReader(body))
		r.ContentLength = int64(len(body))
		clear(w.h)
		w.status, w.n = 0, 0
		gw.ServeHTTP(w, r)
		if w.status != http.StatusOK || (!put && w.n != int64(size)) || (put && lastIn() != int64(size)) {
			tb.Fatalf("status %d, %d bytes out, %d bytes in", w.status, w.n, lastIn())
		}
	}
	return serve
}

// memUpstream answers every request at once with body (GET) or an empty
// 200 after reading the request body (PUT), as an upstream would.
type memUpstream struct {
	body   []byte
	lastIn int64
}

func (m *memUpstream) RoundTrip(r *http.Request) (*http.Response, error) {
	var n int64
	if r.Body != nil {
		var err error
		n, err = io.Copy(io.Discard, r.Body)
		r.Body.Close()
		if err != nil {
			return nil, err
		}
	}
	m.lastIn = n
	resp := &http.Response{StatusCode: http.StatusOK, Header: http.Header{"Etag": {`"e"`}}, Request: r, Body: http.NoBody}
	if r.Method == http.MethodGet {
		resp.Header["Content-Length"] = []string{strconv.Itoa(len(m.body))}
		resp.ContentLength = int64(len(m.body))
		resp.Body = io.NopCloser(bytes.NewReader(m.body))
	}
	return resp, nil
}

// discardWriter is a ResponseWriter that counts and drops the body.
type discardWriter struct {
	h      http.Header
	status int
	n      int64
}

func (d *discardWriter) Header() http.Header { return d.h }
func (d *discardWriter) WriteHeader(s int) {
	if d.status == 0 {
		d.status = s
	}
}
func (d *discardWriter) Write(p []byte) (int, error) {
	if d.status == 0 {
		d.status = http.StatusOK
	}
	d.n += int64(len(p))
	return len(p), nil
}

// Flush makes discardWriter an http.Flusher, as net/http's writer is, so
// that the copy takes the path it takes in production.
func (d *discardWriter) Flush() {}

// BenchmarkCopyResponseHeader copies a GetObject answer's headers from
// versitygw into the client's header map, as every forwarded answer does.
func BenchmarkCopyResponseHeader(b *testing.B) {
	from := versitygwGetHeader()
	h := make(http.Header, 32)
	b.ReportAllocs()
	for b.Loop() {
		clear(h)
		copyResponseHeader(h, from)
	}
}
