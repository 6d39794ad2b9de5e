package server

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/auditlog"
	"github.com/airlock-dev/airlock/internal/evidence"
	"github.com/airlock-dev/airlock/internal/gateway"
	"github.com/airlock-dev/airlock/internal/gateway/gatewaytest"
	"github.com/airlock-dev/airlock/internal/store"
)

// TestEvidenceBundleVoidedCall: a call a log.refused entry names (its
// batch's commit outcome was unknown, its caller was told it failed, and
// the session's row does not count it) is left out of the exported
// bundle's row, as the grant's page leaves it out: the export warns of no
// difference from the stored rows, the bundle (v5) carries the
// log.refused entry and verifies with the pinned key alone, the row
// counts the calls made, and the voided call's entry stays in it.
func TestEvidenceBundleVoidedCall(t *testing.T) {
	ctx := context.Background()
	cfg := auditConfig(t, "")
	s := openServer(t, cfg)
	defer s.Close()
	g, ses := activeSession(t, s)
	for _, obj := range []string{"a.log", "b.log", "c.log"} {
		if err := gatewaytest.Record(ctx, ses, gateway.Call{Kind: "request", Action: "s3:GetObject", Resource: "arn:aws:s3:::logs/app/" + obj, Allowed: true, BytesOut: 10}); err != nil {
			t.Fatal(err)
		}
	}
	if err := ses.End(ctx); err != nil {
		t.Fatal(err)
	}
	// The session's entries reach the store by the log's next sync.
	if err := s.log.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	es, err := s.store.LogEntries(ctx, store.LogFilter{GrantID: g.ID})
	if err != nil {
		t.Fatal(err)
	}
	var calls []int64
	for _, e := range es {
		if e.Type == "session.call" {
			calls = append(calls, e.Seq)
		}
	}
	if len(calls) != 3 {
		t.Fatalf("%d session.call entries, want 3", len(calls))
	}
	voided := calls[1]
	// As the next batch appends it, and the session's row as the recorder
	// leaves it: the call not counted.
	if err := s.log.Append(ctx, auditlog.Event{Type: auditlog.RefusedType, Actor: "airlock", Data: map[string]any{"entries": [][2]int64{{voided, voided + 1}}, "reason": "test"}}); err != nil {
		t.Fatal(err)
	}
	row, err := s.store.Session(ctx, ses.ID)
	if err != nil {
		t.Fatal(err)
	}
	row.Calls, row.BytesOut = 2, 20
	row.Used = slices.DeleteFunc(row.Used, func(p string) bool { return p == "s3:GetObject arn:aws:s3:::logs/app/b.log" })
	if err := s.log.Do(ctx, func(ctx context.Context, tx store.Tx) ([]auditlog.Event, error) {
		return nil, tx.PutSession(ctx, row)
	}); err != nil {
		t.Fatal(err)
	}

	b, warnings, err := s.Export(ctx, "111122223333", time.Now().UTC().Format("2006-01-02"))
	if err != nil || len(warnings) > 0 {
		t.Fatalf("export: %v %q", err, warnings)
	}
	pinned := pinnedKey(t, cfg.DataDir)
	res, err := evidence.Verify(b, pinned, LogOrigin(pinned))
	if err != nil {
		t.Fatalf("verify-bundle: %v", err)
	}
	if res.Format != evidence.Format || res.Refusals != 1 || !slices.Equal(res.Void, []int64{voided}) || len(res.Rows) != 1 {
		t.Fatalf("bundle: format %s, %d refusals, void %v, %d rows", res.Format, res.Refusals, res.Void, len(res.Rows))
	}
	if r := res.Rows[0]; r.Calls != 2 || r.BytesOut != 20 || slices.Contains(r.ScopeUsed, "s3:GetObject arn:aws:s3:::logs/app/b.log") {
		t.Fatalf("row: %d calls, %d bytes out, used %q", r.Calls, r.BytesOut, r.ScopeUsed)
	}
}
