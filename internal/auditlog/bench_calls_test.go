package auditlog

import (
	"context"
	"crypto/sha256"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// callWork is the CPU a gateway call spends outside the log in
// BenchmarkAppendCalls (parsing, authorising, relaying, and on this machine
// the client and upstream sharing the cores): about 150 µs, as a fixed
// amount of hashing so that it costs the same CPU whatever the load.
func callWork(buf []byte) {
	for range callWorkRounds {
		s := sha256.Sum256(buf)
		buf[0] ^= s[0]
	}
}

// callWorkRounds hashes of 4 KiB take about 150 µs on the development
// machine (about 1.7 GB/s for SHA-256).
const callWorkRounds = 60

// BenchmarkAppendCalls measures the log as the gateways use it: each of p
// callers loops over calls that append one record and do callWork; a
// "write" call appends (Append) and then works, as a write waits for its
// record before forwarding; a "read" call queues its record (AppendAsync),
// works while it is written, then waits for it (Wait), as a read is held
// until its record is durable. It reports the process's CPU per call
// (cpu-µs/call, callWork included: compare runs, not the absolute), the
// journal's syncs per call, and calls per batch.
func BenchmarkAppendCalls(b *testing.B) {
	for _, p := range []int{1, 8} {
		for _, mode := range []string{"write", "read"} {
			b.Run(mode+"/callers="+strconv.Itoa(p), func(b *testing.B) { benchCalls(b, p, mode == "read") })
		}
	}
}

func benchCalls(b *testing.B, p int, async bool) {
	dir := b.TempDir()
	st := openSQLite(b, filepath.Join(dir, "airlock.db"))
	s, _ := testKey(b)
	var batches atomic.Int64
	l := openLog(b, st, s, Options{
		OnCommit:   func(int64) { batches.Add(1) },
		JournalDir: filepath.Join(dir, "journal"), JournalKey: testJournalKey,
	})
	b.ResetTimer()
	start, cpu0 := time.Now(), cpuTime()
	var next atomic.Int64
	var wg sync.WaitGroup
	for g := range p {
		wg.Go(func() {
			ctx := context.Background()
			buf := make([]byte, 4096)
			for {
				i := next.Add(1) - 1
				if i >= int64(b.N) {
					return
				}
				ev := benchEvent(g, int(i))
				var err error
				if async {
					pe := l.AppendAsync(ctx, ev)
					callWork(buf)
					err = pe.Wait(ctx)
				} else {
					err = l.Append(ctx, ev)
					callWork(buf)
				}
				if err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err := l.Sync(b.Context()); err != nil { // count the copy into the store too
		b.Fatal(err)
	}
	el, cpu := time.Since(start), cpuTime()-cpu0
	b.StopTimer()
	b.ReportMetric(float64(b.N)/el.Seconds(), "calls/s")
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/call")
	if n := batches.Load(); n > 0 {
		b.ReportMetric(float64(b.N)/float64(n), "calls/batch")
	}
}
