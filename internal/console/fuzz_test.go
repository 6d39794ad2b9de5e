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

// FuzzSSOFlow reads arbitrary sign-in cookies and callback parameters
// (both come from the browser): a cookie decodeFlow accepts has every
// field encode needs and reads back the same; any flow encode writes
// reads back as it was; the state check accepts only the cookie's own,
// non-empty state; and a provider's error code is shown only as bounded
// printable ASCII with nothing that could close a quoted string.
func FuzzSSOFlow(f *testing.F) {
	good := ssoFlow{state: "st4te", nonce: "n0nce", verifier: "v3rifier", redirect: "https://airlock.example/console/sso/callback", started: time.Unix(1748779200, 0)}
	f.Add(good.encode(), "st4te", "access_denied", "x", "y", "z")
	good.previous = hashID("a previous session")
	f.Add(good.encode(), "st4te", "", "x", "y", "z")
	f.Add("a.b.c.aHR0cHM6Ly94.-1", "a", "", "", "", "")
	f.Add("a.b.c.%%.1", "a", "<script>", "", "", "")
	f.Add("a.b.c..+9223372036854775807", "", "a\"b\\c", ".", "", "")
	f.Add("....", ".", strings.Repeat("e", 65), "\x00", "\xff", "")
	f.Fuzz(func(t *testing.T, cookie, state, oauthErr, a, b, redirect string) {
		if fl, ok := decodeFlow(cookie); ok {
			if fl.state == "" || fl.nonce == "" || fl.verifier == "" {
				t.Fatalf("accepted a flow with an empty field: %+v", fl)
			}
			again, ok := decodeFlow(fl.encode())
			if !ok || again != fl {
				t.Fatalf("flow %+v reads back as %+v (%v)", fl, again, ok)
			}
			if tokenOK(fl.state, state) != (state == fl.state) {
				t.Fatalf("state %q against %q", state, fl.state)
			}
		}
		if tokenOK("", state) || tokenOK(state, "") {
			t.Fatal("an empty state matched")
		}
		// Fields as the console makes them: base64url tokens, so no ".".
		if a != "" && b != "" && !strings.Contains(a+b, ".") {
			fl := ssoFlow{state: a, nonce: b, verifier: a + b, redirect: redirect, started: time.Unix(int64(len(cookie))*1e6, 0)}
			back, ok := decodeFlow(fl.encode())
			if !ok || back != fl {
				t.Fatalf("flow %+v reads back as %+v (%v)", fl, back, ok)
			}
		}
		shown := oauthError(oauthErr)
		if len(shown) > 64 {
			t.Fatalf("error code shown at %d bytes", len(shown))
		}
		for i := 0; i < len(shown); i++ {
			if c := shown[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' {
				t.Fatalf("error code shown with %q", c)
			}
		}
	})
}
