package console_test

import (
	"net/http"
	"regexp"
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

// TestReviewSinceUntil: the review form has Since and Until, as
// `airlock grants --since/--until` and GET /v1/grants have (1h, 7d, a
// date or an RFC 3339 time): the page answers for the window, keeps what
// was typed in the form, and its downloads (and their file names) carry
// the window. A window that is refused (garbage, a day and a window at
// once, until before since) shows the form again as typed with the field
// marked and the API's reason beside it, escaped, and no rows or
// downloads; before, the form had no such fields, and a refused filter
// was an error page that dropped what had been typed.
func TestReviewSinceUntil(t *testing.T) {
	e := newEnv(t, nil)
	g := e.request("log-triage-bot", autoScope, "10m", "triage")
	b := e.browser()
	b.mustSignIn(e.alice)

	p := b.get("/console/review")
	if !strings.Contains(p.body, `name="since" value=""`) || !strings.Contains(p.body, `name="until" value=""`) {
		t.Fatalf("the review form has no since/until fields:\n%s", p.body)
	}
	p = b.get("/console/review?account=&day=&since=1h&until=&target=&identity=&status=")
	if p.status != http.StatusOK || !strings.Contains(p.body, `data-id="`+g.ID+`"`) || !strings.Contains(p.body, `name="since" value="1h"`) {
		t.Fatalf("since=1h from the form: %d, lists %s: %v\n%s", p.status, g.ID, strings.Contains(p.body, g.ID), p.body)
	}
	if !strings.Contains(p.body, `href="/console/review.csv?since=1h"`) || strings.Contains(p.body, `id="filter-error"`) {
		t.Errorf("the downloads do not carry the window, or an error shows:\n%s", p.body)
	}
	if d := b.get("/console/review.csv?since=1h"); d.status != http.StatusOK || !strings.Contains(d.body, g.ID) ||
		!strings.Contains(d.header.Get("Content-Disposition"), `filename="airlock-grants-since-1h.csv"`) {
		t.Errorf("CSV of since=1h: %d %q\n%s", d.status, d.header.Get("Content-Disposition"), d.body)
	}
	// The grant began just now: not live between two hours and one hour ago.
	if p := b.get("/console/review?since=2h&until=1h"); p.status != http.StatusOK || strings.Contains(p.body, g.ID) || !strings.Contains(p.body, `id="none"`) {
		t.Errorf("since=2h until=1h: %d, lists %s: %v", p.status, g.ID, strings.Contains(p.body, g.ID))
	}

	for _, c := range []struct{ query, field, why string }{
		{"since=yesterday", "since", `since: &#34;yesterday&#34; is not a time`},
		{"until=-1h", "until", "until: "},
		{"since=1h&until=2h", "until", "until: must be after since"},
		{"day=" + time.Now().UTC().Format("2006-01-02") + "&since=7d", "day", "day: use either day or since/until, not both"},
		{"since=%3Cscript%3Ealert(1)%3C%2Fscript%3E", "since", "since: &#34;&lt;script&gt;alert(1)&lt;/script&gt;&#34; is not a time"},
		{"since=1h%1B%5B2J", "since", `since: &#34;1h\x1b[2J&#34; is not a time`},
	} {
		p := b.get("/console/review?" + c.query)
		if p.status != http.StatusBadRequest {
			t.Errorf("%s: %d, want 400", c.query, p.status)
			continue
		}
		if !strings.Contains(p.body, `id="filter-error" role="alert">Not shown: `+c.why) {
			t.Errorf("%s: the reason beside the form is not %q:\n%s", c.query, c.why, p.body)
		}
		if !strings.Contains(p.body, `name="`+c.field+`"`) || !regexp.MustCompile(`name="`+c.field+`"[^>]*class="invalid" aria-invalid="true"`).MatchString(p.body) {
			t.Errorf("%s: field %s is not marked:\n%s", c.query, c.field, p.body)
		}
		if strings.Contains(p.body, "<script>alert") || strings.Contains(p.body, "\x1b") {
			t.Errorf("%s: the input is echoed unescaped:\n%q", c.query, p.body)
		}
		if strings.Contains(p.body, g.ID) || strings.Contains(p.body, `id="csv"`) || strings.Contains(p.body, `id="none"`) {
			t.Errorf("%s: rows, downloads or 'no grant matches' shown under a refused filter:\n%s", c.query, p.body)
		}
	}
	// Typed values come back in the form, control characters made
	// visible (the person sees what they typed) and escaped as attribute
	// values.
	if p := b.get("/console/review?since=1h%1B%5B2J"); !strings.Contains(p.body, `name="since" value="1h\x1b[2J"`) {
		t.Errorf("the refused since is not kept in the form with its ESC shown:\n%s", p.body)
	}
	// HTML in a value stays text.
	if p := b.get("/console/review?since=%22%3E%3Cb%3Ex"); !strings.Contains(p.body, `name="since" value="&#34;&gt;&lt;b&gt;x"`) {
		t.Errorf("the refused since is not kept in the form, escaped:\n%s", p.body)
	}
}
