package grants_test

import (
	"crypto/sha256"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/gateway"
	"github.com/airlock-dev/airlock/internal/model"
)

// BenchmarkSessionCalls records calls as a read-only gateway does, through
// the real service and journaled log: 8 sessions (a client each), each
// call's request queued (RequestAsync), about 150 µs of work while it is
// written (SHA-256 of 4 KiB, 60 times), Wait, then its result, which the
// service batches per session. It reports the log's journal batches per
// call (each a write and an fdatasync) and the process's CPU per call, work
// included: compare runs, not the absolute.
func BenchmarkSessionCalls(b *testing.B) {
	const sessions = 8
	var batches atomic.Int64
	h := newHarness(b, harnessOptions{OnCommit: func(int64) { batches.Add(1) }})
	g := h.request(bot, autoReq("15m"), model.Active)
	ses := make([]*gateway.Session, sessions)
	for i := range ses {
		ses[i] = h.startSession(g, "127.0.0.1:"+strconv.Itoa(50000+i)+" bench")
	}
	b.ResetTimer()
	b0, cpu0 := batches.Load(), benchCPU()
	var next atomic.Int64
	var wg sync.WaitGroup
	for _, s := range ses {
		wg.Go(func() {
			buf := make([]byte, 4096)
			for {
				i := next.Add(1) - 1
				if i >= int64(b.N) {
					return
				}
				c := gateway.Call{Action: "s3:GetObject", Resource: appObj, Allowed: true,
					Params: map[string]string{"request_id": strconv.FormatInt(i, 10)}}
				p := s.RequestAsync(h.ctx, c)
				for range 60 {
					sum := sha256.Sum256(buf)
					buf[0] ^= sum[0]
				}
				if err := p.Wait(h.ctx); err != nil {
					b.Error(err)
					return
				}
				c.Status, c.BytesOut = "200", 1024
				if err := s.Result(h.ctx, c); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	n, cpu := batches.Load()-b0, benchCPU()-cpu0
	b.StopTimer()
	b.ReportMetric(float64(n)/float64(b.N), "batches/call")
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/call")
	for _, s := range ses {
		if err := s.End(h.ctx); err != nil {
			b.Fatal(err)
		}
	}
}

func benchCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
