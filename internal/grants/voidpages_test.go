package grants_test

import (
	"context"
	"slices"
	"testing"

	"github.com/airlock-dev/airlock/internal/auditlog"
	"github.com/airlock-dev/airlock/internal/gateway"
	"github.com/airlock-dev/airlock/internal/gateway/gatewaytest"
	"github.com/airlock-dev/airlock/internal/grants"
	"github.com/airlock-dev/airlock/internal/model"
	"github.com/airlock-dev/airlock/internal/store"
)

// TestPagesLeaveOutRefusedCalls: a grant's record, a page of its sessions,
// a session's page and a page of the grant's history leave out the
// entries a log.refused entry names (their batch's commit outcome was
// unknown, their callers were told they failed, and the rows do not count
// them), mark them on the pages that show them, and so do not report the
// rows as differing from the log; also when the log.refused entry comes
// after a page of the session kept its derivation, which then is derived
// again without saying the log changed.
func TestPagesLeaveOutRefusedCalls(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	g := h.request(bot, autoReq("10m"), model.Active)
	ses := h.startSession(g, "client")
	for range 3 {
		if err := gatewaytest.Record(h.ctx, ses, gateway.Call{Kind: "request", Action: "s3:GetObject", Resource: appObj, Allowed: true, BytesOut: 10}); err != nil {
			t.Fatal(err)
		}
	}
	if err := ses.End(h.ctx); err != nil {
		t.Fatal(err)
	}
	alice := h.id(alice)
	page := func(q grants.EventsQuery) grants.SessionPage {
		t.Helper()
		sp, err := h.Svc.Session(h.ctx, alice, ses.ID, q)
		if err != nil {
			t.Fatal(err)
		}
		return sp
	}
	// A page of one event: its derivation is kept for the next pages.
	if sp := page(grants.EventsQuery{Limit: 1}); len(sp.Session.LogMismatch) != 0 || sp.Next == 0 {
		t.Fatalf("before: session %+v, next %d", sp.Session, sp.Next)
	}
	var calls []int64
	for _, e := range h.entries(g.ID) {
		if e.Type == "session.call" {
			calls = append(calls, e.Seq)
		}
	}
	if len(calls) != 3 {
		t.Fatalf("%d session.call entries, want 3", len(calls))
	}
	voided := calls[1]
	// As the next batch appends it once it learns that the call's batch
	// committed; and the row as the recorder leaves it: the call not
	// counted.
	if err := h.Log.Append(h.ctx, auditlog.Event{Type: auditlog.RefusedType, Actor: "airlock", Data: map[string]any{"entries": [][2]int64{{voided, voided + 1}}, "reason": "test"}}); err != nil {
		t.Fatal(err)
	}
	row, err := h.St.Session(h.ctx, ses.ID)
	if err != nil {
		t.Fatal(err)
	}
	row.Calls, row.BytesOut = 2, 20
	if err := h.Log.Do(h.ctx, func(ctx context.Context, tx store.Tx) ([]auditlog.Event, error) {
		return nil, tx.PutSession(ctx, row)
	}); err != nil {
		t.Fatal(err)
	}

	// The kept derivation counted the call: derived again, without a
	// word about the log having changed.
	if sp := page(grants.EventsQuery{Limit: 1}); len(sp.Session.LogMismatch) != 0 {
		t.Errorf("session's page after the log.refused entry (kept derivation): %q", sp.Session.LogMismatch)
	}
	sp := page(grants.EventsQuery{})
	if len(sp.Session.LogMismatch) != 0 {
		t.Errorf("session's page: %q", sp.Session.LogMismatch)
	}
	if !slices.Equal(sp.Void, []int64{voided}) {
		t.Errorf("session's page marks %v as void, want [%d]", sp.Void, voided)
	}
	got, err := h.Svc.Get(h.ctx, alice, g.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.LogMismatch) != 0 || got.Usage.Calls != 2 || got.Usage.BytesOut != 20 {
		t.Errorf("grant: usage %+v, mismatch %q", got.Usage, got.LogMismatch)
	}
	sessions, err := h.Svc.GrantSessions(h.ctx, alice, g.ID, grants.SessionsQuery{})
	if err != nil {
		t.Fatal(err)
	}
	if len(sessions.Sessions) != 1 || len(sessions.Sessions[0].LogMismatch) != 0 {
		t.Errorf("grant's sessions: %+v", sessions.Sessions)
	}
	hp, err := h.Svc.History(h.ctx, alice, g.ID, grants.EventsQuery{})
	if err != nil {
		t.Fatal(err)
	}
	if len(hp.LogMismatch) != 0 || !slices.Equal(hp.Void, []int64{voided}) {
		t.Errorf("grant's history: void %v, mismatch %q", hp.Void, hp.LogMismatch)
	}
}
