package grants_test

import (
	"bytes"
	"context"
	"math"
	"strings"
	"testing"

	"github.com/airlock-dev/airlock/internal/gateway"
	"github.com/airlock-dev/airlock/internal/gateway/gatewaytest"
	"github.com/airlock-dev/airlock/internal/model"
	"github.com/airlock-dev/airlock/internal/review"
	"github.com/airlock-dev/airlock/internal/store"
)

// inflated is a store whose session rows claim extra calls.
type inflated struct {
	store.Store
	extra int64
}

func (s inflated) Sessions(ctx context.Context, grantID string) ([]model.Session, error) {
	ss, err := s.Store.Sessions(ctx, grantID)
	for i := range ss {
		ss[i].Calls += s.extra
	}
	return ss, err
}

// TestCheckRowsWrittenAfterTheWalk: audit verify walks the log, then reads
// the rows; a live session's summary written in between (its replica's
// flusher, or another replica asked for it) counts calls logged after the
// walk. Such a row matches the log it was written from and is not a
// problem; a row that leads even the newest log still is.
func TestCheckRowsWrittenAfterTheWalk(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	defer h.finish()
	g := h.request(bot, autoReq("10m"), model.Active)
	ses := h.startSession(g, "127.0.0.1:5000")
	call := gateway.Call{Kind: "request", Action: "s3:GetObject", Resource: appObj, Allowed: true, BytesOut: 1}
	record := func(n int) {
		for range n {
			if err := gatewaytest.Record(h.ctx, ses, call); err != nil {
				t.Fatal(err)
			}
		}
		h.session(ses.ID) // a read writes the summaries
		h.syncLog()
	}
	walk := func(rows review.Rows) *review.Checker {
		c := review.NewChecker(rows)
		if err := h.St.ScanLog(h.ctx, 0, math.MaxInt64, func(e store.LogEntry) error {
			c.Entry(e.Seq, bytes.Clone(e.Data))
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return c
	}
	record(3)
	c := walk(h.St)
	record(2) // logged after the walk, in the row before it is read
	if diffs, err := c.Finish(h.ctx); err != nil || len(diffs) != 0 {
		t.Fatalf("rows written from the log after the walk: %v %q", err, diffs)
	}

	for _, tc := range []struct {
		name   string
		after  int // calls logged after the walk
		extra  int64
		differ bool
	}{
		{"a row the newest log explains", 2, 0, false},
		{"a row ahead of every entry", 2, 3, true},
		{"a row ahead of a log unchanged since the walk", 0, 1, true},
	} {
		c := walk(inflated{h.St, tc.extra})
		record(tc.after)
		diffs, err := c.Finish(h.ctx)
		if err != nil {
			t.Fatal(err)
		}
		if got := len(diffs) > 0; got != tc.differ {
			t.Errorf("%s: differences %q, want some: %v", tc.name, diffs, tc.differ)
		}
		if tc.differ && !strings.Contains(strings.Join(diffs, "\n"), "log says at most") {
			t.Errorf("%s: %q", tc.name, diffs)
		}
	}
	if err := ses.End(h.ctx); err != nil {
		t.Fatal(err)
	}
}
