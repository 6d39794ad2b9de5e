package grants_test

import (
	"bytes"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/airlock-dev/airlock/internal/gateway"
	"github.com/airlock-dev/airlock/internal/grants"
	"github.com/airlock-dev/airlock/internal/model"
	"github.com/airlock-dev/airlock/internal/store"
	"github.com/airlock-dev/airlock/internal/store/sqlitestore"
)

// countedSession is a harness whose store counts the log entries read,
// with a grant and a session of calls calls recorded.
func countedSession(t *testing.T, calls int) (*harness, *rowCounter, *gateway.Session) {
	counter := &rowCounter{}
	h := newHarness(t, harnessOptions{Store: func(s store.Store) store.Store {
		counter.Store = s.(*sqlitestore.Store)
		return counter
	}})
	g := h.request(bot, autoReq("10m"), model.Active)
	ses := h.startSession(g, "client")
	recordCalls(h, ses, 0, calls)
	return h, counter, ses
}

// endedSession is countedSession with the session ended, and its entries
// as the store holds them.
func endedSession(t *testing.T, calls int) (*harness, *rowCounter, *gateway.Session, []store.LogEntry) {
	h, counter, ses := countedSession(t, calls)
	if err := ses.End(h.ctx); err != nil {
		t.Fatal(err)
	}
	if err := h.Log.Sync(h.ctx); err != nil {
		t.Fatal(err)
	}
	all, err := h.St.LogEntries(h.ctx, store.LogFilter{SessionID: ses.ID})
	if err != nil || len(all) != calls+2 {
		t.Fatalf("%d entries, %v", len(all), err)
	}
	return h, counter, ses, all
}

// sameEntries checks that the pages read (got) hold the entries of all.
func sameEntries(t *testing.T, got, all []store.LogEntry) {
	t.Helper()
	if len(got) != len(all) {
		t.Fatalf("%d entries over the pages, want %d", len(got), len(all))
	}
	for i := range all {
		if got[i].Seq != all[i].Seq || !bytes.Equal(got[i].Data, all[i].Data) {
			t.Fatalf("entry %d: #%d, want #%d", i, got[i].Seq, all[i].Seq)
		}
	}
}

// recordCalls records n read calls in ses, numbered from from (their
// request_id, and object: the session's used pairs are cut at
// review.MaxUsed), several queued at once.
func recordCalls(h *harness, ses *gateway.Session, from, n int) {
	h.t.Helper()
	var ps []*gateway.Pending
	for i := from; i < from+n; i++ {
		ps = append(ps, ses.RequestAsync(h.ctx, gateway.Call{Action: "s3:GetObject", Resource: fmt.Sprintf("%s%05d", appDir, i), Allowed: true,
			Params: map[string]string{"request_id": strconv.Itoa(i)}}))
		if len(ps) == 500 || i == from+n-1 {
			for _, p := range ps {
				if err := p.Wait(h.ctx); err != nil {
					h.t.Fatal(err)
				}
			}
			ps = ps[:0]
		}
	}
	if err := h.Log.Sync(h.ctx); err != nil {
		h.t.Fatal(err)
	}
}

// TestSessionPagesCostThePage: reading a session of 10,000 calls a page
// at a time reads, for each page after the first, about the page from the
// store, whatever its place in the session. Every page proved the
// session's record by reading its grant's whole log again: 500-event
// pages read about 10,000 entries each, and the whole session 21 times.
//
// The bound is the page and the chain's marks around it (a fixed 2 × 256),
// whatever the session's size, and the fault reads the whole session on
// every page: at 10,000 calls in 21 pages that is ten times the bound, as
// at the 50,000 calls in 51 pages of 1,000 this test was written with
// (bench/HISTORY.md, "Reading a long session a page at a time"), which
// took five times as long to record and read under -race.
func TestSessionPagesCostThePage(t *testing.T) {
	t.Parallel()
	const calls, limit = 10_000, 500
	h, counter, ses, all := endedSession(t, calls)
	var got []store.LogEntry
	var scanned []int
	counter.counts()
	for after := int64(0); ; {
		sp, err := h.Svc.Session(h.ctx, h.id(alice), ses.ID, grants.EventsQuery{After: after, Limit: limit})
		if err != nil {
			t.Fatal(err)
		}
		_, total := counter.counts()
		scanned = append(scanned, total)
		if len(sp.Session.LogMismatch) > 0 || sp.Session.Calls != calls {
			t.Fatalf("page %d: session %+v", len(scanned), sp.Session)
		}
		got = append(got, sp.Entries...)
		if sp.Next == 0 {
			break
		}
		after = sp.Next
	}
	sameEntries(t, got, all)
	// The page, the entries from the mark before it and to the mark
	// after it (256 each way), the grant's first entry.
	const most = limit + 1 + 2*256 + 1
	for i, n := range scanned[1:] {
		if n > most {
			t.Errorf("page %d: %d log entries read, a page is %d", i+2, n, limit)
		}
	}
	t.Logf("%d pages of %d events; log entries read for page 1: %d, page 2: %d, page %d: %d, all pages: %d",
		len(scanned), limit, scanned[0], scanned[1], len(scanned), scanned[len(scanned)-1], sum(scanned))
}

