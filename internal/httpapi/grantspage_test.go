package httpapi_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/airlock-dev/airlock/internal/httpapi"
)

// TestGrantsPageParameters: GET /v1/grants takes a limit of 1 to 1000 and
// a cursor only as the server writes it (a page's next); anything else is
// a 400 naming the parameter. limit=0 meant "every grant" before the list
// was paged: it is refused, saying so, rather than read otherwise.
func TestGrantsPageParameters(t *testing.T) {
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
		{"after=%2B5", "after"},
		{"after=Zz1hYmM", "after"}, // base64url of "g=abc"
		{"after=", ""},
		{"limit=5&limit=6", "limit"},
		{"after=a&after=b", "after"},
		{"cursor=5", "cursor"},
		{"page=2", "page"},
	} {
		for _, key := range []string{e.alice, e.bot} {
			r := e.do("GET", "/v1/grants?"+tt.query, key, nil)
			if tt.field == "" {
				if r.status != http.StatusOK {
					t.Errorf("%s: %d %s", tt.query, r.status, r.body)
				}
				continue
			}
			wantError(t, r, http.StatusBadRequest, "invalid_argument", tt.field)
			if msg := r.errBody(t).Error.Message; strings.Contains(msg, "strconv") || strings.Contains(msg, "base64") {
				t.Errorf("%s: the message names Go's parser: %s", tt.query, msg)
			}
		}
	}
	if msg := e.do("GET", "/v1/grants?limit=0", e.alice, nil).errBody(t).Error.Message; !strings.Contains(msg, "no longer means every grant") {
		t.Errorf("limit=0: %q does not say what changed", msg)
	}

	// Without a limit a page holds 100 grants; a page that is not the
	// last is full, and says so with next.
	for range 101 {
		e.request(e.bot, autoScope, "10m")
	}
	var page httpapi.ListResponse
	r := e.do("GET", "/v1/grants", e.alice, nil)
	r.decode(t, &page)
	if len(page.Grants) != 100 || page.Next == "" {
		t.Fatalf("no limit: %d grants, next %q; want 100 and a next", len(page.Grants), page.Next)
	}
	r = e.do("GET", "/v1/grants?after="+page.Next, e.alice, nil)
	var rest httpapi.ListResponse
	r.decode(t, &rest)
	if len(rest.Grants) != 1 || rest.Next != "" || rest.Grants[0].ID == page.Grants[99].ID {
		t.Fatalf("the page after: %d grants, next %q; want the 101st alone", len(rest.Grants), rest.Next)
	}
	r = e.do("GET", "/v1/grants?limit=1000", e.alice, nil)
	page = httpapi.ListResponse{}
	r.decode(t, &page)
	if len(page.Grants) != 101 || page.Next != "" {
		t.Fatalf("limit=1000: %d grants, next %q; want every one and no next", len(page.Grants), page.Next)
	}
}

// TestGrantSessionsPageParameters: GET /v1/grants/{id}/sessions takes a
// limit of 1 to 1000 and a cursor only as the server writes it; anything
// else is a 400 naming the parameter, and the grant is still checked (an
// agent asking for another's is told it does not exist).
func TestGrantSessionsPageParameters(t *testing.T) {
	e := newEnv(t)
	g := e.request(e.bot, autoScope, "10m")
	pageParameters(t, e, "/v1/grants/"+g.ID+"/sessions", []pageParam{
		{"limit=0", "limit"},
		{"limit=1001", "limit"},
		{"limit=ten", "limit"},
		{"limit=", ""},
		{"limit=1000", ""},
		{"after=x", "after"},
		{"after=", ""},
		{"after=a&after=b", "after"},
		{"page=2", "page"},
	}, func(r response) (int, string) {
		var page httpapi.SessionsResponse
		r.decode(t, &page)
		if page.Sessions == nil {
			return -1, page.Next
		}
		return len(page.Sessions), page.Next
	})
	other := e.request(e.webBot, autoScope, "10m")
	wantError(t, e.do("GET", "/v1/grants/"+other.ID+"/sessions?limit=5", e.bot, nil), http.StatusNotFound, "not_found", "")
}

