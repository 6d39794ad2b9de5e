package console

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/gateway"
	"github.com/airlock-dev/airlock/internal/httpapi"
)

// TestPagedTranscriptPairsAcrossPages: however a session's events are cut
// into pages, each page read with the events within pairWindow around it
// (as the session page reads them), every result is shown exactly once:
// under its request when it is logged within pairWindow of it (on the
// request's page, whichever page its batch is on), else where its batch
// was logged, whatever the pages. Each page paired only what it held, so a request whose
// result was logged on the next page was shown without it, and the
// result on the next page, alone.
func TestPagedTranscriptPairsAcrossPages(t *testing.T) {
	at := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	ev := func(seq int64, typ string, data any) httpapi.Event {
		b, err := json.Marshal(map[string]any{"seq": seq, "type": typ, "data": data})
		if err != nil {
			t.Fatal(err)
		}
		return httpapi.Event{Seq: seq, Time: at, Type: typ, Entry: b}
	}
	req := func(seq int64, id string) httpapi.Event {
		return ev(seq, "session.call", gateway.Call{Kind: "request", Action: "s3:GetObject", Resource: "arn:aws:s3:::b/" + id, Allowed: true, Params: map[string]string{"request_id": id}})
	}
	results := func(seq int64, ids ...string) httpapi.Event {
		var rs []gateway.Call
		for _, id := range ids {
			rs = append(rs, gateway.Call{Kind: "result", Status: "200 " + id, Params: map[string]string{"request_id": id}})
		}
		return ev(seq, "session.results", map[string]any{"results": rs})
	}
	far := int64(pairWindow + 1)
	events := []httpapi.Event{
		ev(1, "session.started", nil),
		req(2, "a"), req(3, "b"), req(5, "c"),
		results(7, "a", "b"),
		req(8, "d"),
		results(9, "c", "d", "x"), // x answers nothing
		req(10, "e"),
		// A request id used twice: each result answers the request
		// before it.
		req(11, "r"), results(12, "r"), req(13, "r"), results(14, "r"),
		// Logged further than pairWindow from its request: at its
		// batch, even where both are on one page.
		results(10+far, "e"),
		ev(11+far, "session.ended", nil),
	}
	// The lines every paging must show, in order.
	want := []string{
		"#1 session.started",
		"#2 s3:GetObject arn:aws:s3:::b/a", "#7.1 → 200 a",
		"#3 s3:GetObject arn:aws:s3:::b/b", "#7.2 → 200 b",
		"#5 s3:GetObject arn:aws:s3:::b/c", "#9.1 → 200 c",
		"#8 s3:GetObject arn:aws:s3:::b/d", "#9.2 → 200 d",
		"#9.3 → 200 x",
		"#10 s3:GetObject arn:aws:s3:::b/e",
		"#11 s3:GetObject arn:aws:s3:::b/r", "#12.1 → 200 r",
		"#13 s3:GetObject arn:aws:s3:::b/r", "#14.1 → 200 r",
		fmt.Sprintf("#%d.1 → 200 e", 10+far),
		fmt.Sprintf("#%d session.ended", 11+far),
	}
	for size := 1; size <= len(events); size++ {
		var got []string
		for from := 0; from < len(events); from += size {
			page := events[from:min(from+size, len(events))]
			lo, hi := page[0].Seq, page[len(page)-1].Seq
			var around []httpapi.Event
			for _, e := range events {
				if (e.Seq < lo && e.Seq >= lo-pairWindow) || (e.Seq > hi && e.Seq <= hi+pairWindow) {
					around = append(around, e)
				}
			}
			for _, l := range pagedTranscript(page, around) {
				got = append(got, l.Ref+" "+l.Text)
			}
		}
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("pages of %d events:\n%s\nwant:\n%s", size, strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	}
}
