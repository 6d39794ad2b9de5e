package grants_test

import (
	"bytes"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/airlock-dev/airlock/internal/gateway"
	"github.com/airlock-dev/airlock/internal/grants"
	"github.com/airlock-dev/airlock/internal/model"
	"github.com/airlock-dev/airlock/internal/store"
	"github.com/airlock-dev/airlock/internal/store/sqlitestore"
)

// countedGrant is a harness whose store counts the log entries read, with
// a grant of sessions ended sessions of calls calls each, and the grant's
// log entries as the store holds them.
func countedGrant(t *testing.T, sessions, calls int) (*harness, *rowCounter, model.Grant, []store.LogEntry) {
	return countedGrantWith(t, sessions, func(h *harness, _ model.Grant, _ int, ses *gateway.Session) {
		recordCalls(h, ses, 0, calls)
	})
}

// countedGrantWith is countedGrant with what each session s records
// (before it ends) left to record.
func countedGrantWith(t *testing.T, sessions int, record func(h *harness, g model.Grant, s int, ses *gateway.Session)) (*harness, *rowCounter, model.Grant, []store.LogEntry) {
	counter := &rowCounter{}
	h := newHarness(t, harnessOptions{Store: func(s store.Store) store.Store {
		counter.Store = s.(*sqlitestore.Store)
		return counter
	}})
	g := h.request(bot, autoReq("10m"), model.Active)
	for s := range sessions {
		ses := h.startSession(g, "client")
		record(h, g, s, ses)
		if err := ses.End(h.ctx); err != nil {
			t.Fatal(err)
		}
	}
	if err := h.Log.Sync(h.ctx); err != nil {
		t.Fatal(err)
	}
	all, err := h.St.LogEntries(h.ctx, store.LogFilter{GrantID: g.ID})
	if err != nil {
		t.Fatal(err)
	}
	return h, counter, g, all
}

// TestGrantSessionsPagesCostThePage: reading the sessions of a grant of
// 8,000 calls a page at a time reads, for each page after the first,
// the entries of the page's sessions (and the grant's own few), and
// reading the grant again its own entries. Every page derived the grant's
// whole log twice (for the grant's record, then for the sessions), and
// every Get once.
//
// Written with 500 sessions in pages of 100: a page is a fifth of the
// grant's sessions at either size, so the fault (the grant's whole log,
// once or twice, on every page) reads five to ten times the bound on
// every page, as it did; 200 sessions are 60 % fewer to start, record and
// end, which were most of the test's time.
func TestGrantSessionsPagesCostThePage(t *testing.T) {
	t.Parallel()
	const sessions, calls, limit = 200, 40, 40
	h, counter, g, all := countedGrant(t, sessions, calls)
	perSession := map[string]int{}
	own := 0
	for _, e := range all {
		if e.SessionID == "" {
			own++
		}
		perSession[e.SessionID]++
	}
	var scanned []int
	seen := 0
	counter.counts()
	for after := ""; ; {
		page, err := h.Svc.GrantSessions(h.ctx, h.id(alice), g.ID, grants.SessionsQuery{After: after, Limit: limit})
		if err != nil {
			t.Fatal(err)
		}
		_, n := counter.counts()
		scanned = append(scanned, n)
		most := 1 + own // the grant's first entry, its own
		for _, s := range page.Sessions {
			if len(s.LogMismatch) > 0 || s.Calls != calls {
				t.Fatalf("page %d: session %+v", len(scanned), s)
			}
			most += perSession[s.ID]
		}
		seen += len(page.Sessions)
		if len(scanned) > 1 && n > most {
			t.Errorf("page %d: %d log entries read, its sessions hold %d", len(scanned), n, most-1-own)
		}
		if page.Next == "" {
			break
		}
		after = page.Next
	}
	if seen != sessions {
		t.Fatalf("%d sessions over the pages, want %d", seen, sessions)
	}
	gr, err := h.Svc.Get(h.ctx, h.id(alice), g.ID)
	if err != nil || len(gr.LogMismatch) > 0 || gr.Usage.Calls != sessions*calls {
		t.Fatalf("%+v, %v", gr, err)
	}
	_, got := counter.counts()
	if got > 1+own {
		t.Errorf("Get: %d log entries read, the grant has %d of its own", got, own)
	}
	t.Logf("%d log entries, %d pages of %d sessions; log entries read for page 1: %d, page 2: %d, page %d: %d, all pages: %d; Get after: %d",
		len(all), len(scanned), limit, scanned[0], scanned[1], len(scanned), scanned[len(scanned)-1], sum(scanned), got)
}

