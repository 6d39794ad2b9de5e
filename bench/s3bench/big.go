package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/airlock-dev/airlock/bench/internal/benchkit"
)

// generator is an object's body made on the fly from a 64 KiB block, so
// a 1 GiB upload costs this process no memory. It is seekable because the
// SDK, over plain HTTP, hashes a body before sending it and then rewinds.
type generator struct {
	size, off int64
	block     []byte
}

func newGenerator(size int64) *generator {
	return &generator{size: size, block: pattern(64<<10, 0x5a)}
}

func (g *generator) Read(p []byte) (int, error) {
	if g.off >= g.size {
		return 0, io.EOF
	}
	n := 0
	for n < len(p) && g.off < g.size {
		i := g.off % int64(len(g.block))
		m := copy(p[n:], g.block[i:min(int64(len(g.block)), i+g.size-g.off)])
		n += m
		g.off += int64(m)
	}
	return n, nil
}

func (g *generator) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		offset += g.off
	case io.SeekEnd:
		offset += g.size
	default:
		return 0, errors.New("generator: bad whence")
	}
	if offset < 0 {
		return 0, errors.New("generator: negative position")
	}
	g.off = offset
	return offset, nil
}

// rssSampler polls a process's VmRSS until stopped and keeps the peak.
type rssSampler struct {
	stopc   chan struct{}
	done    chan struct{}
	mu      sync.Mutex
	peakKB  int64
	samples int
}

func sampleRSS(pid int, every time.Duration) *rssSampler {
	s := &rssSampler{stopc: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			if st, err := benchkit.ProcStatus(pid, "VmRSS"); err == nil {
				s.mu.Lock()
				s.peakKB = max(s.peakKB, st["VmRSS"])
				s.samples++
				s.mu.Unlock()
			}
			select {
			case <-s.stopc:
				return
			case <-t.C:
			}
		}
	}()
	return s
}

// stop ends the sampling and returns the peak VmRSS in kB and the number
// of samples taken.
func (s *rssSampler) stop() (int64, int) {
	close(s.stopc)
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.peakKB, s.samples
}

// transfer is one big-object call, timed, with the gateway's RSS meanwhile.
type transfer struct {
	Op        string  `json:"op"`
	Side      string  `json:"side"`
	Bytes     int64   `json:"bytes"`
	Seconds   float64 `json:"seconds"`
	MiBps     float64 `json:"mib_per_s"`
	PeakRSSKB int64   `json:"gateway_peak_rss_kb,omitempty"`
	Samples   int     `json:"rss_samples,omitempty"`
}

// bigPut uploads size bytes from a generator to key.
func bigPut(ctx context.Context, c *s3.Client, key string, size int64) (int64, error) {
	_, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key),
		Body: newGenerator(size), ContentLength: aws.Int64(size)})
	if err != nil {
		return 0, err
	}
	return size, nil
}

// bigGet downloads key, discarding the body as it arrives.
func bigGet(ctx context.Context, c *s3.Client, key string, size int64) (int64, error) {
	out, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		return 0, err
	}
	defer out.Body.Close()
	n, err := io.CopyBuffer(io.Discard, out.Body, make([]byte, 256<<10))
	if err == nil && n != size {
		err = fmt.Errorf("read %d bytes, want %d", n, size)
	}
	return n, err
}

// timed runs one big transfer, sampling pid's RSS every 50 ms when pid > 0.
func timed(ctx context.Context, op, side string, pid int, f func(context.Context) (int64, error)) (transfer, error) {
	var s *rssSampler
	if pid > 0 {
		s = sampleRSS(pid, 50*time.Millisecond)
	}
	start := time.Now()
	n, err := f(ctx)
	el := time.Since(start).Seconds()
	t := transfer{Op: op, Side: side, Bytes: n, Seconds: el, MiBps: float64(n) / (1 << 20) / el}
	if s != nil {
		t.PeakRSSKB, t.Samples = s.stop()
	}
	if err != nil {
		return t, fmt.Errorf("%s %s: %w", side, op, err)
	}
	return t, nil
}
