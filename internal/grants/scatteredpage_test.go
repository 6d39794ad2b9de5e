package grants_test

import (
	"bytes"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/gateway"
	"github.com/airlock-dev/airlock/internal/grants"
	"github.com/airlock-dev/airlock/internal/model"
	"github.com/airlock-dev/airlock/internal/store"
	"golang.org/x/mod/sumdb/tlog"
)

// scatteredGrant is a harness whose store counts the log entries read,
// with a grant of sessions ended sessions, each of runs commands recorded
// between calls (calls calls before each): its own entries lie in more
// than sessions*runs runs among its entries, as an agent's that records
// each command it runs with the grant (airlock mcp's run_with_grant).
//
// A session's calls read the same calls objects over and over: each
// command reads the grant (Service.RecordCommand, and again in the log's
// transaction), usage and the sessions' used pairs with it, and with an
// object per call (recordCalls) those pairs, up to review.MaxUsed a
// session, were a third of the fixture's CPU under -race. What is read
// back is counted in log entries, which the objects do not change.
func scatteredGrant(t *testing.T, sessions, runs, calls int) (*harness, *rowCounter, model.Grant, []store.LogEntry) {
	h, counter, g, all := countedGrantWith(t, sessions, func(h *harness, g model.Grant, s int, ses *gateway.Session) {
		for i := range runs {
			ps := make([]*gateway.Pending, calls)
			for j := range calls {
				n := i*calls + j
				ps[j] = ses.RequestAsync(h.ctx, gateway.Call{Action: "s3:GetObject", Resource: fmt.Sprintf("%s%05d", appDir, j), Allowed: true,
					Params: map[string]string{"request_id": strconv.Itoa(n)}})
			}
			for _, p := range ps {
				if err := p.Wait(h.ctx); err != nil {
					t.Fatal(err)
				}
			}
			if err := h.Svc.RecordCommand(h.ctx, h.id(bot), g.ID, []string{"aws", "s3", "ls", strconv.Itoa(s), strconv.Itoa(i)}, ""); err != nil {
				t.Fatal(err)
			}
		}
	})
	// The fixture's point: the grant's own entries in a run between
	// each command's calls.
	inRuns := 0
	for i, e := range all {
		if e.SessionID == "" && (i == 0 || all[i-1].SessionID != "") {
			inRuns++
		}
	}
	if inRuns < sessions*runs {
		t.Fatalf("the grant's own entries lie in %d runs, want %d at least", inRuns, sessions*runs)
	}
	return h, counter, g, all
}

// TestScatteredGrantPagesCostThePage: a grant of about 12,000 entries
// whose own entries (1,200 commands) lie in about 1,200 runs among its
// sessions' calls keeps its proof, so each page of its history, and of
// its sessions, after its record costs the page (and a stretch of 256
// entries each side), not the grant's whole log. Such a grant kept no
// proof (more than 64 runs): every page derived its whole log, 12,000
// entries and more.
//
// Written with 10 sessions of 200 commands (20,023 entries; the figures
// in bench/HISTORY.md, "Pages of a grant whose commands lie between its
// calls"): the bounds are the page and its stretch (1,514), and two
// sessions' entries (3,000 of 8 sessions), whatever the grant's size, and
// the fault, the whole log on every page, is eight and four times them
// at this size, for 60 % of the commands, which are most of the test's
// time.
func TestScatteredGrantPagesCostThePage(t *testing.T) {
	t.Parallel()
	const sessions, runs, calls, limit = 8, 150, 9, 1000
	h, counter, g, all := scatteredGrant(t, sessions, runs, calls)
	perSession := map[string]int{}
	for _, e := range all {
		perSession[e.SessionID]++
	}
	if perSession[""] < sessions*runs {
		t.Fatalf("%d own entries, want %d commands at least", perSession[""], sessions*runs)
	}
	gr, err := h.Svc.Get(h.ctx, h.id(alice), g.ID)
	if err != nil || len(gr.LogMismatch) > 0 || gr.Usage.Calls != sessions*runs*calls {
		t.Fatalf("%+v, %v", gr, err)
	}
	_, getRead := counter.counts()

	// The page and one more, up to a mark of the chain before and after
	// it, and the grant's first entry.
	start := time.Now()
	scanned := historyPages(t, h, counter, g, all, limit, limit+1+2*256+1)
	perPage := time.Since(start) / time.Duration(len(scanned))

	// A page of its sessions reads their entries.
	var sessionPages []int
	for after := ""; ; {
		page, err := h.Svc.GrantSessions(h.ctx, h.id(alice), g.ID, grants.SessionsQuery{After: after, Limit: 2})
		if err != nil {
			t.Fatal(err)
		}
		_, n := counter.counts()
		sessionPages = append(sessionPages, n)
		most := 1 // the grant's first entry
		for _, s := range page.Sessions {
			if len(s.LogMismatch) > 0 || s.Calls != runs*calls {
				t.Fatalf("sessions page %d: session %+v", len(sessionPages), s)
			}
			most += perSession[s.ID]
		}
		if n > most {
			t.Errorf("sessions page %d: %d log entries read, its sessions hold %d", len(sessionPages), n, most-1)
		}
		if page.Next == "" {
			break
		}
		if len(sessionPages) > sessions {
			t.Fatalf("still a next page after %d pages", len(sessionPages))
		}
		after = page.Next
	}

	// Its record continues the proof (TestScatteredGrantRecordCostsItsOwn),
	// and a page after it too.
	if gr, err = h.Svc.Get(h.ctx, h.id(alice), g.ID); err != nil || len(gr.LogMismatch) > 0 {
		t.Fatalf("%q, %v", gr.LogMismatch, err)
	}
	counter.counts()
	if p, err := h.Svc.History(h.ctx, h.id(alice), g.ID, grants.EventsQuery{Limit: limit}); err != nil || len(p.LogMismatch) > 0 || len(p.Entries) != limit {
		t.Fatalf("history after Get: %d entries, %q, %v", len(p.Entries), p.LogMismatch, err)
	}
	if _, n := counter.counts(); n > limit+1+2*256+1 {
		t.Errorf("history page after Get: %d log entries read", n)
	}
	t.Logf("%d log entries (%d of the grant's own, %d sessions); Get: %d read; %d history pages of %d: page 1 %d, page 2 %d, all %d, %v a page; %d pages of 2 sessions: page 1 %d, all %d",
		len(all), perSession[""], sessions, getRead, len(scanned), limit, scanned[0], scanned[1], sum(scanned), perPage.Round(time.Microsecond),
		len(sessionPages), sessionPages[0], sum(sessionPages))
}