// TestGrantSessionsPagesTampered: a log entry of a session changed,
// removed or moved in the store after the first page of the grant's
// sessions was proven is reported on the page that holds the session, and
// an entry of the grant's own (its lifecycle) by the next Get, as when
// every read derived the grant's whole log (and the edits that derivation
// did not see, such as a call's parameters with the leaf hash made to
// match, too).
func TestGrantSessionsPagesTampered(t *testing.T) {
	t.Parallel()
	const sessions, calls, limit = 30, 40, 10
	const differ = "log entries of this grant differ"
	rehash := func(e *store.LogEntry, data []byte) {
		e.Data = data
		h := tlog.RecordHash(data)
		e.LeafHash = h[:]
	}
	for _, tc := range []struct {
		name string
		// own: the victim is the grant's own entry (its request), not a
		// call of the session on page 3.
		own    bool
		tamper func(es []store.LogEntry, victim int64) []store.LogEntry
		// want is how the edit shows, on page 3 and in Get.
		want string
	}{
		{"changed", false, func(es []store.LogEntry, victim int64) []store.LogEntry {
			for i, e := range es {
				if e.Seq == victim {
					rehash(&es[i], bytes.Replace(e.Data, []byte(`"request_id":"`), []byte(`"request_id":"9`), 1))
				}
			}
			return es
		}, differ},
		{"removed", false, func(es []store.LogEntry, victim int64) []store.LogEntry {
			return slices.DeleteFunc(es, func(e store.LogEntry) bool { return e.Seq == victim })
		}, "calls is"},
		{"moved", false, func(es []store.LogEntry, victim int64) []store.LogEntry {
			i := slices.IndexFunc(es, func(e store.LogEntry) bool { return e.Seq == victim })
			if i >= 0 && i+1 < len(es) {
				es[i].Seq, es[i+1].Seq = es[i+1].Seq, es[i].Seq
				es[i], es[i+1] = es[i+1], es[i]
			}
			return es
		}, differ},
		{"own changed", true, func(es []store.LogEntry, victim int64) []store.LogEntry {
			for i, e := range es {
				if e.Seq == victim {
					rehash(&es[i], bytes.Replace(e.Data, []byte(`"reason":"`), []byte(`"reason":"x`), 1))
				}
			}
			return es
		}, "reason is"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h, counter, g, all := countedGrant(t, sessions, calls)
			ss, err := h.St.SessionsPage(h.ctx, store.SessionFilter{GrantID: g.ID})
			if err != nil || len(ss) != sessions {
				t.Fatalf("%d sessions, %v", len(ss), err)
			}
			target := ss[2*limit+3].ID // on page 3
			var victim int64
			for _, e := range all {
				if tc.own && e.Type == "grant.requested" || !tc.own && e.SessionID == target && e.Type == "session.call" {
					victim = e.Seq
					break
				}
			}
			if victim == 0 {
				t.Fatal("no entry to edit")
			}
			if tc.own {
				i := slices.IndexFunc(all, func(e store.LogEntry) bool { return e.Seq == victim })
				if !bytes.Contains(all[i].Data, []byte(`"reason":"`)) {
					t.Fatalf("the request has no reason to edit: %s", all[i].Data)
				}
			}
			for after, page := "", 1; ; page++ {
				if page == 2 {
					counter.setTamper(func(f store.LogFilter, es []store.LogEntry) []store.LogEntry {
						return tc.tamper(es, victim)
					})
				}
				p, err := h.Svc.GrantSessions(h.ctx, h.id(alice), g.ID, grants.SessionsQuery{After: after, Limit: limit})
				if err != nil {
					t.Fatal(err)
				}
				for _, s := range p.Sessions {
					mm := strings.Join(s.LogMismatch, "\n")
					switch {
					case page == 1 && mm != "":
						t.Errorf("page 1: session %s: %q", s.ID, mm)
					case page == 3 && !tc.own && s.ID == target && !strings.Contains(mm, tc.want):
						t.Errorf("page 3: the log's %s entry #%d of session %s is not reported: %q", tc.name, victim, s.ID, mm)
					}
				}
				if p.Next == "" {
					if page != 3 {
						t.Fatalf("%d pages", page)
					}
					break
				}
				after = p.Next
			}
			gr, err := h.Svc.Get(h.ctx, h.id(alice), g.ID)
			if err != nil {
				t.Fatal(err)
			}
			if mm := strings.Join(gr.LogMismatch, "\n"); !strings.Contains(mm, tc.want) {
				t.Errorf("Get: the log's %s entry #%d is not reported: %q", tc.name, victim, mm)
			}
		})
	}
}

