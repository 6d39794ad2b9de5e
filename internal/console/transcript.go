package console

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/airlock-dev/airlock/internal/gateway"
	"github.com/airlock-dev/airlock/internal/httpapi"
)

// line is one transcript line: a request (allowed or denied), the result
// that answers it, or another session event. Text is raw here; the
// templates escape it.
type line struct {
	Ref  string // "#12", or "#13.2" for the second result logged in entry 13
	Time string
	// Kind is "allowed", "denied", "result", "event", or "refused": an
	// entry a log.refused entry names (its caller was told it failed, and
	// the session's record does not count it).
	Kind    string
	Text    string
	Details string
	// SQL marks Text as a SQL statement, the one text shown on several
	// lines as written: a newline anywhere else (an S3 key, an upstream's
	// error) is escaped like any control character, or it would draw
	// what looks like further lines of the transcript.
	SQL bool
}

// transcript lays a session's events out as `airlock session show` does:
// in log order, each result right after the request it answers. Results
// are logged in batches (session.results) after their requests and are
// paired with them by statement number (PostgreSQL) or request id (AWS);
// a result that pairs with nothing stays where its batch was logged.
func transcript(events []httpapi.Event) []line { return pagedTranscript(events, nil) }

// pairWindow is how far in the log (sequence numbers) a result may be
// logged after its request and still be shown under it
// (httpapi.PairWindow, which airlock session show uses too). A session
// page reads the events this far before and after its own for them: one
// page's worth, as the service bounds a read (grants.MaxEventsPage), less
// one so that a read of a page's worth from the start covers it.
const pairWindow = httpapi.PairWindow

// pagedTranscript is the transcript of page, one page of a session's
// events, with around the session's events within pairWindow before and
// after it (or nil). A request and a result pair when they are
// consecutive among the events of their pairing key (no request or result
// with the key between them) and the result is logged within pairWindow
// of the request. That depends on neither page's cursor, and is decided
// alike on the request's page and on the result's, as each reads
// everything between the two: a result that answers a request on the
// page before is shown there, under it, and not again where its batch was
// logged; any other result is shown at its batch, even on the request's
// page (as airlock session show prints it, whatever its pages).
func pagedTranscript(page, around []httpapi.Event) []line {
	onPage := map[int64]bool{}
	for _, e := range page {
		onPage[e.Seq] = true
	}
	all := append(slices.Clone(page), around...)
	slices.SortFunc(all, func(a, b httpapi.Event) int { return cmp.Compare(a.Seq, b.Seq) })
	all = slices.CompactFunc(all, func(a, b httpapi.Event) bool { return a.Seq == b.Seq })
	var pairs httpapi.ResultPairer
	answer := map[int64]*httpapi.PairedResult{}    // a request's result, by the request's seq
	batches := map[int64][]*httpapi.PairedResult{} // the page's results entries
	for _, e := range all {
		rs, ok := pairs.Add(e)
		if !ok {
			continue
		}
		for i := range rs {
			r := &rs[i]
			if r.Answers != 0 {
				answer[r.Answers] = r
			}
			if onPage[e.Seq] {
				batches[e.Seq] = append(batches[e.Seq], r)
			}
		}
	}
	var out []line
	resultLine := func(r *httpapi.PairedResult, t string) line {
		return line{Ref: fmt.Sprintf("#%d.%d", r.Seq, r.Idx), Time: t, Kind: "result", Text: renderResult(r.Call)}
	}
	for _, e := range page {
		t := e.Time.UTC().Format("15:04:05.000")
		if rs, ok := batches[e.Seq]; ok {
			for _, r := range rs {
				if r.Answers == 0 {
					out = append(out, resultLine(r, t))
				}
			}
			continue
		}
		c, ok := httpapi.EntryCall(e.Entry)
		if !ok || (e.Void && c.Kind == "result") {
			l := line{Ref: fmt.Sprintf("#%d", e.Seq), Time: t, Kind: "event", Text: e.Type, Details: httpapi.EntrySummary(e.Entry)}
			if e.Void {
				l.Kind = "refused"
			}
			out = append(out, l)
			continue
		}
		if c.Kind == "result" {
			out = append(out, line{Ref: fmt.Sprintf("#%d", e.Seq), Time: t, Kind: "result", Text: renderResult(c)})
			continue
		}
		l := line{Ref: fmt.Sprintf("#%d", e.Seq), Time: t, Kind: "allowed"}
		switch {
		case e.Void:
			// Not a call made: its caller was refused.
			l.Kind = "refused"
		case !c.Allowed:
			l.Kind = "denied"
		}
		l.Text, l.Details = renderRequest(c)
		_, l.SQL = c.Params["statement"]
		out = append(out, l)
		if r := answer[e.Seq]; r != nil {
			out = append(out, resultLine(r, ""))
		}
	}
	return out
}

// renderRequest is a request's main text (the SQL statement, or the
// action and resource) and its other parameters.
func renderRequest(c gateway.Call) (text, details string) {
	text, sql, details := httpapi.RequestText(c)
	if sql {
		text = "SQL> " + text
	}
	return text, details
}

func renderResult(c gateway.Call) string {
	return "→ " + httpapi.ResultText(c)
}

// historyLine is one log entry of a grant.
type historyLine struct {
	Seq     int64
	Time    time.Time
	Type    string
	Summary string
	Void    bool // a log.refused entry names it: the change was refused
}

// history is a grant's own entries: its sessions' entries (every call and
// result) are in their transcripts, and listing them again here made the
// grant page as long as all of its sessions together, twice.
func history(es []httpapi.Event) []historyLine {
	var out []historyLine // not len(es): most of them may be the sessions'
	for _, e := range es {
		if strings.HasPrefix(e.Type, "session.") {
			continue
		}
		out = append(out, historyLine{Seq: e.Seq, Time: e.Time, Type: e.Type, Summary: httpapi.EntrySummary(e.Entry), Void: e.Void})
	}
	return out
}
