package review

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/gateway"
	"github.com/airlock-dev/airlock/internal/model"
)

// refusedLog builds a log of one grant and session s_1 under it, as the
// log writes them, from the calls given one entry at a time: a
// []gateway.Call of one request is a session.call entry, any other a
// session.results entry.
type refusedLog struct {
	t   *testing.T
	d   *Deriver
	seq int64
	at  time.Time
}

func newRefusedLog(t *testing.T) *refusedLog {
	l := &refusedLog{t: t, d: NewDeriver(), at: time.Date(2026, 12, 6, 1, 0, 0, 0, time.UTC)}
	l.add(`"type":"grant.requested","grant":"g_1","actor":"bot","data":{"identity":"bot","target":"orders-db","scope":["pg:select orders.public.customers"],"duration":"10m","reason":"count"}`)
	l.add(`"type":"session.started","grant":"g_1","session":"s_1","actor":"bot","data":{"client":"psql","target":"orders-db"}`)
	return l
}

func (l *refusedLog) add(rest string) {
	l.t.Helper()
	l.seq++
	l.at = l.at.Add(time.Millisecond)
	if err := l.d.Add(fmt.Appendf(nil, `{"seq":%d,"time":%q,%s}`, l.seq, l.at.Format(time.RFC3339Nano), rest)); err != nil {
		l.t.Fatal(err)
	}
}

func (l *refusedLog) calls(cs ...gateway.Call) {
	l.t.Helper()
	if len(cs) == 1 && cs[0].Kind == "request" {
		b, _ := cs[0].AppendJSON(nil)
		l.add(`"type":"session.call","grant":"g_1","session":"s_1","actor":"bot","data":` + string(b))
		return
	}
	b := []byte(`{"results":[`)
	for i, c := range cs {
		if i > 0 {
			b = append(b, ',')
		}
		b, _ = c.AppendJSON(b)
	}
	l.add(`"type":"session.results","grant":"g_1","session":"s_1","actor":"bot","data":` + string(b) + `]}`)
}

func (l *refusedLog) end() {
	l.add(`"type":"session.ended","grant":"g_1","session":"s_1","actor":"bot","data":{}`)
}

func (l *refusedLog) session() (model.Session, bool) {
	s, ended, ok := l.d.Session("s_1")
	if !ok {
		l.t.Fatal("no session s_1")
	}
	return s, ended
}

func pgRequest(action, n string) gateway.Call {
	return gateway.Call{Kind: "request", Action: action, Resource: "orders", Allowed: true, Params: map[string]string{"n": n}}
}

func pgResult(action, n, err string, refused bool) gateway.Call {
	return gateway.Call{Kind: "result", Action: action, Resource: "orders", Allowed: true, Refused: refused, Params: map[string]string{"n": n}, Error: err}
}

const denied42501 = "42501 permission denied for table customers"

