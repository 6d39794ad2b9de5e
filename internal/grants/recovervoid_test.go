package grants_test

import (
	"context"
	"testing"

	"github.com/airlock-dev/airlock/internal/auditlog"
	"github.com/airlock-dev/airlock/internal/gateway"
	"github.com/airlock-dev/airlock/internal/gateway/gatewaytest"
	"github.com/airlock-dev/airlock/internal/model"
	"github.com/airlock-dev/airlock/internal/store"
)

// TestRecoveryLeavesOutRefusedCalls: a session recovered at start is
// counted again from its log entries, but not from those a log.refused
// entry names: their batch's commit outcome was unknown, their callers
// were told they failed, and the recorder never counted them. The
// recovered summary says what the stored row says, and the session ends
// at its last entry that counts.
func TestRecoveryLeavesOutRefusedCalls(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	g := h.request(bot, autoReq("10m"), model.Active)
	ses := h.startSession(g, "client")
	if err := gatewaytest.Record(h.ctx, ses, gateway.Call{Kind: "request", Action: "s3:GetObject", Resource: appObj, Allowed: true, BytesOut: 42}); err != nil {
		t.Fatal(err)
	}
	stored := h.session(ses.ID)
	es := h.entries(g.ID)
	var call, start store.LogEntry
	for _, e := range es {
		switch e.Type {
		case "session.call":
			call = e
		case "session.started":
			start = e
		}
	}
	if call.Type == "" {
		t.Fatal("no session.call entry")
	}
	// As the next batch appends it once it learns that the call's batch,
	// whose callers were told it failed, committed; and the row as the
	// recorder leaves it: the call not counted.
	if err := h.Log.Append(h.ctx, auditlog.Event{Type: auditlog.RefusedType, Actor: "airlock", Data: map[string]any{"entries": [][2]int64{{call.Seq, call.Seq + 1}}, "reason": "test"}}); err != nil {
		t.Fatal(err)
	}
	row := stored
	row.Calls, row.BytesOut, row.Used = 0, 0, nil
	if err := h.Log.Do(h.ctx, func(ctx context.Context, tx store.Tx) ([]auditlog.Event, error) {
		return nil, tx.PutSession(ctx, row)
	}); err != nil {
		t.Fatal(err)
	}
	h.restart()
	rec, err := h.St.Session(h.ctx, ses.ID)
	if err != nil {
		t.Fatal(err)
	}
	if rec.Calls != 0 || rec.BytesOut != 0 || len(rec.Used) != 0 {
		t.Errorf("recovered summary %+v counts the refused call", rec)
	}
	if !rec.EndedAt.Equal(start.Time) {
		t.Errorf("recovered session ended at %v, want its last entry that counts (its start) %v", rec.EndedAt, start.Time)
	}
}
