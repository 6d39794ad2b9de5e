package auditlog

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/airlock-dev/airlock/internal/store"
)

// BenchmarkSharedAppend measures appends to one log shared through
// PostgreSQL (AIRLOCK_TEST_PG_DSN), from 64 writers spread over 1, 2 and 3
// Logs, each with a connection pool of its own as separate replicas have,
// every event durable (committed, WAL flushed) before its Append returns.
// It reports events/s in total, the benchmark process's CPU per event
// (cpu-µs/event: the replicas' side) and that of the PostgreSQL backends
// serving the run's database (pg-cpu-µs/event; Linux only, 0 elsewhere),
// and the mean batch size. One run:
//
//	go test -run=NONE -bench=BenchmarkSharedAppend -benchtime=20000x ./internal/auditlog/
//
// The "floor" sub-benchmark is the peer: one connection committing
// batches of 21 rows (the batch size three replicas reach) with the same
// insert statement, back to back, with no lock, no Log and no waiting
// callers. Its events/s is what this database sustains serially at that
// batch size in the same run; the shared log cannot beat it by much.
func BenchmarkSharedAppend(b *testing.B) {
	b.Run("floor", benchCommitFloor)
	for _, replicas := range []int{1, 2, 3} {
		b.Run(fmt.Sprintf("replicas=%d", replicas), func(b *testing.B) {
			dsn := pgDatabase(b)
			s, v := testKey(b)
			var batches atomic.Int64
			logs := make([]*Log, replicas)
			for i := range logs {
				// Each with its witness file, as every replica of airlock
				// serve keeps one (and checks what it takes, see follower).
				logs[i] = openLog(b, openPG(b, dsn), s, Options{Shared: true, Verifier: v, OnCommit: func(int64) { batches.Add(1) },
					WitnessPath: filepath.Join(b.TempDir(), fmt.Sprintf("checkpoint-%d", i))})
				if err := logs[i].Append(context.Background(), benchEvent(0, 0)); err != nil {
					b.Fatal(err)
				}
			}
			db := dbName(b, dsn)
			batches.Store(0)
			b.ResetTimer()
			start, cpu0, pg0 := time.Now(), cpuTime(), backendCPU(db)
			appendSpread(b, logs, 64, b.N)
			el, cpu, pg := time.Since(start), cpuTime()-cpu0, backendCPU(db)-pg0
			b.StopTimer()
			b.ReportMetric(float64(b.N)/el.Seconds(), "events/s")
			b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/event")
			b.ReportMetric(float64(pg.Microseconds())/float64(b.N), "pg-cpu-µs/event")
			if n := batches.Load(); n > 0 {
				b.ReportMetric(float64(b.N)/float64(n), "events/batch")
			}
		})
	}
}

// appendSpread appends n events from p writers, writer g on logs[g%len].
func appendSpread(tb testing.TB, logs []*Log, p, n int) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for g := range p {
		l := logs[g%len(logs)]
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= int64(n) {
					return
				}
				if err := l.Append(context.Background(), benchEvent(g, int(i))); err != nil {
					tb.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
}

func dbName(tb testing.TB, dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		tb.Fatal(err)
	}
	return strings.TrimPrefix(u.Path, "/")
}

// backendCPU sums the user and system CPU time of the PostgreSQL backends
// connected to database db (processes titled "postgres: USER DB …"), read
// from /proc; the benchmark's pools keep the same backends throughout.
func backendCPU(db string) time.Duration {
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	var ticks int64
	for _, d := range dirs {
		cmd, err := os.ReadFile(filepath.Join(d, "cmdline"))
		if err != nil || !strings.HasPrefix(string(cmd), "postgres: ") || !strings.Contains(string(cmd), " "+db+" ") {
			continue
		}
		stat, err := os.ReadFile(filepath.Join(d, "stat"))
		if err != nil {
			continue
		}
		// Fields after the command (which ends with ')'): utime and
		// stime are the 12th and 13th.
		f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
		if len(f) < 13 {
			continue
		}
		u, _ := strconv.ParseInt(f[11], 10, 64)
		s, _ := strconv.ParseInt(f[12], 10, 64)
		ticks += u + s
	}
	return time.Duration(ticks) * (time.Second / 100) // USER_HZ is 100 on Linux
}

func benchCommitFloor(b *testing.B) {
	const batch = 21
	dsn := pgDatabase(b)
	st := openPG(b, dsn)
	ctx := context.Background()
	enc, err := encodeEvents([]Event{benchEvent(0, 0)})
	if err != nil {
		b.Fatal(err)
	}
	seq := int64(0)
	var tree frontier
	commit := func() {
		tx, err := st.Begin(ctx)
		if err != nil {
			b.Fatal(err)
		}
		entries := make([]store.LogEntry, batch)
		for i := range entries {
			entries[i] = enc[0].entry(seq)
			tree.add(tlog.Hash(entries[i].LeafHash))
			seq++
		}
		cp := store.Checkpoint{Size: seq, Root: make([]byte, 32), Note: []byte("floor"), Frontier: tree.marshal(), CreatedAt: time.Now()}
		if err := tx.(store.LogCheckpointAppender).AppendLogCheckpoint(ctx, entries, cp); err != nil {
			b.Fatal(err)
		}
		if err := tx.Commit(); err != nil {
			b.Fatal(err)
		}
	}
	db := dbName(b, dsn)
	b.ResetTimer()
	start, cpu0, pg0 := time.Now(), cpuTime(), backendCPU(db)
	n := (b.N + batch - 1) / batch
	for range n {
		commit()
	}
	el, cpu, pg := time.Since(start), cpuTime()-cpu0, backendCPU(db)-pg0
	b.StopTimer()
	events := float64(n * batch)
	b.ReportMetric(events/el.Seconds(), "events/s")
	b.ReportMetric(float64(cpu.Microseconds())/events, "cpu-µs/event")
	b.ReportMetric(float64(pg.Microseconds())/events, "pg-cpu-µs/event")
	b.ReportMetric(batch, "events/batch")
}
