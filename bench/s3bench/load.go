package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"github.com/airlock-dev/airlock/bench/internal/benchkit"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

const bucket = "bench"

// newClient is one agent: the AWS SDK's S3 client, path-style, retries
// off (a retry would hide a failure and inflate the time of a call), with
// its own keep-alive connection pool so clients do not share connections.
// dials counts the connections it opens, so that a phase shows whether
// connections were reused. With roots, the client speaks TLS to an https
// endpoint, trusting those CAs, over HTTP/1.1 as the SDK's default
// client does to S3.
func newClient(endpoint, region, key, secret, token string, dials *atomic.Int64, roots *x509.CertPool) *s3.Client {
	d := &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}
	tr := &http.Transport{
		Proxy: nil,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			dials.Add(1)
			return d.DialContext(ctx, network, addr)
		},
		MaxIdleConns:        4,
		MaxIdleConnsPerHost: 4,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
	if roots != nil {
		tr.TLSClientConfig = &tls.Config{RootCAs: roots}
	}
	return s3.New(s3.Options{
		Region:       region,
		BaseEndpoint: aws.String(endpoint),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(key, secret, token),
		Retryer:      aws.NopRetryer{},
		HTTPClient:   &http.Client{Transport: tr, Timeout: 10 * time.Minute},
		// The SDK's defaults (CRC32 on uploads, checked on downloads when
		// the server returns one) stay on, as an agent would have them;
		// only the log line for objects without a checksum is silenced.
		DisableLogOutputChecksumValidationSkipped: true,
	})
}

// workload is one kind of call, repeated by every client.
type workload struct {
	// ID names the workload in the -workloads flag.
	ID   string
	Name string
	// Unit is what the rate counts: "req/s" or "MiB/s".
	Unit string
	// Target is the least gateway/direct ratio the issue accepts.
	Target float64
	// PeerFloor is issue 15's least gateway/goproxy ratio (the gateway
	// against Go's httputil.ReverseProxy on the same hop), and CPUCeiling
	// its most gateway/goproxy CPU per call (0: none).
	PeerFloor  float64
	CPUCeiling float64
	size       int
	op         func(ctx context.Context, c *s3.Client, client int, body []byte) (int64, error)
}

func getOp(prefix string, size int) func(context.Context, *s3.Client, int, []byte) (int64, error) {
	return func(ctx context.Context, c *s3.Client, client int, _ []byte) (int64, error) {
		out, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(fmt.Sprintf("%s/%d", prefix, client))})
		if err != nil {
			return 0, err
		}
		n, err := io.Copy(io.Discard, out.Body)
		out.Body.Close()
		if err == nil && n != int64(size) {
			err = fmt.Errorf("read %d bytes, want %d", n, size)
		}
		return n, err
	}
}

func putOp(ctx context.Context, c *s3.Client, client int, body []byte) (int64, error) {
	_, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(fmt.Sprintf("put/%d", client)),
		Body: bytes.NewReader(body), ContentLength: aws.Int64(int64(len(body)))})
	if err != nil {
		return 0, err
	}
	return int64(len(body)), nil
}

// workloads are the measured calls, those named in ids (comma-separated)
// or all when ids is empty.
func workloads(ids string) ([]workload, error) {
	all := []workload{
		{ID: "get1k", Name: "GetObject 1 KiB", Unit: "req/s", Target: 0.85, PeerFloor: 0.85, CPUCeiling: 1.4, size: 1 << 10, op: getOp("small", 1<<10)},
		{ID: "get1m", Name: "GetObject 1 MiB", Unit: "MiB/s", Target: 0.90, PeerFloor: 0.90, size: 1 << 20, op: getOp("medium", 1<<20)},
		{ID: "put1m", Name: "PutObject 1 MiB", Unit: "MiB/s", Target: 0.90, PeerFloor: 0.85, size: 1 << 20, op: putOp},
	}
	if ids == "" {
		return all, nil
	}
	var out []workload
	for id := range strings.SplitSeq(ids, ",") {
		i := slices.IndexFunc(all, func(w workload) bool { return w.ID == strings.TrimSpace(id) })
		if i < 0 {
			return nil, fmt.Errorf("unknown workload %q (want get1k, get1m, put1m)", id)
		}
		out = append(out, all[i])
	}
	return out, nil
}

