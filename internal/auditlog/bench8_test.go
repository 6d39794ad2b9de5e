package auditlog

import (
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkAppend8 is BenchmarkAppend with 8 callers, the concurrency of
// the gateway benchmarks (8 clients each waiting for its record).
func BenchmarkAppend8(b *testing.B) {
	st := openSQLite(b, filepath.Join(b.TempDir(), "airlock.db"))
	s, _ := testKey(b)
	var batches atomic.Int64
	l := openLog(b, st, s, Options{OnCommit: func(int64) { batches.Add(1) }})
	b.ResetTimer()
	start, cpu0 := time.Now(), cpuTime()
	appendConcurrently(b, l, 8, b.N)
	el, cpu := time.Since(start), cpuTime()-cpu0
	b.StopTimer()
	b.ReportMetric(float64(b.N)/el.Seconds(), "events/s")
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/event")
	if n := batches.Load(); n > 0 {
		b.ReportMetric(float64(b.N)/float64(n), "events/batch")
		b.ReportMetric(float64(el.Microseconds())/float64(n), "µs/batch")
	}
}
