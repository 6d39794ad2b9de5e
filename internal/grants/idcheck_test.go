package grants_test

import (
	"bytes"
	"context"
	"math"
	"strings"
	"testing"

	"github.com/airlock-dev/airlock/internal/model"
	"github.com/airlock-dev/airlock/internal/review"
	"github.com/airlock-dev/airlock/internal/store"
)

// TestIdentityEntriesStateTheWholeKeyHash: identity.added and
// identity.disabled record the key's whole SHA-256 (as the database stores
// it), so that audit verify can check the row's hash, not only its first 8
// hex digits; the prefix is still recorded for readers of older entries.
func TestIdentityEntriesStateTheWholeKeyHash(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	defer h.finish()
	lead := h.id(alice)
	lead.Groups = append(lead.Groups, "sre-team")
	id, _, err := h.Svc.AddAgent(h.ctx, lead, "deploy-bot", "sre-team", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.Svc.DisableAgent(h.ctx, lead, "deploy-bot", "retired"); err != nil {
		t.Fatal(err)
	}
	for _, typ := range []string{"identity.added", "identity.disabled"} {
		es := h.entriesOfType(typ)
		d := entryData(t, es[len(es)-1])
		if d["name"] != "deploy-bot" || d["key_sha256"] != id.KeySHA256 || d["key_sha256_prefix"] != id.KeySHA256[:8] {
			t.Errorf("%s entry %v, want key_sha256 %s", typ, d, id.KeySHA256)
		}
	}
}

// reenabled is a store whose identity rows are all enabled.
type reenabled struct{ store.Store }

func (s reenabled) Identities(ctx context.Context) ([]model.Identity, error) {
	ids, err := s.Store.Identities(ctx)
	for i := range ids {
		ids[i].Disabled = false
	}
	return ids, err
}

// TestCheckIdentityRowsWrittenAfterTheWalk: audit verify walks the log,
// then reads the rows; an agent added or disabled in between has a row the
// walked log does not explain but the newest log does, which is not a
// problem. A row that differs from the newest log still is.
func TestCheckIdentityRowsWrittenAfterTheWalk(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	defer h.finish()
	lead := h.id(alice)
	lead.Groups = append(lead.Groups, "sre-team")
	walk := func(rows review.Rows) *review.Checker {
		h.syncLog()
		c := review.NewChecker(rows)
		if err := h.St.ScanLog(h.ctx, 0, math.MaxInt64, func(e store.LogEntry) error {
			c.Entry(e.Seq, bytes.Clone(e.Data))
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return c
	}
	c := walk(h.St)
	if _, _, err := h.Svc.AddAgent(h.ctx, lead, "deploy-bot", "sre-team", nil); err != nil {
		t.Fatal(err)
	}
	if diffs, err := c.Finish(h.ctx); err != nil || len(diffs) != 0 {
		t.Fatalf("an agent added after the walk: %v %q", err, diffs)
	}
	c = walk(h.St)
	if _, err := h.Svc.DisableAgent(h.ctx, lead, "deploy-bot", "retired"); err != nil {
		t.Fatal(err)
	}
	if diffs, err := c.Finish(h.ctx); err != nil || len(diffs) != 0 {
		t.Fatalf("an agent disabled after the walk: %v %q", err, diffs)
	}

	c = walk(reenabled{h.St})
	diffs, err := c.Finish(h.ctx)
	if err != nil || len(diffs) != 1 || !strings.Contains(diffs[0], "identity deploy-bot: disabled is false, log says true") {
		t.Fatalf("a re-enabled agent: %v %q", err, diffs)
	}
}