// TestPendingPageParameters: GET /v1/pending takes a limit of 1 to 1000
// and a cursor only as the server writes it; anything else is a 400
// naming the parameter (it took none before it was paged, and ignored
// any). Without a limit a page holds 100 requests; a page that is not the
// last says so with next.
func TestPendingPageParameters(t *testing.T) {
	e := newEnv(t)
	pageParameters(t, e, "/v1/pending", []pageParam{
		{"limit=0", "limit"},
		{"limit=-1", "limit"},
		{"limit=1001", "limit"},
		{"limit=ten", "limit"},
		{"limit=", ""}, // empty: as absent
		{"limit=1000", ""},
		{"after=x", "after"},
		{"after=Zz1hYmM", "after"}, // base64url of "g=abc"
		{"after=", ""},
		{"limit=5&limit=6", "limit"},
		{"after=a&after=b", "after"},
		{"status=active", "status"},
		{"page=2", "page"},
	}, func(r response) (int, string) {
		var page httpapi.ListResponse
		r.decode(t, &page)
		if page.Grants == nil {
			return -1, page.Next
		}
		return len(page.Grants), page.Next
	})

	e.srv.Service.SetMaxPending(200)
	for range 101 {
		e.request(e.bot, humanScope, "30m")
	}
	var page httpapi.ListResponse
	e.do("GET", "/v1/pending", e.alice, nil).decode(t, &page)
	if len(page.Grants) != 100 || page.Next == "" {
		t.Fatalf("no limit: %d requests, next %q; want 100 and a next", len(page.Grants), page.Next)
	}
	// The review's cursor is not the queue's, and the queue's not the
	// review's.
	wantError(t, e.do("GET", "/v1/grants?after="+page.Next, e.alice, nil), http.StatusBadRequest, "invalid_argument", "after")
	var rest httpapi.ListResponse
	e.do("GET", "/v1/pending?after="+page.Next, e.alice, nil).decode(t, &rest)
	if len(rest.Grants) != 1 || rest.Next != "" || rest.Grants[0].ID == page.Grants[99].ID {
		t.Fatalf("the page after: %d requests, next %q; want the 101st alone", len(rest.Grants), rest.Next)
	}
	page = httpapi.ListResponse{}
	e.do("GET", "/v1/pending?limit=1000", e.alice, nil).decode(t, &page)
	if len(page.Grants) != 101 || page.Next != "" {
		t.Fatalf("limit=1000: %d requests, next %q; want every one and no next", len(page.Grants), page.Next)
	}
}

// pageParam is a query of a paged list and the parameter its 400 names
// ("" for none: the query is answered).
type pageParam struct{ query, field string }

// pageParameters asks alice's GET path?query for each case: a bad one is
// a 400 naming its field, without Go's parsers' words; a good one, on an
// empty list, is an empty last page (page: its items, -1 for a null list,
// and its next).
func pageParameters(t *testing.T, e *env, path string, cases []pageParam, page func(response) (int, string)) {
	t.Helper()
	for _, tt := range cases {
		r := e.do("GET", path+"?"+tt.query, e.alice, nil)
		if tt.field == "" {
			if r.status != http.StatusOK {
				t.Errorf("%s: %d %s", tt.query, r.status, r.body)
			} else if n, next := page(r); n != 0 || next != "" {
				t.Errorf("%s: %d items (next %q), want an empty last page", tt.query, n, next)
			}
			continue
		}
		wantError(t, r, http.StatusBadRequest, "invalid_argument", tt.field)
		if msg := r.errBody(t).Error.Message; strings.Contains(msg, "strconv") || strings.Contains(msg, "base64") {
			t.Errorf("%s: the message names Go's parser: %s", tt.query, msg)
		}
	}
}
