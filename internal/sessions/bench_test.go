package sessions

import (
	"context"
	"fmt"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/auditlog"
	"github.com/airlock-dev/airlock/internal/gateway"
)

// BenchmarkRecorderStatement measures the recorder's per-call path for a
// PostgreSQL statement as pggw records one on a read-only session: its
// request queued (RequestAsync) and waited for until durable, then its
// result (Result), batched for the flusher, on a real journaled log and
// SQLite store (newEnv, as airlock serve runs them), one statement at a
// time; b.N statements. The log's own work (the event's encoding, the
// journal's write and flush, the copy into SQLite) is in the figure too:
// for the recorder's part, count instructions under callgrind and read
// the sessions package's functions apart from the log's
// (callgrind_annotate --inclusive=yes), at two -test.benchtime values.
func BenchmarkRecorderStatement(b *testing.B) {
	e := newEnv(b, Options{})
	e.rec.Run()
	g := grant("g_bench")
	g.TargetKind = "postgres"
	sess, err := e.rec.Start(e.ctx, g, "s_bench", "127.0.0.1:50000")
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		ns := strconv.Itoa(i + 1)
		// The parameters as pggw gives them, pairs, the result's the
		// request's first (pggw's are in its statement's queue entry,
		// here a slice of their own).
		pairs := []gateway.Param{{Key: "n", Value: ns}, {Key: "protocol", Value: "simple"}, {Key: "statement", Value: "SELECT abalance FROM pgbench_accounts WHERE aid = 81234;"}}
		req := gateway.Call{Kind: "request", Action: "pg:select", Resource: "pgbench", Allowed: true, OutcomeAtResult: true, Pairs: pairs}
		var p gateway.Pending // pggw's is in its statement's queue entry
		if err := sess.RequestAsyncIn(ctx, req, &p).Wait(ctx); err != nil {
			b.Fatal(err)
		}
		res := gateway.Call{Kind: "result", Action: "pg:select", Resource: "pgbench", Allowed: true, Rows: 1, Duration: 150 * time.Microsecond,
			Pairs: pairs[:1:1]}
		if err := sess.Result(ctx, res); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	if err := e.rec.Flush(ctx); err != nil {
		b.Fatal(err)
	}
	// Every statement counted in the session's row, from its logged
	// request and result.
	row, err := e.st.Session(ctx, "s_bench")
	if err != nil {
		b.Fatal(err)
	}
	if row.Calls != int64(b.N) {
		b.Fatalf("the session's row counts %d calls, want %d", row.Calls, b.N)
	}
}

// TestRequestAsyncAllocs holds what the recorder adds to the log's own
// allocations for an asynchronous request to none: its callWait (the call
// in it) holds the log's queued operation, which the log would allocate
// otherwise. A closure returned as the wait was two more, itself and the
// call moved to the heap apart, and callWait beside the log's operation
// one. The log is closed after the session starts, so
// that its appends fail at once and nothing of its runs in the
// background: the counts are then exact. The failed wait's error
// (fmt.Errorf) is counted apart and taken off.
func TestRequestAsyncAllocs(t *testing.T) {
	if raceOn {
		t.Skip("allocation counts hold only without the race detector")
	}
	e := newEnv(t, Options{})
	g := grant("g_allocs")
	g.TargetKind = "postgres"
	sess, err := e.rec.Start(e.ctx, g, "s_allocs", "127.0.0.1:50000")
	if err != nil {
		t.Fatal(err)
	}
	e.log.Close()
	// The log reuses stored events' buffers (a sync.Pool the indexer
	// fills): empty it, so that both counts below make every buffer anew
	// (a closed log stores nothing more) rather than the first taking
	// what the session's start left.
	runtime.GC()
	runtime.GC()
	ctx := context.Background()
	req := gateway.Call{Kind: "request", Action: "pg:select", Resource: "pgbench", Allowed: true,
		Params: map[string]string{"statement": "SELECT 1", "protocol": "simple", "n": "1"}}
	const runs = 1000
	var logErr error
	logOnly := testing.AllocsPerRun(runs, func() {
		ev := auditlog.Event{Type: "session.call", Time: time.Now().UTC(), GrantID: g.ID, SessionID: sess.ID, Actor: g.Identity, Data: &req}
		logErr = e.log.AppendAsyncLive(ctx, g.ID, ev).Wait(ctx)
	})
	if logErr == nil {
		t.Fatal("an append to a closed log succeeded")
	}
	errOnly := testing.AllocsPerRun(runs, func() { _ = fmt.Errorf("recording call: %w", logErr) })
	p := new(gateway.Pending) // pggw's is in its statement's queue entry
	recorded := testing.AllocsPerRun(runs, func() {
		*p = gateway.Pending{}
		if sess.RequestAsyncIn(ctx, req, p).Wait(ctx) == nil {
			t.Fatal("a request recorded in a closed log")
		}
	})
	if d := recorded - logOnly - errOnly; d != 0 {
		t.Errorf("the recorder adds %v allocations to the log's %v (and the error's %v) per asynchronous request, want 0", d, logOnly, errOnly)
	}
}

// TestResultsBatchAllocs holds a session's batch of results, once one
// batch has been logged, to no allocation for the batch itself: the next
// batch takes the logged one's array (takeBatch). Grown from nothing by
// append, a batch of resultsBatch-1 results allocated its array seven
// times (1, 2, 4 … 64 calls of 176 bytes), about 0.4 KiB a statement under
// pgbench. What is left per batch is the recorder's set of sessions with
// results (withResults), made anew after each flush; it is measured apart
// and taken off. The results flush runs by hand (the flusher is not
// started) and outside the count, which runs at GOMAXPROCS 1 around
// Result calls that do not block, so no other goroutine allocates in it.
func TestResultsBatchAllocs(t *testing.T) {
	if raceOn {
		t.Skip("allocation counts hold only without the race detector")
	}
	e := newEnv(t, Options{})
	g := grant("g_results")
	g.TargetKind = "postgres"
	sess, err := e.rec.Start(e.ctx, g, "s_results", "127.0.0.1:50000")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	pairs := []gateway.Param{{Key: "n", Value: "1"}}
	res := gateway.Call{Kind: "result", Action: "pg:select", Resource: "pgbench", Allowed: true, Rows: 1, Pairs: pairs}
	add := func() {
		for range resultsBatch - 1 { // below a full batch: no kick
			if err := sess.Result(ctx, res); err != nil {
				t.Fatal(err)
			}
		}
	}
	flush := func() {
		if err := e.rec.flushAllResults(ctx); err != nil {
			t.Fatal(err)
		}
	}
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	add()
	flush()
	const cycles = 20
	var mallocs uint64
	for range cycles {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		add()
		runtime.ReadMemStats(&after)
		mallocs += after.Mallocs - before.Mallocs
		flush()
	}
	set := testing.AllocsPerRun(cycles, func() {
		m := map[*state]struct{}{}
		m[nil] = struct{}{}
		spareSink = m
	})
	if got := float64(mallocs)/cycles - set; got != 0 {
		t.Errorf("a batch of %d results allocates %v objects beyond the set of sessions with results (%v), want 0", resultsBatch-1, got, set)
	}
}

// spareSink keeps TestResultsBatchAllocs's map on the heap, as the
// recorder's is.
var spareSink map[*state]struct{}
