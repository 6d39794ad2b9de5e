package grants_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/gateway"
)

// TestRejectFloodAggregated: a flood of refused attempts from one source
// costs a few individual entries and one summary per interval, and the
// log still accounts for every attempt.
func TestRejectFloodAggregated(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	t0 := time.Now().UTC()
	h.clock.Freeze(t0)
	before := h.logSize()
	for i := range 1000 {
		err := h.Svc.Authority().Reject(h.ctx, gateway.Rejection{Gateway: "postgres", Target: ordersDB, Client: fmt.Sprintf("127.0.0.1:%d", 30000+i),
			CredentialID: fmt.Sprintf("AKALFLOOD%04d", i), Reason: "password authentication failed (no active grant holds this credential)"})
		if err != nil {
			t.Fatal(err)
		}
	}
	if n := len(h.entriesOfType("gateway.rejected")); n != 3 {
		t.Fatalf("%d individual gateway.rejected entries, want 3", n)
	}
	// The rest is written when the process stops, in one summary.
	h.restart()
	sums := h.entriesOfType("gateway.rejected_summary")
	if len(sums) != 1 {
		t.Fatalf("%d summaries, want 1", len(sums))
	}
	d := entryData(t, sums[0])
	if d["count"] != float64(997) || d["client"] != "127.0.0.1" || d["gateway"] != "postgres" || d["target"] != ordersDB {
		t.Errorf("summary %v", d)
	}
	if grew := h.logSize() - before; grew > 10 {
		t.Errorf("1000 rejections grew the log by %d entries", grew)
	}

	// Within a run, the summary is written once its interval has ended:
	// by the next attempt (or the periodic flush).
	h.clock.Freeze(t0.Add(time.Minute))
	for range 10 {
		_ = h.Svc.Authority().Reject(h.ctx, gateway.Rejection{Gateway: "aws", Client: "10.0.0.9:1 aws-cli/2", Reason: "InvalidAccessKeyId"})
	}
	h.clock.Freeze(t0.Add(time.Minute + 11*time.Second))
	_ = h.Svc.Authority().Reject(h.ctx, gateway.Rejection{Gateway: "aws", Client: "10.0.0.9:2 aws-cli/2", Reason: "InvalidAccessKeyId"})
	sums = h.entriesOfType("gateway.rejected_summary")
	if len(sums) != 2 {
		t.Fatalf("%d summaries after the interval, want 2", len(sums))
	}
	d = entryData(t, sums[1])
	if d["count"] != float64(7) || d["client"] != "10.0.0.9" {
		t.Errorf("second summary %v", d)
	}
	h.finish()
}
