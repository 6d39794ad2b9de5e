package sessions

import (
	"sync/atomic"
	"testing"

	"github.com/airlock-dev/airlock/internal/gateway"
)

// callCounter is an Observer that counts the calls it is told of.
type callCounter struct {
	noObserver
	allowed, denied, refused atomic.Int64
}

func (o *callCounter) CallRecorded(_ string, allowed bool) {
	if allowed {
		o.allowed.Add(1)
	} else {
		o.denied.Add(1)
	}
}

func (o *callCounter) CallRefused(string) { o.refused.Add(1) }

// TestDroppedResultsCounted: a statement whose request is in the log is
// counted by the metrics with its result (gateway.Call.OutcomeAtResult).
// When the log refuses results for so long that a session holds more than
// maxHeldResults, the oldest are dropped (the next results entry counts
// them): their statements are counted as allowed then, as the review
// counts a request the log has no result for, rather than never.
func TestDroppedResultsCounted(t *testing.T) {
	obs := &callCounter{}
	e := newEnv(t, Options{Observer: obs})
	ses, err := e.rec.Start(e.ctx, grant("g_d"), "s_d", "127.0.0.1:5009")
	if err != nil {
		t.Fatal(err)
	}
	const n = maxHeldResults + 3
	call := gateway.Call{Kind: "request", Action: "pg:select", Allowed: true, OutcomeAtResult: true}
	ws := make([]gateway.Waiter, n)
	for i := range ws {
		ws[i] = ses.RequestAsync(e.ctx, call)
	}
	for _, w := range ws {
		if err := w.Wait(e.ctx); err != nil {
			t.Fatal(err)
		}
	}
	if got := obs.allowed.Load(); got != 0 {
		t.Fatalf("%d statements counted at their requests, want 0 (counted with their results)", got)
	}
	if err := e.log.Close(); err != nil {
		t.Fatal(err)
	}
	res := gateway.Call{Kind: "result", Action: "pg:select", Allowed: true, OutcomeAtResult: true}
	for range n {
		_ = ses.Result(e.ctx, res) // the log refuses them past a batch
	}
	if got := obs.allowed.Load(); got != n-maxHeldResults {
		t.Errorf("%d statements counted, want the %d whose results were dropped", got, n-maxHeldResults)
	}
	if got := obs.refused.Load() + obs.denied.Load(); got != 0 {
		t.Errorf("%d counted as refused or denied", got)
	}
}
