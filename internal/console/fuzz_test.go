package console

import (
	"bytes"
	"encoding/json"
	"html/template"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/airlock-dev/airlock/internal/gateway"
	"github.com/airlock-dev/airlock/internal/httpapi"
	"github.com/airlock-dev/airlock/internal/model"
)

// FuzzTranscript renders a session whose recorded call and result carry
// arbitrary text (what a client sends reaches the recording) and checks
// that nothing of it reaches the page raw: no control character, no
// bidirectional override, no markup.
func FuzzTranscript(f *testing.F) {
	for _, s := range []string{"plain", "<script>alert(1)</script>", "\x1b[2K\rforged", "\u202eevil", "\xff\xfe", "a\nb\tc", "\u0085\u2028", `"}]}`} {
		f.Add(s)
	}
	tmpl := template.Must(template.New("").Funcs(funcs).ParseFS(templateFS, "templates/*.html"))
	f.Fuzz(func(t *testing.T, s string) {
		call := gateway.Call{Kind: "request", Action: "s3:GetObject", Resource: "arn:aws:s3:::b/" + s, Allowed: len(s)%2 == 0,
			Params: map[string]string{"key": s, "request_id": "r1", "statement": s}, Error: s}
		res := gateway.Call{Kind: "result", Status: s, Error: s, Params: map[string]string{"request_id": "r1"}}
		entry := func(typ string, data any) json.RawMessage {
			b, err := json.Marshal(map[string]any{"type": typ, "actor": s, "data": data})
			if err != nil {
				t.Fatal(err)
			}
			return b
		}
		now := time.Now()
		events := []httpapi.Event{
			{Seq: 1, Time: now, Type: "session.started", Entry: entry("session.started", map[string]any{"client": s})},
			{Seq: 2, Time: now, Type: "session.call", Entry: entry("session.call", call)},
			{Seq: 3, Time: now, Type: "session.results", Entry: entry("session.results", map[string]any{"results": []gateway.Call{res}})},
		}
		v := sessionView{Session: model.Session{ID: "s_x", GrantID: "g_x", Identity: s, Target: s, Client: s, Used: []string{s}}, Transcript: transcript(events), Inline: true}
		var buf bytes.Buffer
		if err := tmpl.ExecuteTemplate(&buf, "session", page{Title: s, Who: s, Data: v}); err != nil {
			t.Fatal(err)
		}
		out := buf.String()
		if !utf8.ValidString(out) {
			t.Fatalf("page is not UTF-8")
		}
		for i, r := range out {
			if (r < 0x20 && r != '\n') || r == 0x7f || (r >= 0x80 && r <= 0x9f) || (r >= 0x202a && r <= 0x202e) || (r >= 0x2066 && r <= 0x2069) || r == 0x2028 || r == 0x2029 || r == 0x200e || r == 0x200f || r == 0x061c {
				t.Fatalf("raw %U at %d in the page", r, i)
			}
		}
		low := strings.ToLower(out)
		if strings.Count(low, "<script") != 1 { // the page's own script tag only
			t.Fatalf("markup from the recording reached the page")
		}
	})
}