// TestGrantProofScatteredCommands: a grant whose own entries (here 100
// commands, each between calls of its session) lie in 100 runs among its
// entries is read in a few queries (its first entry, the log.refused
// entries appended since, its entries appended since, its own entries
// through their index), not one query per run of them.
func TestGrantProofScatteredCommands(t *testing.T) {
	t.Parallel()
	counter := &rowCounter{}
	h := newHarness(t, harnessOptions{Store: func(s store.Store) store.Store {
		counter.Store = s.(*sqlitestore.Store)
		return counter
	}})
	g := h.request(bot, autoReq("10m"), model.Active)
	ses := h.startSession(g, "client")
	for i := range 100 {
		recordCalls(h, ses, i*12, 12)
		if err := h.Svc.RecordCommand(h.ctx, h.id(bot), g.ID, []string{"aws", "s3", "ls", strconv.Itoa(i)}, ""); err != nil {
			t.Fatal(err)
		}
	}
	if err := h.Log.Sync(h.ctx); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		counter.queries()
		gr, err := h.Svc.Get(h.ctx, h.id(alice), g.ID)
		if err != nil || len(gr.LogMismatch) > 0 {
			t.Fatalf("%q, %v", gr.LogMismatch, err)
		}
		if n := counter.queries(); n > 4 {
			t.Errorf("Get %d: %d reads of the log", i+1, n)
		}
	}
}

// TestGrantProofConcurrentReads: reads of a grant and of its sessions at
// once share the proof kept for the grant (each holds it while it uses
// it), and each answer is proven: no mismatch, whoever continued it.
func TestGrantProofConcurrentReads(t *testing.T) {
	t.Parallel()
	h, _, g, _ := countedGrant(t, 30, 40)
	errs := make(chan error, 4)
	for w := range 4 {
		go func() {
			var err error
			for i := 0; i < 5 && err == nil; i++ {
				if w%2 == 0 {
					var gr model.Grant
					if gr, err = h.Svc.Get(h.ctx, h.id(alice), g.ID); err == nil && len(gr.LogMismatch) > 0 {
						err = fmt.Errorf("grant: %q", gr.LogMismatch)
					}
					continue
				}
				var p grants.SessionsPage
				p, err = h.Svc.GrantSessions(h.ctx, h.id(alice), g.ID, grants.SessionsQuery{Limit: 10})
				for _, s := range p.Sessions {
					if len(s.LogMismatch) > 0 {
						err = fmt.Errorf("session %s: %q", s.ID, s.LogMismatch)
					}
				}
			}
			errs <- err
		}()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}
