package cli

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/httpapi"
	"github.com/airlock-dev/airlock/internal/model"
	"github.com/airlock-dev/airlock/internal/review"
)

// grantsPages serves GET /v1/grants as pages of per grants of n, the
// cursor being the index of the last one served, and records the queries
// it was sent. The grant at index unproven (if any) differs from the log.
func grantsPages(t *testing.T, n, per, unproven int) (*httptest.Server, []model.Grant, *[]string) {
	t.Helper()
	at := time.Date(2026, 12, 5, 9, 0, 0, 0, time.UTC)
	var all []model.Grant
	for i := range n {
		g := model.Grant{ID: fmt.Sprintf("g_%02d", i), Identity: "log-triage-bot", IdentityKind: model.Agent, Target: "aws-prod",
			Account: "111122223333", Status: model.Active, RequestedAt: at.Add(time.Duration(i) * time.Second), Reason: fmt.Sprintf("task %d", i)}
		if i == unproven {
			g.LogMismatch = []string{"reason differs"}
		}
		all = append(all, g)
	}
	srv, queries := pagesServer(t, all, per, func(page []model.Grant, next string) any {
		return httpapi.ListResponse{Grants: page, Next: next}
	})
	return srv, all, queries
}

// TestGrantsFollowsPages: GET /v1/grants answers a page at a time;
// airlock grants lists every grant of the query by following each page's
// cursor, printing each page as it comes: the table (one header), -o csv
// and -o json (byte for byte what the whole list printed at once), and a
// row the log does not prove, on a later page, still fails the command.
func TestGrantsFollowsPages(t *testing.T) {
	srv, all, queries := grantsPages(t, 7, 3, -1)
	env := []string{EnvAddr + "=" + srv.URL, EnvToken + "=k"}
	code, out, errOut := run(t, env, "grants", "--account", "111122223333", "--day", "2026-12-05")
	if code != 0 {
		t.Fatalf("grants: exit %d: %s", code, errOut)
	}
	if n := strings.Count(out, "GRANT  WHO"); n != 1 {
		t.Errorf("the header is printed %d times:\n%s", n, out)
	}
	for _, g := range all {
		if !strings.Contains(out, g.ID+" ") {
			t.Errorf("the table lacks %s:\n%s", g.ID, out)
		}
	}
	if lines := strings.Split(strings.TrimRight(out, "\n"), "\n"); len(lines) != len(all)+1 {
		t.Errorf("%d lines for %d grants:\n%s", len(lines), len(all), out)
	}
	q := "account=111122223333&day=2026-12-05&limit=1000"
	want := []string{q, "account=111122223333&after=3&day=2026-12-05&limit=1000", "account=111122223333&after=6&day=2026-12-05&limit=1000"}
	if got := *queries; strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("queries %q, want %q", got, want)
	}

	rows := make([]review.Row, len(all))
	for i, g := range all {
		rows[i] = review.FromGrant(g)
	}
	code, out, errOut = run(t, env, "grants", "-o", "json")
	if code != 0 {
		t.Fatalf("grants -o json: exit %d: %s", code, errOut)
	}
	wantWholeJSON(t, out, rows)
	var whole bytes.Buffer

	code, out, errOut = run(t, env, "grants", "-o", "csv")
	if code != 0 {
		t.Fatalf("grants -o csv: exit %d: %s", code, errOut)
	}
	whole.Reset()
	cw := csv.NewWriter(&whole)
	cw.Write(review.Header)
	for _, r := range rows {
		cw.Write(r.Record())
	}
	cw.Flush()
	if out != whole.String() {
		t.Errorf("-o csv across pages:\n%s\nwant:\n%s", out, whole.String())
	}

	// A row on the last page that the log does not prove.
	srv, _, _ = grantsPages(t, 7, 3, 6)
	for _, format := range []string{"table", "json", "csv"} {
		code, out, errOut = run(t, []string{EnvAddr + "=" + srv.URL, EnvToken + "=k"}, "grants", "-o", format)
		if code != 1 || !strings.Contains(out+errOut, "WARNING grant g_06: reason differs") || !strings.Contains(errOut, "1 row(s)") {
			t.Errorf("-o %s with an unproven row on the last page: exit %d\n%s\n%s", format, code, out, errOut)
		}
	}
}

// TestGrantsJSONEmpty: no grants is an empty JSON array, as before.
func TestGrantsJSONEmpty(t *testing.T) {
	srv, _, _ := grantsPages(t, 0, 3, -1)
	code, out, errOut := run(t, []string{EnvAddr + "=" + srv.URL, EnvToken + "=k"}, "grants", "-o", "json")
	if code != 0 || out != "[]\n" {
		t.Fatalf("grants -o json with none: exit %d, %q, %s", code, out, errOut)
	}
}

