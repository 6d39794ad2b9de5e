package httpapi_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/airlock-dev/airlock/internal/apierr"
)

// TestBodyTooLarge: a body over the 1 MiB the API reads is a 413 (it was a
// 400), with the code and field of a malformed body, on every route that
// takes one; the document says so for each of them; and nothing is
// created.
func TestBodyTooLarge(t *testing.T) {
	e := newEnv(t)
	doc := loadOpenAPI(t)
	big := `{"reason":"` + strings.Repeat("a", 1<<20) + `"}`
	routes := []struct{ method, doc, path, key string }{
		{"POST", "/v1/grants", "/v1/grants", e.bot},
		{"POST", "/v1/grants/{id}/approve", "/v1/grants/g_aaaaaaaaaaaa/approve", e.alice},
		{"POST", "/v1/grants/{id}/deny", "/v1/grants/g_aaaaaaaaaaaa/deny", e.alice},
		{"POST", "/v1/grants/{id}/revoke", "/v1/grants/g_aaaaaaaaaaaa/revoke", e.alice},
		{"POST", "/v1/grants/{id}/end", "/v1/grants/g_aaaaaaaaaaaa/end", e.bot},
		{"POST", "/v1/grants/{id}/commands", "/v1/grants/g_aaaaaaaaaaaa/commands", e.bot},
		{"POST", "/v1/agents", "/v1/agents", e.alice},
		{"POST", "/v1/agents/{name}/disable", "/v1/agents/web-bot/disable", e.alice},
	}
	for _, rt := range routes {
		r := e.do(rt.method, rt.path, rt.key, big)
		if r.status != http.StatusRequestEntityTooLarge {
			t.Errorf("%s %s with a body over 1 MiB: status %d, want 413: %.300s", rt.method, rt.path, r.status, r.body)
			continue
		}
		er := r.errBody(t)
		if er.Error.Code != apierr.CodeInvalid || er.Error.Field != "body" || !strings.Contains(er.Error.Message, "1048576 bytes") {
			t.Errorf("%s %s: error %+v, want invalid_argument on body, naming the limit", rt.method, rt.path, er.Error)
		}
		var op openAPIOperation
		node := doc.Paths[rt.doc]["post"]
		if err := node.Decode(&op); err != nil {
			t.Fatalf("%s: %v", rt.doc, err)
		}
		if _, ok := op.Responses["413"]; !ok {
			t.Errorf("%s %s: %s documents no 413", rt.method, rt.doc, openAPIPath)
		}
	}
	if gs := e.grants(); len(gs) != 0 {
		t.Errorf("a refused body created %d grants", len(gs))
	}
	// Just under the limit, the body is read (and refused for what it says).
	under := `{"reason":"` + strings.Repeat("a", 1<<20-20) + `"}`
	wantError(t, e.do("POST", "/v1/grants/g_aaaaaaaaaaaa/deny", e.alice, under), http.StatusBadRequest, apierr.CodeInvalid, "reason")
}
