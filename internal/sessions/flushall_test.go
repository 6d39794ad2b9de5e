package sessions

import (
	"runtime/metrics"
	"strconv"
	"testing"

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
		if n := goroutinesCreated() - before; n >= sessions/4 {
			t.Errorf("round %d: a flush of %d sessions' results started %d goroutines, want fewer than %d", round, sessions, n, sessions/4)
		}
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
