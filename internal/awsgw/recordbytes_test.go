package awsgw

import (
	"encoding/json"
	"maps"
	"net/http"
	"strings"
	"testing"

	"github.com/airlock-dev/airlock/internal/gateway"
)

// An S3 call's result carries its parameters (the request id, a new
// upload's id) as Call.Pairs, not in a map of its own: the map was two of
// a call's allocations. The log must not tell: each result, as recorded,
// is encoded to the bytes of the same result with its parameters in
// Params, as results were recorded before, by AppendJSON (the log's
// encoder) and by encoding/json.
func TestResultRecordBytes(t *testing.T) {
	e := newEnv(t)
	e.up.put("logs/app/a.txt", []byte("hello"))
	g := e.grant("s3:GetObject,s3:PutObject arn:aws:s3:::logs/app/*", "s3:ListBucket arn:aws:s3:::logs/app/*", "s3:PutObject arn:aws:s3:::logs/up/*")
	for _, c := range []struct {
		name, method, path string
		body               []byte
		status             int
	}{
		{"GET", http.MethodGet, "/logs/app/a.txt", nil, 200},
		{"PUT", http.MethodPut, "/logs/app/b.txt", []byte("new object"), 200},
		{"List", http.MethodGet, "/logs?list-type=2&prefix=app/", nil, 200},
		{"Head", http.MethodHead, "/logs/app/a.txt", nil, 200},
		{"error", http.MethodGet, "/logs/app/missing.txt", nil, 404},
		{"upload", http.MethodPost, "/logs/up/big.bin?uploads", nil, 200},
	} {
		if st, b := do(t, e.signed(g, c.method, c.path, c.body)); st != c.status {
			t.Fatalf("%s: %d %s", c.name, st, b)
		}
	}
	e.results(g, 6) // all recorded
	var results []gateway.Call
	for _, s := range e.auth.Sessions() {
		for _, c := range s.RecordedCalls() {
			if c.Kind == "result" {
				results = append(results, c)
			}
		}
	}
	if len(results) != 6 {
		t.Fatalf("%d results, want 6", len(results))
	}
	uploads := 0
	for _, res := range results {
		if res.Params != nil || len(res.Pairs) == 0 || res.Pairs[0].Key != "request_id" {
			t.Errorf("result %+v: want its parameters as pairs, the request id first", res)
			continue
		}
		// The result as it was recorded before: the same parameters in
		// a map of its own.
		old := res
		old.Params, old.Pairs = map[string]string{}, nil
		for _, p := range res.Pairs {
			old.Params[p.Key] = p.Value
		}
		if _, ok := old.Params["upload_id"]; ok {
			uploads++
		}
		got, err := res.AppendJSON(nil)
		if err != nil {
			t.Fatal(err)
		}
		want, err := old.AppendJSON(nil)
		if err != nil {
			t.Fatal(err)
		}
		std, err := json.Marshal(old)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != string(want) || string(got) != string(std) {
			t.Errorf("result of %s %s:\n got %s\nwant %s\nencoding/json %s", res.Action, res.Resource, got, want, std)
		}
		if !strings.Contains(string(got), `"request_id":`) {
			t.Errorf("result %s has no request id", got)
		}
		if back := res.WithPairsInParams(); !maps.Equal(back.Params, old.Params) {
			t.Errorf("as a reader decodes it: %v, want %v", back.Params, old.Params)
		}
	}
	if uploads != 1 {
		t.Errorf("%d results carry an upload id, want 1 (CreateMultipartUpload's)", uploads)
	}
}