// TestScatteredGrantRecordCostsItsOwn: the record of a grant of about
// 12,000 entries whose own entries (1,200 commands) lie in about 1,200
// runs among its sessions' calls (Get: the console's grant page reads it
// on every view) reads, after the first read kept the grant's proof, the
// grant's own entries, its first entry and the entries appended since,
// not its whole log. It read its whole log on every read (12,019
// entries), the grant's own entries reading each run with its calls.
//
// Written with 10 sessions of 200 commands (20,023 entries, 2,003 own;
// bench/HISTORY.md): the bound is the grant's own entries, and the fault
// reads ten times as many at either size. 1,200 commands are still more
// than the 1,000 own entries a query reads, so the record's read goes on
// past its first batch.
func TestScatteredGrantRecordCostsItsOwn(t *testing.T) {
	t.Parallel()
	const sessions, runs, calls = 8, 150, 9
	h, counter, g, all := scatteredGrant(t, sessions, runs, calls)
	own := 0
	for _, e := range all {
		if e.SessionID == "" {
			own++
		}
	}
	if own < sessions*runs {
		t.Fatalf("%d own entries, want %d commands at least", own, sessions*runs)
	}
	get := func(what string, most int) (read, queries int, took time.Duration) {
		t.Helper()
		counter.counts()
		counter.queries()
		start := time.Now()
		gr, err := h.Svc.Get(h.ctx, h.id(alice), g.ID)
		took = time.Since(start)
		if err != nil || len(gr.LogMismatch) > 0 || gr.Usage.Calls != sessions*runs*calls {
			t.Fatalf("%s: %+v, %v", what, gr, err)
		}
		_, read = counter.counts()
		queries = counter.queries()
		if most > 0 && read > most {
			t.Errorf("%s: %d log entries read, want at most %d: the grant's %d own entries, its first and those appended since", what, read, most, own)
		}
		return read, queries, took
	}
	first, _, firstTook := get("the first read", 0)
	var reads, queries []int
	var took time.Duration
	for i := range 3 {
		n, q, d := get(fmt.Sprintf("read %d", i+2), own+1)
		reads, queries, took = append(reads, n), append(queries, q), took+d
	}
	// A command recorded since: read with the entries appended, and
	// again with the grant's own.
	if err := h.Svc.RecordCommand(h.ctx, h.id(bot), g.ID, []string{"aws", "s3", "ls", "more"}, ""); err != nil {
		t.Fatal(err)
	}
	if err := h.Log.Sync(h.ctx); err != nil {
		t.Fatal(err)
	}
	own++
	after, _, _ := get("the read after a command", own+1+1)
	t.Logf("%d log entries (%d of the grant's own); the first Get read %d (%v); the next three %v (%v queries), %v a Get; after a command %d",
		len(all), own-1, first, firstTook.Round(time.Microsecond), reads, queries, (took / 3).Round(time.Microsecond), after)
}

