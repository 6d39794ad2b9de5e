package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/client"
	"github.com/airlock-dev/airlock/internal/gateway"
	"github.com/airlock-dev/airlock/internal/grants"
	"github.com/airlock-dev/airlock/internal/httpapi"
	"github.com/airlock-dev/airlock/internal/model"
)

// TestTranscriptPagedAsWhole: a recording given a page at a time prints
// what the whole of it given at once prints (wholeTranscript), wherever
// the pages split it: results are paired with requests on an earlier
// page, requests wait for results on a later one, and a result logged
// further than httpapi.PairWindow after its request is printed where its
// batch was logged, as the console shows it.
func TestTranscriptPagedAsWhole(t *testing.T) {
	at := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	var events []httpapi.Event
	seq := int64(0)
	add := func(typ, entry string) {
		seq++
		events = append(events, httpapi.Event{Seq: seq, Time: at.Add(time.Duration(seq) * time.Millisecond), Type: typ, Entry: json.RawMessage(entry)})
	}
	add("session.started", `{"type":"session.started","data":{"client":"c"}}`)
	n := 0
	for batch := 0; batch < 6; batch++ {
		var results []string
		for i := 0; i < 3; i++ {
			n++
			allowed := n%4 != 0
			add("session.call", fmt.Sprintf(`{"type":"session.call","data":{"kind":"request","action":"pg:select","resource":"db","allowed":%t,"params":{"statement":"select %d","n":"%d"}}}`, allowed, n, n))
			if allowed {
				results = append(results, fmt.Sprintf(`{"kind":"result","action":"pg:select","allowed":true,"params":{"n":"%d"},"status":"SELECT %d","rows":%d}`, n, n, n))
			}
		}
		// A result of no request, and one without a key.
		results = append(results, fmt.Sprintf(`{"kind":"result","action":"pg:select","allowed":true,"params":{"n":"%d"},"status":"SELECT 0"}`, 900+batch), `{"kind":"result","status":"?"}`)
		add("session.results", `{"type":"session.results","data":{"results":[`+strings.Join(results, ",")+`]}}`)
		if batch == 2 {
			// A results entry that does not parse, printed as an entry.
			add("session.results", `{"type":"session.results","data":{"results":7}}`)
		}
	}
	// A request logged after its own result (printed without it), and an
	// AWS call by request id.
	add("session.call", `{"type":"session.call","data":{"kind":"request","action":"pg:select","resource":"db","allowed":true,"params":{"statement":"late","n":"901"}}}`)
	add("session.call", `{"type":"session.call","data":{"kind":"request","action":"s3:GetObject","resource":"arn:aws:s3:::b/k","allowed":true,"params":{"request_id":"r1"}}}`)
	add("session.results", `{"type":"session.results","data":{"results":[{"kind":"result","action":"s3:GetObject","params":{"request_id":"r1"},"status":"200"}]}}`)
	// Other sessions' entries between requests and their results, logged
	// in one batch: httpapi.PairWindow after the second request, under
	// it; one more after the first, at the batch.
	add("session.call", `{"type":"session.call","data":{"kind":"request","action":"s3:GetObject","resource":"arn:aws:s3:::b/far","allowed":true,"params":{"request_id":"far"}}}`)
	add("session.call", `{"type":"session.call","data":{"kind":"request","action":"s3:GetObject","resource":"arn:aws:s3:::b/near","allowed":true,"params":{"request_id":"near"}}}`)
	seq += httpapi.PairWindow - 1
	add("session.results", `{"type":"session.results","data":{"results":[{"kind":"result","action":"s3:GetObject","params":{"request_id":"far"},"status":"200 far"},{"kind":"result","action":"s3:GetObject","params":{"request_id":"near"},"status":"200 near"}]}}`)
	add("session.ended", `{"type":"session.ended","data":{}}`)

	var want bytes.Buffer
	wholeTranscript(&want, events)
	if !strings.Contains(want.String(), "select 3") || !strings.Contains(want.String(), "→ 200") ||
		!regexp.MustCompile(`b/far .*\n.*b/near .*\n +#\d+\.2 +→ 200 near\n +#\d+\.1 +2026-[-\d]+ [\d:.]+Z +→ 200 far\n`).MatchString(want.String()) {
		t.Fatalf("the reference transcript lacks its lines:\n%s", want.String())
	}
	var once bytes.Buffer
	writeTranscript(&once, events)
	if once.String() != want.String() {
		t.Fatalf("all at once:\n%s\nwant:\n%s", once.String(), want.String())
	}
	for size := 1; size <= len(events); size++ {
		var got bytes.Buffer
		tr := newTranscript(&got)
		for i := 0; i < len(events); i += size {
			tr.Add(events[i:min(i+size, len(events))])
		}
		tr.Close()
		if got.String() != want.String() {
			t.Errorf("pages of %d:\n%s\nwant:\n%s", size, got.String(), want.String())
		}
	}
}

