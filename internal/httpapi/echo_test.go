package httpapi_test

import (
	"net/http"
	"strings"
	"testing"
)

// TestEchoBounded: an error names the id, name or value the client sent,
// but not whole: "no grant %q" reflected a 100,000-byte id in full (and an
// unknown field or parameter was named whole in field). The answer now
// holds its first apierr.MaxEcho bytes, "…" and its length.
func TestEchoBounded(t *testing.T) {
	e := newEnv(t)
	long := "g_" + strings.Repeat("a", 100_000)
	seg := strings.Repeat("a", 100) // a run longer than any echo (apierr.MaxEcho)
	cases := []struct {
		name              string
		method, path, key string
		body              any
		status            int
	}{
		{"grant id in the path", "GET", "/v1/grants/" + long, e.alice, nil, http.StatusNotFound},
		{"grant id of a decision", "POST", "/v1/grants/" + long + "/deny", e.alice, map[string]string{"reason": "no"}, http.StatusNotFound},
		{"grant id of credentials", "POST", "/v1/grants/" + long + "/credentials", e.bot, nil, http.StatusNotFound},
		{"grant id of a command", "POST", "/v1/grants/" + long + "/commands", e.bot, map[string]any{"argv": []string{"ls"}}, http.StatusNotFound},
		{"session id", "GET", "/v1/sessions/s_" + long, e.alice, nil, http.StatusNotFound},
		{"agent name to disable", "POST", "/v1/agents/" + long + "/disable", e.alice, nil, http.StatusNotFound},
		{"agent name to add", "POST", "/v1/agents", e.alice, map[string]any{"name": long, "owner": "sre-leads"}, http.StatusBadRequest},
		{"extends", "POST", "/v1/grants", e.bot, map[string]any{"target": "aws-prod", "scope": []string{autoScope}, "duration": "10m", "reason": "r", "extends": long}, http.StatusBadRequest},
		{"target", "POST", "/v1/grants", e.bot, map[string]any{"target": long, "scope": []string{autoScope}, "duration": "10m", "reason": "r"}, http.StatusBadRequest},
		{"duration", "POST", "/v1/grants", e.bot, map[string]any{"target": "aws-prod", "scope": []string{autoScope}, "duration": long, "reason": "r"}, http.StatusBadRequest},
		{"action", "POST", "/v1/grants", e.bot, map[string]any{"target": "aws-prod", "scope": []string{"s3:" + long + " arn:aws:s3:::logs/*"}, "duration": "10m", "reason": "r"}, http.StatusBadRequest},
		{"unknown body field", "POST", "/v1/grants", e.bot, `{"` + long + `":1}`, http.StatusBadRequest},
		{"unknown query parameter", "GET", "/v1/grants?" + long + "=1", e.alice, nil, http.StatusBadRequest},
		{"day", "GET", "/v1/grants?day=" + long, e.alice, nil, http.StatusBadRequest},
		{"status", "GET", "/v1/grants?status=" + long, e.alice, nil, http.StatusBadRequest},
		{"limit", "GET", "/v1/grants?limit=" + long, e.alice, nil, http.StatusBadRequest},
		{"wait", "GET", "/v1/grants/g_x?wait=" + long, e.alice, nil, http.StatusBadRequest},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := e.do(c.method, c.path, c.key, c.body)
			if r.status != c.status {
				t.Fatalf("status %d, want %d: %.300s", r.status, c.status, r.body)
			}
			er := r.errBody(t)
			if strings.Contains(string(r.body), seg) || len(r.body) > 1024 {
				t.Errorf("the answer (%d bytes) reflects the value whole: %.300s…", len(r.body), r.body)
			}
			if !strings.Contains(er.Error.Message+er.Error.Field, "aaaa") {
				t.Errorf("the answer does not name what was sent at all: %+v", er.Error)
			}
		})
	}
}
