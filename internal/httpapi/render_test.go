package httpapi

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/gateway"
)

// TestEntrySummary: the one rendering the console's grant history and
// transcripts and airlock's grant show and session show use for entries
// that are not calls. They had a copy each; this pins what both showed.
func TestEntrySummary(t *testing.T) {
	for _, tc := range []struct {
		name, raw, want string
	}{
		{"actor and data in key order", `{"actor":"alice","data":{"z":1,"a":"x","m":[1,2]}}`, `by alice  a="x" m=[1,2] z=1`},
		{"no actor", `{"data":{"reason":"done"}}`, `by -  reason="done"`},
		{"empty and null values left out", `{"actor":"bob","data":{"a":"","b":null,"c":false}}`, `by bob  c=false`},
		{"no data", `{"actor":"carol"}`, `by carol`},
		{"not JSON shown as it is", `not json`, `not json`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := EntrySummary(json.RawMessage(tc.raw)); got != tc.want {
				t.Errorf("EntrySummary(%s) = %q, want %q", tc.raw, got, tc.want)
			}
		})
	}
}

// TestRequestText: a request's main text and details as the console and
// airlock session show both render them.
func TestRequestText(t *testing.T) {
	for _, tc := range []struct {
		name          string
		c             gateway.Call
		text, details string
		sql           bool
	}{
		{"action and resource only", gateway.Call{Action: "s3:GetObject", Resource: "arn:aws:s3:::b/k", Allowed: true},
			"s3:GetObject arn:aws:s3:::b/k", "", false},
		{"parameters in key order, quoted", gateway.Call{Action: "s3:ListBucket", Resource: "arn:aws:s3:::b", Allowed: true,
			Params: map[string]string{"prefix": "logs/", "max-keys": "10"}},
			"s3:ListBucket arn:aws:s3:::b", `max-keys="10"  prefix="logs/"`, false},
		{"statement trimmed, the rest after it", gateway.Call{Action: "SELECT", Allowed: true,
			Params: map[string]string{"statement": "\n SELECT 1\nFROM t ", "database": "app"}, Also: []string{"SELECT app.u"}},
			"SELECT 1\nFROM t", `database="app"  also SELECT app.u`, true},
		{"a denied call's error last", gateway.Call{Action: "s3:PutObject", Resource: "arn:aws:s3:::b/k", Error: "out of scope"},
			"s3:PutObject arn:aws:s3:::b/k", "(out of scope)", false},
		{"an allowed call's error not shown", gateway.Call{Action: "s3:PutObject", Resource: "arn:aws:s3:::b/k", Allowed: true, Error: "x"},
			"s3:PutObject arn:aws:s3:::b/k", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			text, sql, details := RequestText(tc.c)
			if text != tc.text || sql != tc.sql || details != tc.details {
				t.Errorf("RequestText = %q, %t, %q; want %q, %t, %q", text, sql, details, tc.text, tc.sql, tc.details)
			}
		})
	}
}

// TestResultText: a result's parts, those it has, in their order.
func TestResultText(t *testing.T) {
	for _, tc := range []struct {
		name string
		c    gateway.Call
		want string
	}{
		{"nothing", gateway.Call{Kind: "result"}, ""},
		{"all", gateway.Call{Kind: "result", Status: "200", Rows: 3, BytesIn: 10, BytesOut: 20, Duration: 1500 * time.Nanosecond, Error: "late", Refused: true},
			"200, 3 rows, 10 B in, 20 B out, 2µs, error: late, ✗ DENIED by the upstream"},
		{"bytes out only", gateway.Call{Kind: "result", BytesOut: 5}, "0 B in, 5 B out"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := ResultText(tc.c); got != tc.want {
				t.Errorf("ResultText = %q, want %q", got, tc.want)
			}
		})
	}
}