// TestRefusedResultIsDenied: a statement the database refused for lack
// of privilege (a result marked Refused) is a denied call, not a call, and
// its pair leaves the scope used unless another of its calls was not
// refused: one still waiting for its result (the session may have ended
// in a crash) or one that ran. A result without the mark, as every log
// written before it has, is counted as it always was.
func TestRefusedResultIsDenied(t *testing.T) {
	for _, tc := range []struct {
		name          string
		log           [][]gateway.Call
		used          []string
		calls, denied int64
	}{
		{"an insert refused", [][]gateway.Call{
			{pgRequest("pg:select", "1")}, {pgRequest("pg:insert", "2")},
			{pgResult("pg:select", "1", "", false), pgResult("pg:insert", "2", denied42501, true)},
		}, []string{"pg:select orders"}, 1, 1},
		{"a log written before the mark", [][]gateway.Call{
			{pgRequest("pg:select", "1")}, {pgRequest("pg:insert", "2")},
			{pgResult("pg:select", "1", "", false), pgResult("pg:insert", "2", denied42501, false)},
		}, []string{"pg:select orders", "pg:insert orders"}, 2, 0},
		{"another insert ran", [][]gateway.Call{
			{pgRequest("pg:insert", "1")}, {pgRequest("pg:insert", "2")},
			{pgResult("pg:insert", "1", "", false), pgResult("pg:insert", "2", denied42501, true)},
		}, []string{"pg:insert orders"}, 1, 1},
		{"another insert's result never came", [][]gateway.Call{
			{pgRequest("pg:insert", "1")}, {pgRequest("pg:insert", "2")},
			{pgResult("pg:insert", "2", denied42501, true)},
		}, []string{"pg:insert orders"}, 1, 1},
		{"the refused insert is sent again and runs", [][]gateway.Call{
			{pgRequest("pg:insert", "1")}, {pgResult("pg:insert", "1", denied42501, true)},
			{pgRequest("pg:insert", "2")}, {pgResult("pg:insert", "2", "", false)},
		}, []string{"pg:insert orders"}, 1, 1},
		{"a result refused twice counts once", [][]gateway.Call{
			{pgRequest("pg:select", "1")}, {pgRequest("pg:insert", "2")},
			{pgResult("pg:insert", "2", denied42501, true)}, {pgResult("pg:insert", "2", denied42501, true)},
		}, []string{"pg:select orders"}, 1, 1},
		{"a refused result without its request", [][]gateway.Call{
			{pgRequest("pg:select", "1")}, {pgResult("pg:insert", "7", denied42501, true)},
		}, []string{"pg:select orders"}, 1, 0},
		{"a request with others' actions stays used", [][]gateway.Call{
			{{Kind: "request", Action: "pg:execute", Resource: "orders", Also: []string{"pg:insert orders"}, Allowed: true}},
			{{Kind: "result", Action: "pg:execute", Resource: "orders", Also: []string{"pg:insert orders"}, Allowed: true, Refused: true, Error: denied42501}},
		}, []string{"pg:execute orders", "pg:insert orders"}, 1, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := newRefusedLog(t)
			for _, cs := range tc.log {
				l.calls(cs...)
			}
			l.end()
			s, _ := l.session()
			if !slices.Equal(s.Used, tc.used) || s.Calls != tc.calls || s.Denied != tc.denied {
				t.Errorf("derived used %q, %d calls, %d denied; want %q, %d calls, %d denied", s.Used, s.Calls, s.Denied, tc.used, tc.calls, tc.denied)
			}
			// The recorder counts the same calls through Count; the
			// recovery after a crash through CountCall.
			var r, c model.Session
			var tr, tc2 Tally
			for _, cs := range tc.log {
				for i := range cs {
					Count(&r, &tr, &cs[i])
					c = CountCall(c, &tc2, cs[i])
				}
			}
			for _, got := range []model.Session{r, c} {
				if !slices.Equal(got.Used, s.Used) || got.Calls != s.Calls || got.Denied != s.Denied {
					t.Errorf("counted %q, %d calls, %d denied; derived %q, %d, %d", got.Used, got.Calls, got.Denied, s.Used, s.Calls, s.Denied)
				}
			}
		})
	}
}

