package review

import (
	"reflect"
	"testing"

	"github.com/airlock-dev/airlock/internal/gateway"
	"github.com/airlock-dev/airlock/internal/model"
)

// fastSeeds are entries as the log writes them, and variants that the fast
// path must either decode exactly as encoding/json does or leave to it.
var fastSeeds = []string{
	`{"seq":100,"time":"2026-12-02T19:13:23.468036864Z","type":"session.call","grant":"g_1","session":"s_1","actor":"bot","data":{"kind":"request","action":"s3:GetObject","resource":"arn:aws:s3:::logs/app/2.log","allowed":true,"params":{"key":"app/2.log"},"bytes_out":102}}`,
	`{"seq":101,"time":"2026-12-02T19:13:23Z","type":"session.call","grant":"g_1","session":"s_1","actor":"bot","data":{"kind":"request","action":"s3:CopyObject","resource":"arn:aws:s3:::b/k","also":["s3:GetObject arn:aws:s3:::b/src"],"allowed":false,"params":{"q":"select \"x\" \u00e9"},"status":"403","error":"no","bytes_in":5,"rows":-3,"duration_ns":1.5e3}}`,
	`{"seq":102,"time":"2026-12-02T19:13:23Z","type":"session.results","grant":"g_1","session":"s_1","actor":"bot","data":{"results":[{"kind":"result","action":"pg:select","bytes_out":7,"rows":1},{"kind":"result","action":"pg:insert","resource":"db","allowed":true,"refused":true,"error":"42501 no"},{"kind":"request","action":"pg:select","resource":"db.t","allowed":true}]}}`,
	`{"seq":103,"time":"2026-12-02T19:13:23Z","type":"session.results","data":{"results":[]}}`,
	`{"seq":104,"time":"2026-12-02T19:13:23Z","type":"session.call"}`,
	` { "seq" : 105 , "time" : "2026-12-02T19:13:23Z" , "type" : "session.call" , "data" : { "kind" : "request" , "allowed" : true , "also" : [ ] } } `,
	`{"seq":106,"time":"2026-12-02T19:13:23Z","type":"session.call","data":{"Allowed":true}}`,
	`{"seq":107,"time":"2026-12-02T19:13:23Z","type":"session.call","data":{"allowed":true,"allowed":false}}`,
	`{"seq":108,"time":"2026-12-02T19:13:23Z","type":"session.call","data":{"bytes_in":1.0}}`,
	`{"seq":109,"time":"2026-12-02T19:13:23Z","type":"session.call","data":{"bytes_in":99999999999999999999}}`,
	`{"seq":110,"time":"2026-12-02T19:13:23Z","type":"session.call","data":{"action":"a\u0041"}}`,
	`{"seq":111,"time":"2026-12-02T19:13:23Z","type":"session.call","data":{"results":[]}}`,
	`{"seq":112,"time":"2026-12-02T19:13:23Z","type":"session.call","data":null}`,
	`{"seq":113,"time":"bad","type":"session.call","data":{}}`,
	`{"seq":114,"time":"2026-12-02T19:13:23Z","type":"session.call","data":{"params":{"k":01}}}`,
	`{"seq":115,"time":"2026-12-02T19:13:23Z","type":"session.call","data":{}} x`,
	`{"seq":116,"time":"2026-12-02T19:13:23Z","type":"grant.expired","grant":"g_1","data":{"at":"2026-12-02T19:13:23Z","by":"airlock","status":"expired"}}`,
	`{"seq":117,"time":"2026-12-02T19:13:23Z","type":"session.call","data":{"resource":"\xff"}}`,
	`{"seq":118,"time":"2026-12-02T19:13:23Z","type":"session.call","data":{"ſind":"x","kind":"y"}}`,
	`{"seq":119,"time":"2026-12-02T19:13:23Z","type":"session.call","Type":"grant.expired","data":{}}`,
	`{"seq":-0,"time":"2026-12-02T19:13:23+02:00","type":"session.call","data":{"params":{"a":[1,{"b":null}],"c":true}}}`,
}

// TestParseFastMatchesSlow checks the fast path against encoding/json on
// the seeds, and that it does take the entries the log writes.
func TestParseFastMatchesSlow(t *testing.T) {
	for _, s := range fastSeeds {
		checkFast(t, []byte(s))
	}
	for _, s := range fastSeeds[:6] {
		if _, ok := parseCallFast([]byte(s), nil); !ok {
			t.Errorf("the fast path gave up on %s", s)
		}
	}
	for _, s := range fastSeeds[6:20] {
		if _, ok := parseCallFast([]byte(s), nil); ok {
			t.Errorf("the fast path decoded %s", s)
		}
	}
}

