package console_test

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestReviewRefusesUnknownParameter: the review page and its downloads
// refuse a query parameter they do not know, as GET /v1/grants does. A
// mistyped filter (acount=…, a hand-edited or bookmarked link) was
// dropped and the page, the CSV and the JSON answered for every account
// and every day, under a file name that did not say so.
func TestReviewRefusesUnknownParameter(t *testing.T) {
	e := newEnv(t, nil)
	g := e.request("log-triage-bot", autoScope, "10m", "triage")
	b := e.browser()
	b.mustSignIn(e.alice)
	for _, path := range []string{"/console/review", "/console/review.csv", "/console/review.json"} {
		p := b.get(path + "?acount=999999999999")
		if p.status != http.StatusBadRequest {
			t.Errorf("%s?acount=…: %d, want 400 (lists %s: %v)", path, p.status, g.ID, strings.Contains(p.body, g.ID))
			continue
		}
		if strings.Contains(p.body, g.ID) || !strings.Contains(p.body, "acount") {
			t.Errorf("%s?acount=…: the refusal lists grants or does not name the parameter:\n%s", path, p.body)
		}
	}
	// The page's own filter form still works, empty fields and all.
	day := time.Now().UTC().Format("2006-01-02")
	if p := b.get("/console/review?account=&day=" + day + "&target=&identity=&status="); p.status != http.StatusOK || !strings.Contains(p.body, g.ID) {
		t.Fatalf("the filter form's query: %d", p.status)
	}
}
