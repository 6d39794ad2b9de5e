package sessions

import (
	"runtime/metrics"
	"strconv"
	"testing"

	"github.com/airlock-dev/airlock/internal/auditlog"
	"github.com/airlock-dev/airlock/internal/gateway"
)

// goroutinesCreated is the process's count of goroutines started so far.
func goroutinesCreated() uint64 {
	s := []metrics.Sample{{Name: "/sched/goroutines-created:goroutines"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// TestFlushAllResultsStartsNoGoroutines: a flush of many sessions' results
// queues their entries and waits for them on the flusher's own goroutine.
// A goroutine per session, each waiting for its own AppendLazy, started
// as many goroutines a flush (each then parked and woken by the log's
// writer). The log's own work during the flush (its indexer's
// transactions) may start a few; far fewer than the sessions. Every
// session's result must be logged and counted too.
func TestFlushAllResultsStartsNoGoroutines(t *testing.T) {
	const sessions = 16
	e := newEnv(t, Options{})
	var all []*gateway.Session
	for i := range sessions {
		g := grant("g_flush" + strconv.Itoa(i))
		g.TargetKind = "postgres"
		sess, err := e.rec.Start(e.ctx, g, "s_flush"+strconv.Itoa(i), "127.0.0.1:50000")
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, sess)
	}
	for round := range 3 {
		for i, sess := range all {
			requested(t, e, sess, round+1)
			res := gateway.Call{Kind: "result", Action: "pg:select", Resource: "pgbench", Allowed: true, OutcomeAtResult: true,
				Rows: int64(i + 1), Pairs: []gateway.Param{{Key: "n", Value: strconv.Itoa(round + 1)}}}
			if err := sess.Result(e.ctx, res); err != nil {
				t.Fatal(err)
			}
		}
		before := goroutinesCreated()
		if err := e.rec.flushAllResults(e.ctx); err != nil {
			t.Fatal(err)
		}
		n := goroutinesCreated() - before
		if n >= sessions/4 {
			t.Errorf("round %d: a flush of %d sessions' results started %d goroutines, want fewer than %d", round, sessions, n, sessions/4)
		}
		t.Logf("round %d: a flush of %d sessions' results started %d goroutines", round, sessions, n)
	}
	if err := e.rec.Flush(e.ctx); err != nil {
		t.Fatal(err)
	}
	for i := range sessions {
		sid := "s_flush" + strconv.Itoa(i)
		n := 0
		for _, le := range e.entries(sid) {
			if le.Type == "session.results" {
				n++
			}
		}
		if n != 3 {
			t.Errorf("session %s: %d results entries, want 3 (one a flush)", sid, n)
		}
		row, err := e.st.Session(e.ctx, sid)
		if err != nil {
			t.Fatal(err)
		}
		if row.Calls != 3 {
			t.Errorf("session %s: its row counts %d calls, want 3", sid, row.Calls)
		}
	}
}

// TestResultsListedOncePerBatch: a session is put on the flusher's list by
// the first result of a batch only (state.listed), and by the first one
// after a flush took its results, so that no result is left off a flush.
func TestResultsListedOncePerBatch(t *testing.T) {
	e := newEnv(t, Options{})
	g := grant("g_listed")
	g.TargetKind = "postgres"
	sess, err := e.rec.Start(e.ctx, g, "s_listed", "127.0.0.1:50000")
	if err != nil {
		t.Fatal(err)
	}
	st := stateOf(t, sess)
	result := func(n int) {
		t.Helper()
		requested(t, e, sess, n)
		res := gateway.Call{Kind: "result", Action: "pg:select", Resource: "pgbench", Allowed: true, OutcomeAtResult: true,
			Rows: 1, Pairs: []gateway.Param{{Key: "n", Value: strconv.Itoa(n)}}}
		if err := sess.Result(e.ctx, res); err != nil {
			t.Fatal(err)
		}
	}
	// The flag, and whether the session is on the flusher's list.
	listed := func() (flag, on bool) {
		st.mu.Lock()
		flag = st.listed
		st.mu.Unlock()
		e.rec.resultsMu.Lock()
		defer e.rec.resultsMu.Unlock()
		_, on = e.rec.withResults[st]
		return flag, on
	}
	result(1)
	if l, on := listed(); !l || !on {
		t.Fatalf("after a first result: listed %v, on the list %v; want both", l, on)
	}
	// A flush takes the session off the list (flushAllResults), then a
	// result comes before it takes the results: the flush takes that
	// one too, so it need not list the session again.
	e.rec.resultsMu.Lock()
	e.rec.withResults = nil
	e.rec.resultsMu.Unlock()
	result(2)
	if l, on := listed(); !l || on {
		t.Fatalf("a result while a flush holds the session: listed %v, on the list %v; want listed only", l, on)
	}
	var f resultsFlush
	st.fmu.Lock()
	if !e.rec.queueResults(e.ctx, st, &f, new(auditlog.Pending)) {
		t.Fatal("the flush took none of the session's results")
	}
	err = e.rec.loggedResults(&f, f.p.Wait(e.ctx))
	st.fmu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	if len(f.batch) != 2 {
		t.Fatalf("the flush took %d results, want 2", len(f.batch))
	}
	if l, on := listed(); l || on {
		t.Fatalf("after the flush: listed %v, on the list %v; want neither", l, on)
	}
	result(3)
	result(4)
	if l, on := listed(); !l || !on {
		t.Fatalf("after two more results: listed %v, on the list %v; want both", l, on)
	}
	if err := e.rec.flushAllResults(e.ctx); err != nil {
		t.Fatal(err)
	}
	if err := e.rec.Flush(e.ctx); err != nil {
		t.Fatal(err)
	}
	row, err := e.st.Session(e.ctx, "s_listed")
	if err != nil {
		t.Fatal(err)
	}
	if row.Calls != 4 {
		t.Errorf("the session's row counts %d calls, want 4", row.Calls)
	}
}

// requested records statement n's request on sess as pggw does on a
// read-only session (its outcome counted with its result), durably.
func requested(t *testing.T, e *env, sess *gateway.Session, n int) {
	t.Helper()
	req := gateway.Call{Kind: "request", Action: "pg:select", Resource: "pgbench", Allowed: true, OutcomeAtResult: true,
		Pairs: []gateway.Param{{Key: "n", Value: strconv.Itoa(n)}, {Key: "statement", Value: "SELECT 1"}}}
	var p gateway.Pending
	if err := sess.RequestAsyncIn(e.ctx, req, &p).Wait(e.ctx); err != nil {
		t.Fatal(err)
	}
}
