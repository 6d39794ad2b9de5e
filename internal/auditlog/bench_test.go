package auditlog

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// benchEvent is a typical session event.
func benchEvent(g, i int) Event {
	return Event{
		Type:      "session.call",
		GrantID:   "g_01JTRIAGE0000000000000000",
		SessionID: "s_01JSESSION000000000000000",
		Actor:     "log-triage-bot",
		Data: map[string]any{
			"service":  "s3",
			"action":   "s3:GetObject",
			"resource": "arn:aws:s3:::logs/app/2025/03/04/app.log",
			"status":   200,
			"bytes":    4096 + i,
			"worker":   g,
		},
	}
}

// appendConcurrently appends n events from p goroutines, one event per
// Append call, and returns when all are acknowledged.
func appendConcurrently(tb testing.TB, l *Log, p, n int) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for g := range p {
		wg.Go(func() {
			ctx := context.Background()
			for {
				i := next.Add(1) - 1
				if i >= int64(n) {
					return
				}
				if err := l.Append(ctx, benchEvent(g, int(i))); err != nil {
					tb.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
}

// BenchmarkAppend measures sustained appends to a SQLite-backed log from 64
// concurrent callers, each event durable (fsynced commit) before its Append
// returns.
func BenchmarkAppend(b *testing.B) { benchAppend(b, 64) }

// benchAppend appends b.N events from p callers, with every batch a store
// transaction ("store") and through the journal ("journal", as airlock
// serve runs it), and reports events/s, CPU per event and batch sizes.
func benchAppend(b *testing.B, p int) {
	for _, journal := range []bool{false, true} {
		name := "store"
		if journal {
			name = "journal"
		}
		b.Run(name, func(b *testing.B) {
			dir := b.TempDir()
			st := openSQLite(b, filepath.Join(dir, "airlock.db"))
			s, _ := testKey(b)
			var batches atomic.Int64
			opts := Options{OnCommit: func(int64) { batches.Add(1) }}
			if journal {
				opts.JournalDir, opts.JournalKey = filepath.Join(dir, "journal"), testJournalKey
			}
			l := openLog(b, st, s, opts)
			b.ResetTimer()
			start, cpu0 := time.Now(), cpuTime()
			appendConcurrently(b, l, p, b.N)
			if err := l.Sync(b.Context()); err != nil { // count the copy into the store too
				b.Fatal(err)
			}
			el, cpu := time.Since(start), cpuTime()-cpu0
			b.StopTimer()
			b.ReportMetric(float64(b.N)/el.Seconds(), "events/s")
			b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/event")
			if n := batches.Load(); n > 0 {
				b.ReportMetric(float64(b.N)/float64(n), "events/batch")
				b.ReportMetric(float64(el.Microseconds())/float64(n), "µs/batch")
			}
		})
	}
}

var verifyFixture struct {
	once sync.Once
	path string
	dir  string
	err  error
}

const verifyEntries = 200_000

// BenchmarkVerify measures verification of a 200,000-entry SQLite log
// written by 64 concurrent appenders (so with realistic checkpoint density).
func BenchmarkVerify(b *testing.B) {
	s, v := sharedKey(b)
	verifyFixture.once.Do(func() {
		dir, err := os.MkdirTemp("", "auditlog-bench")
		if err != nil {
			verifyFixture.err = err
			return
		}
		verifyFixture.dir = dir
		verifyFixture.path = filepath.Join(dir, "airlock.db")
		st := openSQLite(b, verifyFixture.path)
		l, err := Open(context.Background(), st, s, Options{Origin: "airlock/bench"})
		if err != nil {
			verifyFixture.err = err
			return
		}
		appendConcurrently(b, l, 64, verifyEntries)
		verifyFixture.err = l.Close()
	})
	if verifyFixture.err != nil {
		b.Fatal(verifyFixture.err)
	}
	st := openSQLite(b, verifyFixture.path)
	ctx := context.Background()
	b.ResetTimer()
	var entries, cps int64
	start, cpu0 := time.Now(), cpuTime()
	for range b.N {
		rep, err := Verify(ctx, st, v, nil)
		if err != nil {
			b.Fatal(err)
		}
		if !rep.OK || rep.Entries != verifyEntries {
			b.Fatalf("report %+v", rep)
		}
		entries += rep.Entries
		cps = rep.Checkpoints
	}
	el, cpu := time.Since(start), cpuTime()-cpu0
	b.StopTimer()
	b.ReportMetric(float64(entries)/el.Seconds(), "entries/s")
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(entries), "cpu-ns/entry")
	b.ReportMetric(float64(cps), "checkpoints")
}

// cpuTime is the process's user and system CPU time so far, to tell a slow
// run from a run on a busy machine.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func TestMain(m *testing.M) {
	code := m.Run()
	if verifyFixture.dir != "" {
		os.RemoveAll(verifyFixture.dir)
	}
	if stateFixture.dir != "" {
		os.RemoveAll(stateFixture.dir)
	}
	os.Exit(code)
}

// BenchmarkVerifyOneEntryPerCheckpoint measures the worst case for Verify: a
// log written one event at a time, so with one signed checkpoint per entry
// and a signature to check for each. It uses the in-memory fake store, so it
// measures Verify's own cost, not the store's.
func BenchmarkVerifyOneEntryPerCheckpoint(b *testing.B) {
	const n = 20_000
	s, v := sharedKey(b)
	st := newFakeStore()
	l := openLog(b, st, s, Options{})
	for i := range n {
		if err := l.Append(context.Background(), benchEvent(0, i)); err != nil {
			b.Fatal(err)
		}
	}
	l.Close()
	b.ResetTimer()
	start, cpu0 := time.Now(), cpuTime()
	for range b.N {
		rep, err := Verify(context.Background(), st, v, nil)
		if err != nil {
			b.Fatal(err)
		}
		if !rep.OK || rep.Checkpoints != n {
			b.Fatalf("report %+v", rep)
		}
	}
	el, cpu := time.Since(start), cpuTime()-cpu0
	b.StopTimer()
	b.ReportMetric(float64(n*b.N)/el.Seconds(), "entries/s")
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(n*b.N), "cpu-ns/entry")
}

// BenchmarkAppendGroupVsSingle appends the same events from 64 writers
// twice in one run, once with group commit and once with one commit per
// event (MaxBatch 1), and reports both rates and their ratio: the baseline
// shows what group commit buys on this disk.
func BenchmarkAppendGroupVsSingle(b *testing.B) {
	const events = 3000
	rate := func(maxBatch int) float64 {
		st := openSQLite(b, filepath.Join(b.TempDir(), "airlock.db"))
		s, _ := testKey(b)
		l := openLog(b, st, s, Options{MaxBatch: maxBatch})
		start := time.Now()
		appendConcurrently(b, l, 64, events)
		return events / time.Since(start).Seconds()
	}
	var group, single float64
	for range b.N {
		group += rate(0)
		single += rate(1)
	}
	n := float64(b.N)
	b.ReportMetric(group/n, "group-events/s")
	b.ReportMetric(single/n, "single-events/s")
	b.ReportMetric(group/single, "speedup-x")
}
