package grants_test

import (
	"bytes"
	"context"
	"math"
	"slices"
	"testing"

	"github.com/airlock-dev/airlock/internal/auditlog"
	"github.com/airlock-dev/airlock/internal/gateway"
	"github.com/airlock-dev/airlock/internal/gateway/gatewaytest"
	"github.com/airlock-dev/airlock/internal/model"
	"github.com/airlock-dev/airlock/internal/review"
	"github.com/airlock-dev/airlock/internal/store"
)

// TestRefusedStatementThroughRecorderAndRecovery: through the real
// recorder, log and store, a statement the upstream refused for privilege
// (its result marked Refused) leaves the session's used pairs and counts
// as denied; the summary stored before its result (the session still
// open) and the one after both agree with the log; and after a crash, the
// recovery counts the log again the same way, a statement whose result
// never came staying used.
func TestRefusedStatementThroughRecorderAndRecovery(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	g := h.request(bot, autoReq("10m"), model.Active)
	ses := h.startSession(g, "psql")
	record := func(cs ...gateway.Call) {
		t.Helper()
		for _, c := range cs {
			if err := gatewaytest.Record(h.ctx, ses, c); err != nil {
				t.Fatal(err)
			}
		}
	}
	call := func(kind, action, n string) gateway.Call {
		return gateway.Call{Kind: kind, Action: action, Resource: "orders", Allowed: true, Params: map[string]string{"n": n}}
	}
	noDiffs := func(when string) {
		t.Helper()
		h.syncLog()
		c := review.NewChecker(h.St)
		if err := h.St.ScanLog(h.ctx, 0, math.MaxInt64, func(e store.LogEntry) error {
			c.Entry(e.Seq, bytes.Clone(e.Data))
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if diffs, err := c.Finish(h.ctx); err != nil || len(diffs) != 0 {
			t.Errorf("%s: the stored rows differ from the log: %v %q", when, err, diffs)
		}
	}
	refused := call("result", "pg:insert", "2")
	refused.Refused, refused.Error = true, "42501 permission denied for table customers"

	put := func(s model.Session) {
		t.Helper()
		if err := h.Log.Do(h.ctx, func(ctx context.Context, tx store.Tx) ([]auditlog.Event, error) {
			return nil, tx.PutSession(ctx, s)
		}); err != nil {
			t.Fatal(err)
		}
	}
	record(call("request", "pg:select", "1"), call("result", "pg:select", "1"), call("request", "pg:insert", "2"))
	before := h.session(ses.ID)
	if before.Calls != 2 || !slices.Contains(before.Used, "pg:insert orders") {
		t.Fatalf("before its result: %+v", before)
	}
	record(refused)
	after := h.session(ses.ID)
	if after.Calls != 1 || after.Denied != 1 || !slices.Equal(after.Used, []string{"pg:select orders"}) {
		t.Errorf("after the refusal: %d calls, %d denied, used %q", after.Calls, after.Denied, after.Used)
	}
	noDiffs("the summary after the refusal")
	// The row as the flusher may have left it, written before the
	// refusal's result was logged, while the session is open.
	put(before)
	noDiffs("the summary stored before the refusal was logged")
	put(after)

	// A delete whose result the crash lost, then the crash: a stale row.
	record(call("request", "pg:delete", "3"))
	stale := h.session(ses.ID)
	stale.Calls, stale.Denied, stale.Used = 0, 0, nil
	put(stale)
	h.restart()
	rec, err := h.St.Session(h.ctx, ses.ID)
	if err != nil {
		t.Fatal(err)
	}
	if rec.EndedAt.IsZero() || rec.Calls != 2 || rec.Denied != 1 || !slices.Equal(rec.Used, []string{"pg:select orders", "pg:delete orders"}) {
		t.Errorf("recovered: ended %v, %d calls, %d denied, used %q; want 2 calls, 1 denied, select and delete used", rec.EndedAt, rec.Calls, rec.Denied, rec.Used)
	}
	noDiffs("the recovered session")
}