// TestRefusedSummaryVerifies: `audit verify` compares each stored summary
// with the log's. A live session's summary, stored before the refusal's
// result was logged, still counts the insert as a call and lists it; that
// agrees while the session is open, not once it ended, and no other
// difference is let through. A summary stored by the code before the mark
// (the insert used, no denied), of a log without it, still agrees.
func TestRefusedSummaryVerifies(t *testing.T) {
	l := newRefusedLog(t)
	l.calls(pgRequest("pg:select", "1"))
	l.calls(pgRequest("pg:insert", "2"))
	before := model.Session{ID: "s_1", GrantID: "g_1", Identity: "bot", Target: "orders-db", Client: "psql", StartedAt: time.Date(2026, 12, 6, 1, 0, 0, 2e6, time.UTC),
		Calls: 2, Used: []string{"pg:select orders", "pg:insert orders"}}
	l.calls(pgResult("pg:select", "1", "", false), pgResult("pg:insert", "2", denied42501, true))
	log, ended := l.session()
	if ended {
		t.Fatal("the session ended")
	}
	diff := func(stored model.Session) []string {
		lg, ended := l.session()
		return DiffSession(stored, lg, ended, l.d.SessionCapped("s_1"))
	}
	if d := diff(before); d != nil {
		t.Errorf("a live summary stored before the refusal: %q", d)
	}
	now := log
	now.StartedAt = before.StartedAt
	if d := diff(now); d != nil {
		t.Errorf("the live summary now: %q", d)
	}
	for name, edit := range map[string]func(*model.Session){
		"a pair never used":        func(s *model.Session) { s.Used = append(s.Used, "pg:delete orders") },
		"a call more":              func(s *model.Session) { s.Calls = 3 },
		"more denied than the log": func(s *model.Session) { s.Denied = 2 },
	} {
		s := before
		s.Used = slices.Clone(before.Used)
		edit(&s)
		if d := diff(s); d == nil {
			t.Errorf("%s: agrees with the log", name)
		}
	}
	// The Grant's usage, summed from its sessions, as the store sums it.
	g, live, _ := l.d.Grant("g_1")
	stored := g
	stored.Usage = model.Usage{Sessions: 1, Calls: 2, ScopeUsed: []string{"pg:insert orders", "pg:select orders"}}
	if d := DiffGrant(stored, g, live, l.d.GrantCapped("g_1")); d != nil {
		t.Errorf("a live grant's usage stored before the refusal: %q", d)
	}

	l.end()
	if d := diff(before); !slices.ContainsFunc(d, func(s string) bool { return strings.HasPrefix(s, "used is") }) ||
		!slices.ContainsFunc(d, func(s string) bool { return strings.HasPrefix(s, "calls is 2") }) {
		t.Errorf("an ended session's summary stored before the refusal: %q, want used and calls reported", d)
	}
	ended2, _ := l.session()
	ended2.StartedAt = before.StartedAt
	if d := diff(ended2); d != nil {
		t.Errorf("the ended session's own summary: %q", d)
	}
	g, live, _ = l.d.Grant("g_1")
	if d := DiffGrant(stored, g, live, l.d.GrantCapped("g_1")); d == nil {
		t.Error("an ended grant's usage stored before the refusal agrees with the log")
	}

	// A log written before the mark, with the summary its code stored.
	old := newRefusedLog(t)
	old.calls(pgRequest("pg:select", "1"))
	old.calls(pgRequest("pg:insert", "2"))
	old.calls(pgResult("pg:select", "1", "", false), pgResult("pg:insert", "2", denied42501, false))
	old.end()
	lg, oe := old.session()
	before.EndedAt = lg.EndedAt
	if d := DiffSession(before, lg, oe, old.d.SessionCapped("s_1")); d != nil {
		t.Errorf("an old log with its old summary: %q", d)
	}
}

// TestRefusedAtTheCap: once a session's used list is full (MaxUsed), a
// pair all of whose calls were refused stays in it, so that the list
// still says it may have been cut and no later pair takes its place in
// one order of counting and not in another; the call still moves to the
// denied, once.
func TestRefusedAtTheCap(t *testing.T) {
	var s model.Session
	var tl Tally
	for i := range MaxUsed - 1 {
		c := gateway.Call{Kind: "request", Action: "pg:select", Resource: fmt.Sprintf("db%03d", i), Allowed: true}
		Count(&s, &tl, &c)
	}
	calls := []gateway.Call{
		pgRequest("pg:insert", "100"),
		pgResult("pg:insert", "100", denied42501, true),
		pgResult("pg:insert", "100", denied42501, true), // the same result again
		pgRequest("pg:delete", "101"),                   // past the cut
		pgResult("pg:delete", "101", denied42501, true),
	}
	for i := range calls {
		Count(&s, &tl, &calls[i])
	}
	if len(s.Used) != MaxUsed || !slices.Contains(s.Used, "pg:insert orders") || slices.Contains(s.Used, "pg:delete orders") {
		t.Errorf("used at the cap: %d pairs, insert %v, delete %v", len(s.Used), slices.Contains(s.Used, "pg:insert orders"), slices.Contains(s.Used, "pg:delete orders"))
	}
	// The delete past the cut is not in the tally: its refusal is left
	// alone rather than taken for another call's.
	if s.Calls != MaxUsed || s.Denied != 1 {
		t.Errorf("%d calls, %d denied; want %d calls, 1 denied", s.Calls, s.Denied, MaxUsed)
	}
}