// TestSessionShowPaged: session show follows the pages of a session's
// recording and prints, as text and as JSON, what it printed when it read
// the whole recording at once; each session's record is printed once.
func TestSessionShowPaged(t *testing.T) {
	l := startServer(t, nil)
	ctx := context.Background()
	bot := client.New("http://"+l.apiAddr, l.botKey)
	alice := client.New("http://"+l.apiAddr, l.aliceKey)
	g, err := bot.Request(ctx, grants.RequestInput{Target: "aws-prod", Scope: []string{"s3:GetObject,s3:ListBucket arn:aws:s3:::logs/app/*"}, Duration: "10m", Reason: "paging"})
	if err != nil || g.Status != model.Active {
		t.Fatalf("request: %v (%s)", err, g.Status)
	}
	g, err = alice.Grant(ctx, g.ID)
	if err != nil {
		t.Fatal(err)
	}
	gg, err := l.srv.Service.Authority().Lookup(g.CredentialID)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for s := 0; s < 2; s++ {
		ses, err := l.srv.Service.Authority().StartSession(ctx, gg, "client")
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, ses.ID)
		for i := 0; i < 12; i++ {
			id := fmt.Sprintf("req-%d-%d", s, i)
			if err := ses.Request(ctx, gateway.Call{Action: "s3:GetObject", Resource: fmt.Sprintf("arn:aws:s3:::logs/app/k%02d", i), Allowed: true, Params: map[string]string{"request_id": id}}); err != nil {
				t.Fatal(err)
			}
			if err := ses.Result(ctx, gateway.Call{Action: "s3:GetObject", Status: "200", BytesOut: int64(i), Params: map[string]string{"request_id": id}}); err != nil {
				t.Fatal(err)
			}
		}
		if err := ses.End(ctx); err != nil {
			t.Fatal(err)
		}
	}

	// The JSON of every whole recording, as session show wrote it.
	var whole []httpapi.SessionResponse
	for _, id := range ids {
		v, err := alice.SessionEventsPage(ctx, id, "", grants.MaxEventsPage)
		if err != nil || v.Next != "" || len(v.Events) < 14 {
			t.Fatalf("session %s: %d events, next %q, %v", id, len(v.Events), v.Next, err)
		}
		whole = append(whole, v)
	}
	var wantJSON bytes.Buffer
	enc := json.NewEncoder(&wantJSON)
	enc.SetIndent("", "  ")
	if err := enc.Encode(whole); err != nil {
		t.Fatal(err)
	}
	var wantText bytes.Buffer
	for _, v := range whole {
		s := v.Session
		linef(&wantText, "Session %s  grant %s  %s on %s  from %s", s.ID, s.GrantID, s.Identity, s.Target, dash(s.Client))
		linef(&wantText, "  %s → %s  %d calls, %d denied, %d bytes in, %d bytes out", ts(s.StartedAt), ts(s.EndedAt), s.Calls, s.Denied, s.BytesIn, s.BytesOut)
		wholeTranscript(&wantText, v.Events)
	}

	defer func(n int) { sessionEventsPage = n }(sessionEventsPage)
	for _, page := range []int{grants.MaxEventsPage, 1, 3, 7} {
		sessionEventsPage = page
		for _, arg := range []string{g.ID, ids[1]} {
			code, out, errOut := l.as(l.aliceKey, "session", "show", arg)
			want := wantText.String()
			if arg == ids[1] {
				want = want[strings.Index(want, "Session "+ids[1]):]
			}
			if code != 0 || out != want {
				t.Errorf("pages of %d, session show %s: exit %d (%s)\n%s\nwant:\n%s", page, arg, code, errOut, out, want)
			}
		}
		code, out, errOut := l.as(l.aliceKey, "session", "show", g.ID, "-o", "json")
		if code != 0 || out != wantJSON.String() {
			t.Errorf("pages of %d, session show -o json: exit %d (%s)\n%s\nwant:\n%s", page, code, errOut, out, wantJSON.String())
		}
		if n := strings.Count(out, `"session": {`); n != 2 {
			t.Errorf("pages of %d: %d session records in the JSON, want 2", page, n)
		}
	}
}

// wholeTranscript is writeTranscript from every event at once: each
// result under the request of its key logged last before it, with no
// request or result of the key between them, when it is logged within
// httpapi.PairWindow of it (as the console pairs them); any other where
// its batch was logged.
func wholeTranscript(w io.Writer, events []httpapi.Event) {
	type res struct {
		seq  int64
		idx  int // 1-based place in its session.results entry
		call gateway.Call
		used bool
	}
	answer := map[int64]*res{}
	batches := map[int64][]*res{}
	last := map[string]int64{}
	for _, e := range events {
		var ent struct {
			Data struct {
				Results []gateway.Call `json:"results"`
			} `json:"data"`
		}
		if e.Type != "session.results" {
			if c, ok := httpapi.EntryCall(e.Entry); ok && c.Kind != "result" && httpapi.PairKey(c) != "" {
				last[httpapi.PairKey(c)] = e.Seq
			}
			continue
		}
		if json.Unmarshal(e.Entry, &ent) != nil {
			continue
		}
		for i, c := range ent.Data.Results {
			r := &res{seq: e.Seq, idx: i + 1, call: c}
			batches[e.Seq] = append(batches[e.Seq], r)
			if req, ok := last[httpapi.PairKey(c)]; ok && httpapi.PairKey(c) != "" && e.Seq-req <= httpapi.PairWindow {
				answer[req], r.used = r, true
			}
			delete(last, httpapi.PairKey(c))
		}
	}
	for _, e := range events {
		if rs, ok := batches[e.Seq]; ok {
			for _, r := range rs {
				if !r.used {
					linef(w, "  %-7s %s  %s", resultRef(r.seq, r.idx), tsMilli(e.Time), renderCall(r.call))
				}
			}
			continue
		}
		line, ok := callLine(e.Entry)
		if !ok {
			linef(w, "  #%-6d %s  %-16s %s", e.Seq, tsMilli(e.Time), e.Type, httpapi.EntrySummary(e.Entry))
			continue
		}
		linef(w, "  #%-6d %s  %s", e.Seq, tsMilli(e.Time), line)
		if r := answer[e.Seq]; r != nil {
			linef(w, "  %-7s %s  %s", resultRef(r.seq, r.idx), strings.Repeat(" ", len(tsMilli(e.Time))), renderCall(r.call))
		}
	}
}