func sum(ns []int) (s int) {
	for _, n := range ns {
		s += n
	}
	return s
}

// TestSessionPagesLive: a session read a page at a time while it records
// more calls yields each entry once, in log order, every page proven.
func TestSessionPagesLive(t *testing.T) {
	t.Parallel()
	h, _, ses := countedSession(t, 1500)
	var got []store.LogEntry
	recorded := 1500
	for after, page := int64(0), 1; ; page++ {
		sp, err := h.Svc.Session(h.ctx, h.id(alice), ses.ID, grants.EventsQuery{After: after, Limit: 300})
		if err != nil {
			t.Fatal(err)
		}
		if len(sp.Session.LogMismatch) > 0 {
			t.Fatalf("page %d: %q", page, sp.Session.LogMismatch)
		}
		got = append(got, sp.Entries...)
		if page <= 8 {
			recordCalls(h, ses, recorded, 250)
			recorded += 250
		}
		if sp.Next == 0 {
			if page <= 8 {
				t.Fatalf("page %d: no next page, with calls recorded since", page)
			}
			break
		}
		after = sp.Next
	}
	all, err := h.St.LogEntries(h.ctx, store.LogFilter{SessionID: ses.ID})
	if err != nil || len(all) != recorded+1 {
		t.Fatalf("%d entries, %v", len(all), err)
	}
	sameEntries(t, got, all)
}

// TestSessionPagesTampered: a log entry changed, removed, moved or added
// in the store after the first page was proven is reported on the page
// that holds it (and the pages after), as it was when every page derived
// the grant's whole log.
func TestSessionPagesTampered(t *testing.T) {
	t.Parallel()
	const calls, limit = 3000, 500
	// The session's entries are its start, then the calls: entry i of
	// the session is the (i-1)th call; page 4 holds entries 1500-1999.
	const target = 1700
	differ := "log entries of this session differ from those an earlier page read"
	for _, tc := range []struct {
		name   string
		tamper func(f store.LogFilter, es []store.LogEntry, victim int64) []store.LogEntry
		want   []string
	}{
		{"changed", func(_ store.LogFilter, es []store.LogEntry, victim int64) []store.LogEntry {
			// A call's parameters, which its session's summary does not
			// count, with the leaf hash made to match.
			return editRequestID(es, victim, true)
		}, []string{differ}},
		{"changed, leaf hash kept", func(_ store.LogFilter, es []store.LogEntry, victim int64) []store.LogEntry {
			return editRequestID(es, victim, false)
		}, []string{differ, "does not hash to its leaf hash"}},
		{"removed", func(_ store.LogFilter, es []store.LogEntry, victim int64) []store.LogEntry {
			return slices.DeleteFunc(es, func(e store.LogEntry) bool { return e.Seq == victim })
		}, []string{differ, fmt.Sprintf("calls is %d, log says %d", calls, calls-1)}},
		{"moved", func(_ store.LogFilter, es []store.LogEntry, victim int64) []store.LogEntry {
			// Two calls change places, each with its own bytes and seq.
			i := slices.IndexFunc(es, func(e store.LogEntry) bool { return e.Seq == victim })
			if i >= 0 && i+1 < len(es) {
				es[i].Seq, es[i+1].Seq = es[i+1].Seq, es[i].Seq
				es[i], es[i+1] = es[i+1], es[i]
			}
			return es
		}, []string{differ}},
		{"added", func(f store.LogFilter, es []store.LogEntry, victim int64) []store.LogEntry {
			// A copy of a call, at no position of the log.
			i := slices.IndexFunc(es, func(e store.LogEntry) bool { return e.Seq == victim })
			if i < 0 {
				return es
			}
			forged := es[i]
			forged.Seq = -1
			forged.Data = bytes.Replace(forged.Data, fmt.Appendf(nil, `{"seq":%d,`, victim), []byte(`{"seq":-1,`), 1)
			h := tlog.RecordHash(forged.Data)
			forged.LeafHash = h[:]
			return append([]store.LogEntry{forged}, es...)
		}, []string{"negative sequence number"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h, counter, ses, all := endedSession(t, calls)
			victim := all[target].Seq
			for after, page := int64(0), 1; ; page++ {
				if page == 2 {
					// The store's log is edited after the first page was
					// proven.
					counter.setTamper(func(f store.LogFilter, es []store.LogEntry) []store.LogEntry {
						return tc.tamper(f, es, victim)
					})
				}
				sp, err := h.Svc.Session(h.ctx, h.id(alice), ses.ID, grants.EventsQuery{After: after, Limit: limit})
				if err != nil {
					t.Fatal(err)
				}
				mm := strings.Join(sp.Session.LogMismatch, "\n")
				if page >= 4 {
					for _, w := range tc.want {
						if !strings.Contains(mm, w) {
							t.Errorf("page %d: the log's %s entry is not reported (%q): %q", page, tc.name, w, mm)
						}
					}
				} else if page == 1 && mm != "" {
					t.Errorf("page %d: %q", page, mm)
				}
				if sp.Next == 0 {
					if page < 6 {
						t.Fatalf("%d pages", page)
					}
					break
				}
				after = sp.Next
			}
		})
	}
}

