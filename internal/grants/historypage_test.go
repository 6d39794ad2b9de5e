package grants_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/airlock-dev/airlock/internal/grants"
	"github.com/airlock-dev/airlock/internal/model"
	"github.com/airlock-dev/airlock/internal/store"
)

// TestGrantHistoryPagesCostThePage: a grant's history read a page at a
// time, after its record (as airlock grant show reads them), holds every
// entry of the grant once, in log order, and each page reads the page,
// at most two stretches of 256 entries around it, and the grant's own
// few: the kept derivation of the grant's log proves it. History answered
// the grant's whole log at once.
func TestGrantHistoryPagesCostThePage(t *testing.T) {
	t.Parallel()
	const sessions, calls, limit = 100, 40, 500
	h, counter, g, all := countedGrant(t, sessions, calls)
	own := 0
	for _, e := range all {
		if e.SessionID == "" {
			own++
		}
	}
	if gr, err := h.Svc.Get(h.ctx, h.id(alice), g.ID); err != nil || len(gr.LogMismatch) > 0 {
		t.Fatalf("%q, %v", gr.LogMismatch, err)
	}
	counter.counts()
	// The page and one more, up to a mark of the chain before and after
	// it, the grant's own entries and its first.
	scanned := historyPages(t, h, counter, g, all, limit, limit+1+2*256+own+1)
	t.Logf("%d log entries, %d pages of %d; log entries read for page 1: %d, page 2: %d, all pages: %d",
		len(all), len(scanned), limit, scanned[0], scanned[1], sum(scanned))
}

// historyPages reads grant g's history a page of limit entries at a time
// and returns the log entries each page read (counter's count). Each
// page must read at most most, report no mismatch, and the pages must
// hold all, each once in log order.
func historyPages(t *testing.T, h *harness, counter *rowCounter, g model.Grant, all []store.LogEntry, limit, most int) (scanned []int) {
	t.Helper()
	var got []int64
	for q := (grants.EventsQuery{Limit: limit}); ; {
		p, err := h.Svc.History(h.ctx, h.id(alice), g.ID, q)
		if err != nil {
			t.Fatal(err)
		}
		_, n := counter.counts()
		scanned = append(scanned, n)
		if len(p.LogMismatch) > 0 || len(p.Entries) > limit || (p.Next != 0 && len(p.Entries) != limit) {
			t.Fatalf("page %d: %d entries, next %d, %q", len(scanned), len(p.Entries), p.Next, p.LogMismatch)
		}
		if n > most {
			t.Errorf("page %d: %d log entries read, want at most %d", len(scanned), n, most)
		}
		for _, e := range p.Entries {
			got = append(got, e.Seq)
		}
		if p.Next == 0 {
			break
		}
		if len(scanned) > len(all) {
			t.Fatalf("still a next page after %d pages", len(scanned))
		}
		q.After = p.Next
	}
	if len(got) != len(all) {
		t.Fatalf("%d entries over the pages, the grant holds %d", len(got), len(all))
	}
	for i, e := range all {
		if got[i] != e.Seq {
			t.Fatalf("entry %d is #%d, want #%d", i, got[i], e.Seq)
		}
	}
	return scanned
}

// TestGrantHistoryPagesTampered: an entry of a grant changed (its leaf
// hash made to match), removed or moved in the store after the first
// page of its history is reported on the page that holds it, though the
// page is proven with the derivation the first page kept.
func TestGrantHistoryPagesTampered(t *testing.T) {
	t.Parallel()
	const sessions, calls, limit = 30, 40, 100
	const differ = "log entries of this grant differ"
	for _, tc := range []struct {
		name   string
		tamper func(es []store.LogEntry, victim int64) []store.LogEntry
		// also is how the edit shows besides differ, if at all.
		also string
	}{
		{"changed", func(es []store.LogEntry, victim int64) []store.LogEntry {
			return editRequestID(es, victim, true)
		}, ""},
		{"changed, leaf hash kept", func(es []store.LogEntry, victim int64) []store.LogEntry {
			return editRequestID(es, victim, false)
		}, "does not hash to its leaf hash"},
		{"removed", func(es []store.LogEntry, victim int64) []store.LogEntry {
			return slices.DeleteFunc(es, func(e store.LogEntry) bool { return e.Seq == victim })
		}, ""},
		{"moved", func(es []store.LogEntry, victim int64) []store.LogEntry {
			i := slices.IndexFunc(es, func(e store.LogEntry) bool { return e.Seq == victim })
			if i >= 0 && i+1 < len(es) {
				es[i].Seq, es[i+1].Seq = es[i+1].Seq, es[i].Seq
				es[i], es[i+1] = es[i+1], es[i]
			}
			return es
		}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h, counter, g, all := countedGrant(t, sessions, calls)
			// A call on page 5.
			victim := int64(0)
			for _, e := range all[4*limit+10:] {
				if e.Type == "session.call" {
					victim = e.Seq
					break
				}
			}
			if victim == 0 {
				t.Fatal("no entry to edit")
			}
			reported := false
			for q, page := (grants.EventsQuery{Limit: limit}), 1; ; page++ {
				p, err := h.Svc.History(h.ctx, h.id(alice), g.ID, q)
				if err != nil {
					t.Fatal(err)
				}
				mm := strings.Join(p.LogMismatch, "\n")
				holds := slices.ContainsFunc(p.Entries, func(e store.LogEntry) bool { return e.Seq == victim || e.Seq == victim+1 })
				switch {
				case page == 1 && mm != "":
					t.Errorf("page 1: %q", mm)
				case holds && (!strings.Contains(mm, differ) || !strings.Contains(mm, tc.also)):
					t.Errorf("page %d: the log's %s entry #%d is not reported: %q", page, tc.name, victim, mm)
				case holds:
					reported = true
				}
				if page == 1 {
					counter.setTamper(func(f store.LogFilter, es []store.LogEntry) []store.LogEntry {
						return tc.tamper(es, victim)
					})
				}
				if p.Next == 0 {
					break
				}
				q.After = p.Next
			}
			if !reported {
				t.Errorf("no page held entry #%d", victim)
			}
		})
	}
}