// TestScatteredGrantPagesTampered: a call of a grant whose own entries lie
// in more than 64 runs, changed in the store (its leaf hash made to match)
// after the first page of the grant's history, is reported on the page
// that holds it, then by the grant's record (derived from the whole log,
// which alone does not see such an edit) and by the pages after it, for
// the life of the proof. Such a grant kept no proof: each page derived
// the whole log, and the edit was reported nowhere.
func TestScatteredGrantPagesTampered(t *testing.T) {
	t.Parallel()
	const sessions, runs, calls, limit = 2, 40, 12, 100
	const differ = "log entries of this grant differ"
	h, counter, g, all := scatteredGrant(t, sessions, runs, calls)
	victim := int64(0)
	for _, e := range all[2*limit+10:] { // on page 3
		if e.Type == "session.call" {
			victim = e.Seq
			break
		}
	}
	if victim == 0 {
		t.Fatal("no entry to edit")
	}
	page := func(after int64) grants.HistoryPage {
		t.Helper()
		p, err := h.Svc.History(h.ctx, h.id(alice), g.ID, grants.EventsQuery{After: after, Limit: limit})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	p := page(0)
	if len(p.LogMismatch) > 0 {
		t.Fatalf("page 1: %q", p.LogMismatch)
	}
	counter.setTamper(func(f store.LogFilter, es []store.LogEntry) []store.LogEntry {
		return editRequestID(es, victim, true)
	})
	p = page(page(p.Next).Next)
	if !slices.ContainsFunc(p.Entries, func(e store.LogEntry) bool { return e.Seq == victim }) {
		t.Fatalf("page 3 does not hold entry #%d", victim)
	}
	if mm := strings.Join(p.LogMismatch, "\n"); !strings.Contains(mm, differ) {
		t.Errorf("page 3: the changed entry #%d is not reported: %q", victim, mm)
	}
	gr, err := h.Svc.Get(h.ctx, h.id(alice), g.ID)
	if err != nil {
		t.Fatal(err)
	}
	if mm := strings.Join(gr.LogMismatch, "\n"); !strings.Contains(mm, differ) {
		t.Errorf("Get after page 3: the change is not reported: %q", mm)
	}
	if mm := strings.Join(page(0).LogMismatch, "\n"); !strings.Contains(mm, differ) {
		t.Errorf("page 1 after Get: the change is not reported: %q", mm)
	}
}

// TestScatteredGrantRecordTampered: a command of a grant whose own
// entries lie in more than 64 runs among its calls, changed (its leaf
// hash made to match), removed, moved into a session, or joined by an
// entry of no session after the grant's record was read, is reported by
// the next read of the record, which reads the grant's own entries again
// through their index. The record was derived from the whole log on each
// read, which does not see such an edit: none of them was reported.
func TestScatteredGrantRecordTampered(t *testing.T) {
	t.Parallel()
	const sessions, runs, calls = 2, 40, 12
	const differ = "log entries of this grant differ"
	for _, tc := range []struct {
		name   string
		tamper func(es []store.LogEntry, victim int64) []store.LogEntry
	}{
		{"changed", func(es []store.LogEntry, victim int64) []store.LogEntry {
			for i, e := range es {
				if e.Seq == victim {
					es[i].Data = bytes.Replace(e.Data, []byte(`"ls"`), []byte(`"rm"`), 1)
					h := tlog.RecordHash(es[i].Data)
					es[i].LeafHash = h[:]
				}
			}
			return es
		}},
		{"removed", func(es []store.LogEntry, victim int64) []store.LogEntry {
			return slices.DeleteFunc(es, func(e store.LogEntry) bool { return e.Seq == victim })
		}},
		{"moved into a session", func(es []store.LogEntry, victim int64) []store.LogEntry {
			for i, e := range es {
				if e.Seq == victim {
					es[i].SessionID = "s_x"
				}
			}
			return es
		}},
		{"added", func(es []store.LogEntry, victim int64) []store.LogEntry {
			i := slices.IndexFunc(es, func(e store.LogEntry) bool { return e.Seq == victim })
			if i < 0 {
				return es
			}
			added := es[i]
			added.Seq++ // a call's place, as if it were the grant's own
			return slices.Insert(es, i+1, added)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h, counter, g, all := scatteredGrant(t, sessions, runs, calls)
			var commands []store.LogEntry
			for _, e := range all {
				if e.Type == "grant.command" {
					commands = append(commands, e)
				}
			}
			if len(commands) != sessions*runs || !bytes.Contains(commands[len(commands)/2].Data, []byte(`"ls"`)) {
				t.Fatalf("%d commands, want %d, with an ls to edit", len(commands), sessions*runs)
			}
			victim := commands[len(commands)/2].Seq
			for i := range 2 {
				gr, err := h.Svc.Get(h.ctx, h.id(alice), g.ID)
				if err != nil || len(gr.LogMismatch) > 0 {
					t.Fatalf("read %d: %q, %v", i+1, gr.LogMismatch, err)
				}
			}
			counter.setTamper(func(f store.LogFilter, es []store.LogEntry) []store.LogEntry {
				es = tc.tamper(es, victim)
				if f.NoSession {
					// As the store answers: only the entries of no session.
					es = slices.DeleteFunc(es, func(e store.LogEntry) bool { return e.SessionID != "" })
				}
				return es
			})
			gr, err := h.Svc.Get(h.ctx, h.id(alice), g.ID)
			if err != nil {
				t.Fatal(err)
			}
			if mm := strings.Join(gr.LogMismatch, "\n"); !strings.Contains(mm, differ) {
				t.Errorf("the grant's command #%d %s is not reported: %q", victim, tc.name, mm)
			}
		})
	}
}