// TestSessionProofRenewed: the derivation kept for a session's pages is
// derived again from the grant's whole log once it is proofLife old, so
// what happens to the rest of the grant's log is found again.
func TestSessionProofRenewed(t *testing.T) {
	t.Parallel()
	h, counter, ses := countedSession(t, 1000)
	read := func() int {
		t.Helper()
		counter.counts()
		if _, err := h.Svc.Session(h.ctx, h.id(alice), ses.ID, grants.EventsQuery{Limit: 100}); err != nil {
			t.Fatal(err)
		}
		_, n := counter.counts()
		return n
	}
	first := read()
	if n := read(); n >= first || n > 100+1+2*256+1 {
		t.Errorf("a page again: %d entries read, the first time %d", n, first)
	}
	h.clock.Advance(5*time.Minute + time.Second)
	if n := read(); n < first {
		t.Errorf("a page after 5 minutes: %d entries read, the first time %d", n, first)
	}
}

// TestGrantSessionsMismatchPerSession: each session of a page of a
// grant's sessions carries its own differences from the log. They were
// appended to the grant's problems, one slice shared by the page: with
// room left in it, the next session's differences overwrote the ones
// before, and a session showed another's.
func TestGrantSessionsMismatchPerSession(t *testing.T) {
	t.Parallel()
	counter := &rowCounter{}
	h := newHarness(t, harnessOptions{Store: func(s store.Store) store.Store {
		counter.Store = s.(*sqlitestore.Store)
		return counter
	}})
	g := h.request(bot, autoReq("10m"), model.Active)
	var ids []string
	for _, n := range []int{3, 5, 5} {
		ses := h.startSession(g, "client")
		recordCalls(h, ses, 0, n)
		if err := ses.End(h.ctx); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, ses.ID)
	}
	if err := h.Log.Sync(h.ctx); err != nil {
		t.Fatal(err)
	}
	// The store loses a call of each of the first two sessions, and
	// the third's five calls no longer match their leaf hashes: five
	// problems, in a slice with room for three more.
	counter.setTamper(func(_ store.LogFilter, es []store.LogEntry) []store.LogEntry {
		dropped := map[string]bool{}
		out := es[:0]
		for _, e := range es {
			if e.Type == "session.call" {
				switch e.SessionID {
				case ids[0], ids[1]:
					if !dropped[e.SessionID] {
						dropped[e.SessionID] = true
						continue
					}
				case ids[2]:
					e.Data = bytes.Replace(e.Data, []byte(`"request_id":"`), []byte(`"request_id":"9`), 1)
				}
			}
			out = append(out, e)
		}
		return out
	})
	page, err := h.Svc.GrantSessions(h.ctx, h.id(alice), g.ID, grants.SessionsQuery{})
	if err != nil || len(page.Sessions) != 3 {
		t.Fatalf("%d sessions, %v", len(page.Sessions), err)
	}
	for i, want := range []string{"calls is 3, log says 2", "calls is 5, log says 4", "calls is 5, log says 0"} {
		s := page.Sessions[i]
		mm := strings.Join(s.LogMismatch, "\n")
		if s.ID != ids[i] || !strings.Contains(mm, want) || strings.Count(mm, "does not hash to its leaf hash") != 5 {
			t.Errorf("session %d (%s): %q, want %q and the 5 problems", i, s.ID, mm, want)
		}
	}
}

// editRequestID edits the request_id parameter of the call at sequence
// number victim in es, with its leaf hash made to match if rehash.
func editRequestID(es []store.LogEntry, victim int64, rehash bool) []store.LogEntry {
	for i, e := range es {
		if e.Seq == victim {
			es[i].Data = bytes.Replace(e.Data, []byte(`"request_id":"`), []byte(`"request_id":"9`), 1)
			if rehash {
				h := tlog.RecordHash(es[i].Data)
				es[i].LeafHash = h[:]
			}
		}
	}
	return es
}
