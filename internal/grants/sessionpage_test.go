package grants_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/airlock-dev/airlock/internal/gateway"
	"github.com/airlock-dev/airlock/internal/gateway/gatewaytest"
	"github.com/airlock-dev/airlock/internal/grants"
	"github.com/airlock-dev/airlock/internal/model"
	"github.com/airlock-dev/airlock/internal/store"
	"github.com/airlock-dev/airlock/internal/store/sqlitestore"
)

// rowCounter is a store that records the most log entries one LogEntries
// call answered.
type rowCounter struct {
	// The concrete store, so the service finds the optional interfaces
	// it implements.
	*sqlitestore.Store
	mu   sync.Mutex
	most int
}

func (c *rowCounter) LogEntries(ctx context.Context, f store.LogFilter) ([]store.LogEntry, error) {
	es, err := c.Store.LogEntries(ctx, f)
	c.mu.Lock()
	c.most = max(c.most, len(es))
	c.mu.Unlock()
	return es, err
}

func (c *rowCounter) reset() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.most
	c.most = 0
	return n
}

// TestSessionEventsPaged: a session's events are read a page at a time,
// each page after the last entry of the one before, and no read of a page
// (its entries, and the grant's log that proves the session's record)
// holds more than a page's worth of log entries. Session read every entry
// of the session, and proving it every entry of its grant, at once: a
// session of a million statements was a million entries in memory for
// one reviewer's click.
func TestSessionEventsPaged(t *testing.T) {
	t.Parallel()
	counter := &rowCounter{}
	h := newHarness(t, harnessOptions{Store: func(s store.Store) store.Store {
		counter.Store = s.(*sqlitestore.Store)
		return counter
	}})
	g := h.request(bot, autoReq("10m"), model.Active)
	ses := h.startSession(g, "client")
	const calls = 2500
	for i := 0; i < calls; i++ {
		if err := gatewaytest.Record(h.ctx, ses, gateway.Call{Kind: "request", Action: "s3:GetObject",
			Resource: fmt.Sprintf("%s%05d", appDir, i), Allowed: true}); err != nil {
			t.Fatal(err)
		}
	}
	if err := ses.End(h.ctx); err != nil {
		t.Fatal(err)
	}
	if err := h.Log.Sync(h.ctx); err != nil {
		t.Fatal(err)
	}
	// The whole recording, at once, as the store holds it.
	all, err := h.St.LogEntries(h.ctx, store.LogFilter{SessionID: ses.ID})
	if err != nil || len(all) != calls+2 {
		t.Fatalf("%d entries, %v", len(all), err)
	}

	for _, tc := range []struct {
		limit, page int // asked, and what a page holds
	}{
		{0, grants.DefaultEventsPage},
		{700, 700},
		{grants.MaxEventsPage + 1, grants.MaxEventsPage},
	} {
		t.Run(fmt.Sprint(tc.limit), func(t *testing.T) {
			var got []store.LogEntry
			after, pages := int64(0), 0
			for {
				counter.reset()
				sp, err := h.Svc.Session(h.ctx, h.id(alice), ses.ID, grants.EventsQuery{After: after, Limit: tc.limit})
				if err != nil {
					t.Fatal(err)
				}
				pages++
				if most := counter.reset(); most > max(tc.page+1, 1000) {
					t.Errorf("page %d: one read of %d log entries, a page is %d", pages, most, tc.page)
				}
				if sp.Session.ID != ses.ID || len(sp.Session.LogMismatch) > 0 || sp.Session.Calls != calls {
					t.Errorf("page %d: session %+v", pages, sp.Session)
				}
				if len(sp.Entries) > tc.page || (sp.Next != 0 && len(sp.Entries) != tc.page) {
					t.Errorf("page %d: %d entries, next %d", pages, len(sp.Entries), sp.Next)
				}
				got = append(got, sp.Entries...)
				if sp.Next == 0 {
					break
				}
				if sp.Next != sp.Entries[len(sp.Entries)-1].Seq {
					t.Fatalf("page %d: next %d is not its last entry", pages, sp.Next)
				}
				after = sp.Next
			}
			if want := (len(all) + tc.page - 1) / tc.page; pages != want {
				t.Errorf("%d pages, want %d", pages, want)
			}
			if len(got) != len(all) {
				t.Fatalf("%d entries over the pages, want %d", len(got), len(all))
			}
			for i := range all {
				if got[i].Seq != all[i].Seq {
					t.Fatalf("entry %d: #%d, want #%d", i, got[i].Seq, all[i].Seq)
				}
			}
		})
	}
}
