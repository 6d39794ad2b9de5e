package httpapi_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/airlock-dev/airlock/internal/httpapi"
)

// TestFindingsPageParameters: GET /v1/findings takes a limit of 1 to 1000
// and a cursor only as the server writes it (a page's next); anything else
// is a 400 naming the parameter, as the API refuses every bad parameter.
func TestFindingsPageParameters(t *testing.T) {
	e := newEnv(t)
	for _, tt := range []struct{ query, field string }{
		{"limit=0", "limit"},
		{"limit=-1", "limit"},
		{"limit=1001", "limit"},
		{"limit=ten", "limit"},
		{"limit=1.5", "limit"},
		{"limit=", ""}, // empty: as absent
		{"after=x", "after"},
		{"after=0", "after"},
		{"after=-3", "after"},
		{"after=05", "after"},
		{"after=%2B5", "after"},
		{"after=99999999999999999999", "after"},
		{"after=", ""},
		{"limit=5&limit=6", "limit"},
		{"after=5&after=6", "after"},
		{"cursor=5", "cursor"},
		{"page=2", "page"},
	} {
		r := e.do("GET", "/v1/findings?"+tt.query, e.alice, nil)
		if tt.field == "" {
			if r.status != http.StatusOK {
				t.Errorf("%s: %d %s", tt.query, r.status, r.body)
			}
			continue
		}
		wantError(t, r, http.StatusBadRequest, "invalid_argument", tt.field)
		if msg := r.errBody(t).Error.Message; strings.Contains(msg, "strconv") {
			t.Errorf("%s: the message names Go's parser: %s", tt.query, msg)
		}
	}
	for _, q := range []string{"limit=1", "limit=1000", "after=1", "after=123&limit=7&day=2026-11-25"} {
		r := e.do("GET", "/v1/findings?"+q, e.bot, nil)
		if r.status != http.StatusOK {
			t.Errorf("%s: %d %s", q, r.status, r.body)
			continue
		}
		var page httpapi.FindingsResponse
		r.decode(t, &page)
		if page.Findings == nil || page.Next != "" {
			t.Errorf("%s on a log without findings: %+v, want an empty last page", q, page)
		}
	}
}
