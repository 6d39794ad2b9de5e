package sessions

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/auditlog"
	"github.com/airlock-dev/airlock/internal/gateway"
	"github.com/airlock-dev/airlock/internal/store"
)

// TestDurableRequestAllocs holds a durable asynchronous request to the
// log's own allocations: the recorder's callWait, which a recorded request
// allocated each time (about 430 bytes, the call and the log's operation
// in it), is kept for the next once its Wait returned nil (callWaits). The
// log here is live, its writer's allocations for the request's batch
// counted too, and the log alone (AppendAsyncLiveIn with a Pending of the
// test's, each new) is measured the same way; without the reuse the
// recorder adds one allocation per request to it. And the operation's
// channel is kept with it (auditlog.Pending.Reset): one fewer than the log
// alone allocates with a new Pending each time.
func TestDurableRequestAllocs(t *testing.T) {
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
	ctx := context.Background()
	req := gateway.Call{Kind: "request", Action: "pg:select", Resource: "pgbench", Allowed: true, OutcomeAtResult: true,
		Pairs: []gateway.Param{{Key: "n", Value: "1"}, {Key: "protocol", Value: "simple"}, {Key: "statement", Value: "SELECT 1"}}}
	const runs = 301
	// Each pair of calls, the log's alone and the recorder's, is counted
	// back to back (every goroutine's allocations between two
	// ReadMemStats), and the median of the pairs' differences compared:
	// the indexer's copies into the store (one every 100 ms, hundreds of
	// allocations, in whichever call's span they fall) are outliers it
	// leaves out, and so is a pair across the indexer's return of stored
	// events' buffers (auditlog's entryBufs): whether a call finds one or
	// allocates it follows the indexer's clock, the same for both calls
	// of a pair but not for two separate runs of calls (whose medians
	// once differed by it: the log's 2.00 against the recorder's 2.00).
	ps := make([]auditlog.Pending, runs+1)
	logCall := func(i int) {
		ps[i] = auditlog.Pending{}
		ev := auditlog.Event{Type: "session.call", Time: time.Now().UTC(), GrantID: g.ID, SessionID: sess.ID, Actor: g.Identity, Data: &req}
		if err := e.log.AppendAsyncLiveIn(ctx, g.ID, &ps[i], ev).Wait(ctx); err != nil {
			t.Fatal(err)
		}
	}
	p := new(gateway.Pending) // pggw's is in its statement's queue entry
	recCall := func() {
		*p = gateway.Pending{}
		if err := sess.RequestAsyncIn(ctx, req, p).Wait(ctx); err != nil {
			t.Fatal(err)
		}
	}
	logCall(runs) // warm: the pool's first object, the journal's buffers
	recCall()
	count := func(f func()) float64 {
		var m0, m1 runtime.MemStats
		runtime.ReadMemStats(&m0)
		f()
		runtime.ReadMemStats(&m1)
		return float64(m1.Mallocs - m0.Mallocs)
	}
	logN, recN, diff := make([]float64, runs), make([]float64, runs), make([]float64, runs)
	for i := range runs {
		logN[i] = count(func() { logCall(i) })
		recN[i] = count(recCall)
		diff[i] = recN[i] - logN[i]
	}
	median := func(n []float64) float64 { slices.Sort(n); return n[runs/2] }
	logOnly, recorded, d := median(logN), median(recN), median(diff)
	t.Logf("allocations per durable request: the log's %.2f, through the recorder %.2f", logOnly, recorded)
	if d > -0.5 {
		t.Errorf("the recorder adds %.2f allocations to the log's %.2f per durable asynchronous request, want one fewer (its kept channel)", d, logOnly)
	}
}

// TestDurableRequestsConcurrent runs sessions' requests on goroutines of
// their own, each waited for and its result recorded, as pggw's client and
// upstream loops do, so that callWaits pass between goroutines and
// sessions through the pool: under -race a callWait reused while the log's
// writer (or its waiter) still read it is a reported race; and every
// request must be in the log once, under its own session and with its own
// statement, and counted in its session's row.
func TestDurableRequestsConcurrent(t *testing.T) {
	e := newEnv(t, Options{})
	e.rec.Run()
	ctx := context.Background()
	const sessions, each = 4, 100
	g := grant("g_conc")
	g.TargetKind = "postgres"
	var wg sync.WaitGroup
	for s := range sessions {
		sid := fmt.Sprintf("s_%d", s)
		sess, err := e.rec.Start(ctx, g, sid, "127.0.0.1:50000")
		if err != nil {
			t.Fatal(err)
		}
		waits := make(chan *gateway.Pending, 4)
		wg.Go(func() { // the client loop: queue the request, pass its wait on
			defer close(waits)
			for i := range each {
				req := gateway.Call{Kind: "request", Action: "pg:select", Resource: "pgbench", Allowed: true, OutcomeAtResult: true,
					Pairs: []gateway.Param{{Key: "n", Value: strconv.Itoa(i)}, {Key: "statement", Value: sid + "/" + strconv.Itoa(i)}}}
				waits <- sess.RequestAsyncIn(ctx, req, new(gateway.Pending))
			}
		})
		wg.Go(func() { // the upstream loop: wait, then the result
			i := 0
			for p := range waits {
				if err := p.Wait(ctx); err != nil {
					t.Error(err)
				}
				if err := p.Wait(ctx); err != nil { // again: the same answer, the wait not called twice
					t.Error(err)
				}
				res := gateway.Call{Kind: "result", Action: "pg:select", Resource: "pgbench", Allowed: true, Rows: 1,
					Pairs: []gateway.Param{{Key: "n", Value: strconv.Itoa(i)}}}
				if err := sess.Result(ctx, res); err != nil {
					t.Error(err)
				}
				i++
			}
		})
	}
	wg.Wait()
	if err := e.rec.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if err := e.log.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	for s := range sessions {
		sid := fmt.Sprintf("s_%d", s)
		row, err := e.st.Session(ctx, sid)
		if err != nil {
			t.Fatal(err)
		}
		if row.Calls != each {
			t.Errorf("%s: the row counts %d calls, want %d", sid, row.Calls, each)
		}
		es, err := e.st.LogEntries(ctx, store.LogFilter{SessionID: sid, Type: "session.call"})
		if err != nil {
			t.Fatal(err)
		}
		seen := map[string]bool{}
		for _, en := range es {
			var en2 struct {
				Data struct {
					Kind   string            `json:"kind"`
					Params map[string]string `json:"params"`
				} `json:"data"`
			}
			if err := json.Unmarshal(en.Data, &en2); err != nil {
				t.Fatal(err)
			}
			d := en2.Data
			if d.Kind != "request" {
				continue
			}
			st := d.Params["statement"]
			if seen[st] || st != sid+"/"+d.Params["n"] {
				t.Errorf("%s: a request with statement %q (n %q), seen before: %v", sid, st, d.Params["n"], seen[st])
			}
			seen[st] = true
		}
		if len(seen) != each {
			t.Errorf("%s: %d requests in the log, want %d", sid, len(seen), each)
		}
	}
}
