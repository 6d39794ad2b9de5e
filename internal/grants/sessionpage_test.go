package grants_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/airlock-dev/airlock/internal/grants"
	"github.com/airlock-dev/airlock/internal/store"
	"github.com/airlock-dev/airlock/internal/store/sqlitestore"
)

// rowCounter is a store that records the most log entries one LogEntries
// call answered, and how many all of them answered; with tamper set, it
// answers the log as tamper changes it, as a database edited would.
type rowCounter struct {
	// The concrete store, so the service finds the optional interfaces
	// it implements.
	*sqlitestore.Store
	mu     sync.Mutex
	most   int
	total  int
	reads  int // LogEntries calls
	tamper func(store.LogFilter, []store.LogEntry) []store.LogEntry
}

func (c *rowCounter) LogEntries(ctx context.Context, f store.LogFilter) ([]store.LogEntry, error) {
	c.mu.Lock()
	tamper := c.tamper
	c.mu.Unlock()
	if tamper != nil {
		return c.tampered(ctx, f, tamper)
	}
	es, err := c.Store.LogEntries(ctx, f)
	c.mu.Lock()
	c.reads++
	c.most = max(c.most, len(es))
	c.total += len(es)
	c.mu.Unlock()
	return es, err
}

// tampered answers f from every entry f's key selects, as tamper changes
// them.
func (c *rowCounter) tampered(ctx context.Context, f store.LogFilter, tamper func(store.LogFilter, []store.LogEntry) []store.LogEntry) ([]store.LogEntry, error) {
	es, err := c.Store.LogEntries(ctx, store.LogFilter{GrantID: f.GrantID, SessionID: f.SessionID, Type: f.Type, NoSession: f.NoSession})
	if err != nil {
		return nil, err
	}
	es = tamper(f, es)
	if f.After > 0 {
		es = slices.DeleteFunc(es, func(e store.LogEntry) bool { return e.Seq <= f.After })
	}
	if f.Limit > 0 && len(es) > f.Limit {
		es = es[:f.Limit]
	}
	return es, nil
}

func (c *rowCounter) reset() int {
	n, _ := c.counts()
	return n
}

// counts returns the most entries one read answered and the entries all
// answered since the last call, and starts counting again.
func (c *rowCounter) counts() (most, total int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	most, total = c.most, c.total
	c.most, c.total = 0, 0
	return most, total
}

// queries returns the LogEntries calls since the last call, and starts
// counting again.
func (c *rowCounter) queries() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.reads
	c.reads = 0
	return n
}

func (c *rowCounter) setTamper(f func(store.LogFilter, []store.LogEntry) []store.LogEntry) {
	c.mu.Lock()
	c.tamper = f
	c.mu.Unlock()
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
	const calls = 2500
	h, counter, ses, all := endedSession(t, calls)

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
			sameEntries(t, got, all)
		})
	}
}