// TestGrantShowFollowsSessionPages: GET /v1/grants/{id}/sessions answers a
// page at a time; airlock grant show lists every session of the grant by
// following the pages.
func TestGrantShowFollowsSessionPages(t *testing.T) {
	at := time.Date(2026, 12, 5, 9, 0, 0, 0, time.UTC)
	var all []model.Session
	for i := range 5 {
		all = append(all, model.Session{ID: fmt.Sprintf("s_%02d", i), GrantID: "g_1", Identity: "log-triage-bot", StartedAt: at.Add(time.Duration(i) * time.Second)})
	}
	sessions, queries := pagesServer(t, all, 2, func(page []model.Session, next string) any {
		return httpapi.SessionsResponse{Sessions: page, Next: next}
	})
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/grants/g_1", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(httpapi.GrantResponse{Grant: model.Grant{ID: "g_1", Identity: "log-triage-bot", Status: model.Active, RequestedAt: at}})
	})
	mux.HandleFunc("GET /v1/grants/g_1/history", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(httpapi.HistoryResponse{Events: []httpapi.Event{}})
	})
	mux.HandleFunc("GET /v1/grants/g_1/sessions", proxyTo(t, sessions.URL))
	srv := httptest.NewServer(mux)
	defer srv.Close()
	code, out, errOut := run(t, []string{EnvAddr + "=" + srv.URL, EnvToken + "=k"}, "grant", "show", "g_1", "-o", "json")
	if code != 0 {
		t.Fatalf("grant show: exit %d: %s", code, errOut)
	}
	var shown struct {
		Sessions []model.Session `json:"sessions"`
	}
	if err := json.Unmarshal([]byte(out), &shown); err != nil || len(shown.Sessions) != len(all) || shown.Sessions[4].ID != "s_04" {
		t.Fatalf("grant show -o json: %d sessions (%v), want %d:\n%s", len(shown.Sessions), err, len(all), out)
	}
	want := []string{"limit=1000", "after=2&limit=1000", "after=4&limit=1000"}
	if got := *queries; strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("queries %q, want %q", got, want)
	}
}

// TestGrantShowFollowsHistoryPages: GET /v1/grants/{id}/history answers a
// page at a time; airlock grant show prints every entry of the grant by
// following the pages, as text and -o json, and a page whose
// log_mismatch is set is a warning on stderr and exit 1.
func TestGrantShowFollowsHistoryPages(t *testing.T) {
	at := time.Date(2026, 12, 5, 9, 0, 0, 0, time.UTC)
	var all []httpapi.Event
	for i := range 5 {
		all = append(all, httpapi.Event{Seq: int64(i + 1), Time: at, Type: fmt.Sprintf("grant.e%d", i), GrantID: "g_1", Entry: json.RawMessage(`{"actor":"policy"}`)})
	}
	history, queries := pagesServer(t, all, 2, func(page []httpapi.Event, next string) any {
		r := httpapi.HistoryResponse{Events: page, Next: next}
		if len(page) > 0 && page[0].Seq == 5 {
			r.LogMismatch = []string{"log entries of this grant differ"}
		}
		return r
	})
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/grants/g_1", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(httpapi.GrantResponse{Grant: model.Grant{ID: "g_1", Identity: "log-triage-bot", Status: model.Active, RequestedAt: at}})
	})
	mux.HandleFunc("GET /v1/grants/g_1/history", proxyTo(t, history.URL))
	mux.HandleFunc("GET /v1/grants/g_1/sessions", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(httpapi.SessionsResponse{Sessions: []model.Session{}})
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	env := []string{EnvAddr + "=" + srv.URL, EnvToken + "=k"}
	code, out, errOut := run(t, env, "grant", "show", "g_1", "-o", "json")
	var shown struct {
		History []httpapi.Event `json:"history"`
	}
	if err := json.Unmarshal([]byte(out), &shown); err != nil || len(shown.History) != len(all) || shown.History[4].Seq != 5 {
		t.Fatalf("grant show -o json: %d entries (%v), want %d:\n%s", len(shown.History), err, len(all), out)
	}
	if code != 1 || !strings.Contains(errOut, "log entries of this grant differ") {
		t.Errorf("grant show -o json: exit %d, stderr %q: the last page's mismatch is not reported", code, errOut)
	}
	want := []string{"limit=5000", "after=2&limit=5000", "after=4&limit=5000"}
	if got := *queries; strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("queries %q, want %q", got, want)
	}
	code, out, errOut = run(t, env, "grant", "show", "g_1")
	for _, e := range all {
		if !strings.Contains(out, e.Type) {
			t.Errorf("the table lacks %s:\n%s", e.Type, out)
		}
	}
	if code != 1 || !strings.Contains(errOut, "log entries of this grant differ") {
		t.Errorf("grant show: exit %d, stderr %q: the last page's mismatch is not reported", code, errOut)
	}
}

// proxyTo answers each request with what url answers its query.
func proxyTo(t *testing.T, url string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		resp, err := http.Get(url + "?" + r.URL.RawQuery)
		if err != nil {
			t.Error(err)
			return
		}
		defer resp.Body.Close()
		w.Header().Set("Content-Type", "application/json")
		io.Copy(w, resp.Body)
	}
}