// TestParseRefusesTrailingBytes: an entry followed by anything but
// whitespace is not a log entry. The fast path took a NUL byte after the
// object for the end of the input (FuzzParseFast found it) and decoded
// the entry that encoding/json refuses.
func TestParseRefusesTrailingBytes(t *testing.T) {
	const entry = `{"seq":1,"time":"2026-12-05T10:00:00Z","type":"session.call","grant":"g","data":{"kind":"request","action":"s3:GetObject","resource":"r","allowed":true}}`
	if _, err := Parse([]byte(entry + " \n")); err != nil {
		t.Fatalf("entry with trailing whitespace: %v", err)
	}
	for _, tail := range []string{"\x00", " \x00", "x", "{}"} {
		if p, err := Parse([]byte(entry + tail)); err == nil {
			t.Errorf("entry followed by %q decoded as %+v", tail, p)
		}
	}
}

// FuzzParseFast holds the fast path to encoding/json's answers: whenever
// it decodes an entry, the slow path must decode the same.
func FuzzParseFast(f *testing.F) {
	for _, s := range fastSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) { checkFast(t, b) })
}

func checkFast(t *testing.T, b []byte) {
	t.Helper()
	fast, ok := parseCallFast(b, nil)
	if !ok {
		return
	}
	var in interner
	if again, _ := parseCallFast(b, &in); !reflect.DeepEqual(again, fast) {
		t.Fatalf("entry %q: interned %+v, not %+v", b, again, fast)
	}
	slow, err := parseSlow(b)
	if err != nil {
		t.Fatalf("fast path decoded %q, encoding/json fails: %v", b, err)
	}
	if !reflect.DeepEqual(fast, slow) {
		t.Fatalf("entry %q:\nfast %+v\nslow %+v", b, fast, slow)
	}
}

// TestCountCallInPlace checks that the Deriver's in-place counting and
// CountCall (the gateway's) agree, duplicates and the MaxUsed bound
// included, and that CountCall leaves its argument alone.
func TestCountCallInPlace(t *testing.T) {
	var a, b model.Session
	var ta, tb Tally
	for i := range 3 * MaxUsed {
		c := gateway.Call{Kind: "request", Action: "s3:GetObject", Resource: "r" + string(rune('a'+i%150)), Allowed: i%7 != 0, BytesIn: 1, BytesOut: int64(i)}
		if i%5 == 0 {
			c.Also = []string{"s3:GetObject rb", "s3:PutObject x"}
		}
		if i%11 == 0 {
			c.Kind = "result"
			c.Refused = i%3 == 0 && c.Also == nil
		}
		a = CountCall(a, &ta, c)
		countCall(&b, &tb, &c)
	}
	if !reflect.DeepEqual(a, b) {
		t.Fatalf("CountCall %+v\ncountCall %+v", a, b)
	}
	if len(a.Used) != MaxUsed || a.Calls == 0 || a.Denied == 0 {
		t.Fatalf("unexpected summary: %d used, %d calls, %d denied", len(a.Used), a.Calls, a.Denied)
	}
	s := model.Session{Used: make([]string, 1, 10)}
	s.Used[0] = "x y"
	_ = CountCall(s, &Tally{}, gateway.Call{Kind: "request", Action: "a", Resource: "b", Allowed: true})
	if got := s.Used[:2][1]; got != "" {
		t.Fatalf("CountCall wrote into its argument's Used: %q", got)
	}
}

// TestCountInPlaceNoCopy checks that Count, the gateway's per-call
// counting, agrees with CountCall and does not copy the session's Used
// list on every call (CountCall's copy was an allocation per call).
func TestCountInPlaceNoCopy(t *testing.T) {
	var a, b model.Session
	var ta, tb Tally
	calls := []gateway.Call{
		{Kind: "request", Action: "pg:select", Resource: "db", Allowed: true},
		{Kind: "result", Action: "pg:select", Resource: "db", Allowed: true, Rows: 1, BytesOut: 7},
		{Kind: "request", Action: "pg:insert", Resource: "db", Allowed: true, Also: []string{"pg:delete db"}},
		{Kind: "request", Action: "pg:drop", Resource: "db", Allowed: false},
		{Kind: "request", Action: "pg:update", Resource: "db", Allowed: true},
		{Kind: "result", Action: "pg:update", Resource: "db", Allowed: true, Refused: true},
	}
	for _, c := range calls {
		a = CountCall(a, &ta, c)
		Count(&b, &tb, &c)
	}
	if !reflect.DeepEqual(a, b) {
		t.Fatalf("CountCall %+v\nCount %+v", a, b)
	}
	c := calls[0]
	if n := testing.AllocsPerRun(100, func() { Count(&b, &tb, &c) }); n != 0 {
		t.Errorf("Count of an action already used: %v allocations per call, want 0", n)
	}
}