// seed writes the objects the GET workloads read, one per client.
func seed(ctx context.Context, c *s3.Client, clients int) error {
	if _, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
		return fmt.Errorf("create bucket: %w", err)
	}
	for _, o := range []struct {
		prefix string
		size   int
	}{{"small", 1 << 10}, {"medium", 1 << 20}} {
		for i := range clients {
			b := pattern(o.size, byte(i))
			if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(fmt.Sprintf("%s/%d", o.prefix, i)),
				Body: bytes.NewReader(b), ContentLength: aws.Int64(int64(len(b)))}); err != nil {
				return fmt.Errorf("seed %s/%d: %w", o.prefix, i, err)
			}
		}
	}
	return nil
}

func pattern(n int, salt byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*31) ^ salt
	}
	return b
}

// phase is one timed run of a workload on one side.
type phase struct {
	Workload string  `json:"workload"`
	Side     string  `json:"side"`
	Round    int     `json:"round"`
	Ops      int64   `json:"ops"`
	Bytes    int64   `json:"bytes"`
	Seconds  float64 `json:"seconds"`
	Rate     float64 `json:"rate"`
	Unit     string  `json:"unit"`
	// Dials is the connections the clients opened during the phase.
	Dials int64  `json:"client_dials"`
	CPU   cpuUse `json:"cpu"`
	// RecordWait is, for the gateway's phases, what its /metrics
	// (airlock_log_wait_seconds) counted during the phase: how long calls
	// waited for their records' durability under this load.
	RecordWait *benchkit.LogWait `json:"record_wait,omitempty"`
}

// runPhase has every client repeat w's call for d, each in its own
// goroutine, and stops at the first error: a failing side must not look
// fast. Calls in flight at the deadline finish and count.
func runPhase(ctx context.Context, clients []*s3.Client, dials *atomic.Int64, m cpuMeter, w workload, d time.Duration) (phase, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var ops, nbytes atomic.Int64
	var wg sync.WaitGroup
	dials0, cpu0 := dials.Load(), m.mark()
	start := time.Now()
	deadline := start.Add(d)
	for i, c := range clients {
		body := pattern(w.size, byte(i))
		wg.Go(func() {
			for time.Now().Before(deadline) && ctx.Err() == nil {
				n, err := w.op(ctx, c, i, body)
				if err != nil {
					cancel(fmt.Errorf("%s, client %d: %w", w.Name, i, err))
					return
				}
				ops.Add(1)
				nbytes.Add(n)
			}
		})
	}
	wg.Wait()
	el := time.Since(start).Seconds()
	p := phase{Workload: w.Name, Ops: ops.Load(), Bytes: nbytes.Load(), Seconds: el, Unit: w.Unit, Dials: dials.Load() - dials0, CPU: m.since(cpu0)}
	if w.Unit == "req/s" {
		p.Rate = float64(p.Ops) / el
	} else {
		p.Rate = float64(p.Bytes) / (1 << 20) / el
	}
	return p, context.Cause(ctx)
}

// warm opens every client's connection and runs a few calls of each
// workload, unmeasured.
func warm(ctx context.Context, clients []*s3.Client, ws []workload) error {
	for _, w := range ws {
		for i, c := range clients {
			body := pattern(w.size, byte(i))
			for range 3 {
				if _, err := w.op(ctx, c, i, body); err != nil {
					return fmt.Errorf("warm-up %s: %w", w.Name, err)
				}
			}
		}
	}
	return nil
}
