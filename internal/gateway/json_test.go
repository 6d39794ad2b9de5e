package gateway

import (
	"encoding/json"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestCallAppendJSONMatchesEncodingJSON(t *testing.T) {
	for _, c := range []Call{
		{},
		{Kind: "request", Action: "s3:GetObject", Resource: "arn:aws:s3:::logs/app/a<b>.log", Allowed: true,
			Params: map[string]string{"key": "app/a<b>.log", "bucket": "logs", "request_id": "r1", "z": "", "\u2028": "x\xff"}},
		{Kind: "request", Action: "s3:DeleteObjects", Also: []string{"s3:DeleteObject arn:aws:s3:::b/k1", "s3:DeleteObject arn:aws:s3:::b/k\"2"}, Allowed: false, Error: "denied: \"k2\""},
		{Kind: "result", Action: "pg:select", Resource: "orders", Allowed: true, Params: map[string]string{"n": "7"},
			Status: "SELECT 1", BytesIn: 12, BytesOut: -3, Rows: 1, Duration: 1500 * time.Microsecond},
		{Kind: "result", Action: "pg:insert", Resource: "orders", Allowed: true, Refused: true, Params: map[string]string{"n": "8"},
			Error: "42501 permission denied for table t"},
		{Kind: "request", Action: "pg:query", Params: map[string]string{"statement": "select '\n\t'\x00"}, Allowed: true},
	} {
		want, err := json.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		got, err := c.AppendJSON([]byte("prefix"))
		if err != nil || string(got) != "prefix"+string(want) {
			t.Errorf("AppendJSON(%+v)\n got %s (%v)\nwant prefix%s", c, got, err, want)
		}
	}
}

// TestCallAppendJSONParamsOrder holds AppendJSON's params to
// encoding/json's on many random maps, from none to past the insertion
// sort's dozen (keys that share prefixes, differ in case, are empty or
// not ASCII), so that its order is the same for every size.
func TestCallAppendJSONParamsOrder(t *testing.T) {
	rng := rand.New(rand.NewPCG(15, 6))
	alphabet := []string{"a", "b", "A", "n", "_", "\u00e9", "\u2028", "0", "request_id", "statement"}
	for i := range 5000 {
		c := Call{Kind: "request", Action: "pg:select", Params: map[string]string{}}
		for range rng.IntN(40) {
			var k strings.Builder
			for range rng.IntN(4) {
				k.WriteString(alphabet[rng.IntN(len(alphabet))])
			}
			c.Params[k.String()] = strconv.Itoa(rng.IntN(1000))
		}
		want, err := json.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		got, err := c.AppendJSON(nil)
		if err != nil || string(got) != string(want) {
			t.Fatalf("case %d: AppendJSON\n got %s (%v)\nwant %s", i, got, err, want)
		}
	}
}

// TestCallAppendJSONPairs holds a call's Pairs to the log's bytes of the
// same parameters in Params: encoding/json's of the call with every pair
// in the map, for random parameters split at random between Pairs (in
// random order) and Params, pggw's statements' among them.
func TestCallAppendJSONPairs(t *testing.T) {
	rng := rand.New(rand.NewPCG(15, 7))
	alphabet := []string{"a", "b", "A", "n", "_", "\u00e9", "\u2028", "0", "protocol", "statement"}
	cases := []Call{
		{Kind: "request", Action: "pg:select", Resource: "bench", Allowed: true, OutcomeAtResult: true,
			Pairs: []Param{{"n", "12"}, {"protocol", "simple"}, {"statement", "SELECT abalance FROM pgbench_accounts WHERE aid = 81234;"}}},
		{Kind: "request", Action: "pg:select", Resource: "bench", Allowed: true,
			Pairs: []Param{{"n", "13"}, {"parameters", "$1='81234'"}, {"protocol", "extended"}, {"statement", "SELECT <a> & 'b'"}}},
		{Kind: "result", Action: "pg:select", Resource: "bench", Allowed: true, Pairs: []Param{{"n", "12"}}, Status: "SELECT 1", Rows: 1},
		{Kind: "request", Action: "pg:execute", Allowed: true, Pairs: []Param{{"statement", "execute s"}, {"n", "1"}},
			Params: map[string]string{"prepared": "delete from t", "protocol": "simple"}},
	}
	for range 5000 {
		c := Call{Kind: "request", Action: "pg:select"}
		keys := map[string]bool{}
		for range rng.IntN(40) {
			var k strings.Builder
			for range rng.IntN(4) {
				k.WriteString(alphabet[rng.IntN(len(alphabet))])
			}
			if keys[k.String()] {
				continue
			}
			keys[k.String()] = true
			p := Param{k.String(), strconv.Itoa(rng.IntN(1000)) + "\n<"}
			if rng.IntN(2) == 0 {
				c.Pairs = append(c.Pairs, p)
				continue
			}
			if c.Params == nil {
				c.Params = map[string]string{}
			}
			c.Params[p.Key] = p.Value
		}
		cases = append(cases, c)
	}
	for i, c := range cases {
		all := Call{Kind: c.Kind, Action: c.Action, Resource: c.Resource, Allowed: c.Allowed, Status: c.Status, Rows: c.Rows}
		if n := len(c.Params) + len(c.Pairs); n > 0 {
			all.Params = map[string]string{}
			for k, v := range c.Params {
				all.Params[k] = v
			}
			for _, p := range c.Pairs {
				all.Params[p.Key] = p.Value
			}
		}
		want, err := json.Marshal(all)
		if err != nil {
			t.Fatal(err)
		}
		got, err := c.AppendJSON(nil)
		if err != nil || string(got) != string(want) {
			t.Fatalf("case %d: AppendJSON(%+v)\n got %s (%v)\nwant %s", i, c, got, err, want)
		}
		if moved, err := json.Marshal(c.WithPairsInParams()); err != nil || string(moved) != string(want) {
			t.Fatalf("case %d: encoding/json of WithPairsInParams\n got %s (%v)\nwant %s", i, moved, err, want)
		}
	}
}

// TestCallAppendJSONPairsRepeated fails a call whose parameter is given
// twice, which no map's encoding has.
func TestCallAppendJSONPairsRepeated(t *testing.T) {
	for _, c := range []Call{
		{Pairs: []Param{{"n", "1"}, {"statement", "x"}, {"n", "2"}}},
		{Pairs: []Param{{"n", "1"}}, Params: map[string]string{"n": "1"}},
	} {
		if b, err := c.AppendJSON(nil); err == nil {
			t.Errorf("AppendJSON(%+v) = %s, want an error", c, b)
		}
	}
}

// TestWithPairsInParams leaves the call's own map as it was.
func TestWithPairsInParams(t *testing.T) {
	params := map[string]string{"protocol": "simple"}
	c := Call{Params: params, Pairs: []Param{{"n", "1"}}}
	got := c.WithPairsInParams()
	if len(got.Pairs) != 0 || len(got.Params) != 2 || got.Params["n"] != "1" || got.Params["protocol"] != "simple" {
		t.Errorf("WithPairsInParams = %+v", got)
	}
	if len(params) != 1 {
		t.Errorf("WithPairsInParams changed the call's map: %v", params)
	}
}

func FuzzCallAppendJSON(f *testing.F) {
	f.Add("request", "s3:GetObject", "arn", "k", "v<", "", int64(0), true)
	f.Fuzz(func(t *testing.T, kind, action, resource, pk, pv, status string, n int64, allowed bool) {
		c := Call{Kind: kind, Action: action, Resource: resource, Allowed: allowed, Refused: !allowed && n%2 == 0, Status: status, Rows: n, Duration: time.Duration(n)}
		if pk != "" {
			c.Params = map[string]string{pk: pv, pk + "2": pv}
			c.Also = []string{pv}
		}
		want, _ := json.Marshal(c)
		if pk != "" && n%3 == 0 {
			// The same parameters, one of them a pair.
			delete(c.Params, pk+"2")
			c.Pairs = []Param{{pk + "2", pv}}
		}
		got, _ := c.AppendJSON(nil)
		if string(got) != string(want) {
			t.Fatalf("AppendJSON(%+v)\n got %s\nwant %s", c, got, want)
		}
	})
}

// BenchmarkCallAppendJSON encodes calls as the gateways record them, once
// each on its way into the log: an S3 GetObject request and its result,
// and PostgreSQL statements' requests and a result. For a figure that holds on a busy
// machine, count instructions under callgrind at two -benchtime values.
func BenchmarkCallAppendJSON(b *testing.B) {
	for _, bc := range []struct {
		name string
		c    Call
	}{
		{"s3-request", Call{Kind: "request", Action: "s3:GetObject", Resource: "arn:aws:s3:::bench-logs/app/2026/12/06/part-000123.json", Allowed: true,
			Params: map[string]string{"bucket": "bench-logs", "key": "app/2026/12/06/part-000123.json", "request_id": "01JTRIAGE0000000000000REQ1"}}},
		{"s3-result", Call{Kind: "result", Action: "s3:GetObject", Resource: "arn:aws:s3:::bench-logs/app/2026/12/06/part-000123.json", Allowed: true,
			Params: map[string]string{"request_id": "01JTRIAGE0000000000000REQ1"}, Status: "200", BytesOut: 1024, Duration: 412 * time.Microsecond}},
		{"pg-request", Call{Kind: "request", Action: "pg:select", Resource: "bench.public.pgbench_accounts", Allowed: true,
			Params: map[string]string{"statement": "SELECT abalance FROM pgbench_accounts WHERE aid = $1;"}}},
		// A pgbench -S statement's request and result as pggw records
		// them (Pairs), and the same with their parameters in maps.
		{"pg-statement", Call{Kind: "request", Action: "pg:select", Resource: "bench", Allowed: true,
			Pairs: []Param{{"n", "81234"}, {"protocol", "simple"}, {"statement", "SELECT abalance FROM pgbench_accounts WHERE aid = 81234;"}}}},
		{"pg-statement-map", Call{Kind: "request", Action: "pg:select", Resource: "bench", Allowed: true,
			Params: map[string]string{"n": "81234", "protocol": "simple", "statement": "SELECT abalance FROM pgbench_accounts WHERE aid = 81234;"}}},
		{"pg-result", Call{Kind: "result", Action: "pg:select", Resource: "bench", Allowed: true, Pairs: []Param{{"n", "81234"}},
			Status: "SELECT 1", BytesOut: 7, Rows: 1, Duration: 150 * time.Microsecond}},
		{"pg-result-map", Call{Kind: "result", Action: "pg:select", Resource: "bench", Allowed: true, Params: map[string]string{"n": "81234"},
			Status: "SELECT 1", BytesOut: 7, Rows: 1, Duration: 150 * time.Microsecond}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			buf := make([]byte, 0, 512)
			b.ReportAllocs()
			for b.Loop() {
				var err error
				if buf, err = bc.c.AppendJSON(buf[:0]); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
