package server

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestControlCharsInParams: a NUL (or another control character, or a
// byte that is not UTF-8) in a query parameter or path value of the API
// is a 400 naming the parameter, on the PostgreSQL store too. Before,
// GET /v1/grants?account=%00 (identity=, target=, a grant or session id
// in the path) reached PostgreSQL, which refuses NUL in text: a 500.
func TestControlCharsInParams(t *testing.T) {
	cfg, botKey, aliceKey := auditConfigKeys(t, fmt.Sprintf("store: %q\n", pgDatabase(t)))
	s := openServer(t, cfg)
	defer s.Close()
	srv := httptest.NewServer(s.Handler)
	defer srv.Close()
	do := func(method, path, key, body string) (int, string) {
		t.Helper()
		req, err := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+key)
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var e struct {
			Error struct{ Field string } `json:"error"`
		}
		b, _ := io.ReadAll(resp.Body)
		if err := json.Unmarshal(b, &e); err != nil {
			t.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, b)
		}
		return resp.StatusCode, e.Error.Field
	}
	for _, tc := range []struct{ method, path, field string }{
		{"GET", "/v1/grants?account=%00", "account"},
		{"GET", "/v1/grants?identity=%00", "identity"},
		{"GET", "/v1/grants?target=aws%00", "target"},
		{"GET", "/v1/grants?target=aws%ff", "target"},
		{"GET", "/v1/grants?status=active&target=a%1bb", "target"},
		{"GET", "/v1/grants/%00", "id"},
		{"GET", "/v1/grants/%00/history", "id"},
		{"GET", "/v1/grants/g%00/sessions", "id"},
		{"GET", "/v1/sessions/%00", "id"},
		{"GET", "/v1/sessions/s_1?after=%00", "after"},
		{"GET", "/v1/grants/g%0a?wait=1s", "id"},
		{"POST", "/v1/grants/%00/approve", "id"},
		{"POST", "/v1/agents/a%00/disable", "name"},
		{"GET", "/v1/findings?day=%00", "day"},
		{"GET", "/v1/audit/export?account=%00&day=2026-01-01", "account"},
	} {
		code, field := do(tc.method, tc.path, aliceKey, "")
		if code != http.StatusBadRequest || field != tc.field {
			t.Errorf("%s %s: %d naming %q, want 400 naming %q", tc.method, tc.path, code, field, tc.field)
		}
	}
	// A body's strings with a NUL are refused too (the JSON reader).
	for _, body := range []string{
		`{"target":"aws-prod\u0000","scope":["s3:GetObject arn:aws:s3:::logs/app/*"],"duration":"10m","reason":"r"}`,
		`{"target":"aws-prod","scope":["s3:GetObject arn:aws:s3:::logs/app/*"],"duration":"10m","reason":"x\u0000y"}`,
	} {
		if code, _ := do("POST", "/v1/grants", botKey, body); code != http.StatusBadRequest {
			t.Errorf("POST /v1/grants %s: %d, want 400", body, code)
		}
	}
	// The checks refuse nothing an ordinary query holds.
	if code, _ := do("GET", "/v1/grants?target=aws-prod&account=111122223333&identity=log-triage-bot&status=active,pending", aliceKey, ""); code != http.StatusOK {
		t.Errorf("an ordinary query: %d, want 200", code)
	}
}
