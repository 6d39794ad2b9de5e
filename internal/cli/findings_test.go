package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/httpapi"
	"github.com/airlock-dev/airlock/internal/model"
)

// findingsPages serves GET /v1/findings as pages of per findings of n,
// the cursor being the index of the last one served, and records the
// queries it was sent.
func findingsPages(t *testing.T, n, per int) (*httptest.Server, []model.Finding, *[]string) {
	t.Helper()
	at := time.Date(2026, 12, 5, 9, 0, 0, 0, time.UTC)
	var all []model.Finding
	for i := range n {
		all = append(all, model.Finding{Kind: model.FindingCredentialMoved, At: at.Add(time.Duration(i) * time.Second),
			Identity: "log-triage-bot", Grant: "g_1", Instance: fmt.Sprintf("10.9.0.%d", i), Others: []string{"10.0.0.1"}})
	}
	srv, queries := pagesServer(t, all, per, func(page []model.Finding, next string) any {
		return httpapi.FindingsResponse{Findings: page, Next: next}
	})
	return srv, all, queries
}

// pagesServer serves all as pages of per, the cursor being the index of
// the last one served, each page answered as resp makes it of its items
// and the next cursor ("" on the last); it records the queries it was sent.
func pagesServer[T any](t *testing.T, all []T, per int, resp func(page []T, next string) any) (*httptest.Server, *[]string) {
	t.Helper()
	var mu sync.Mutex
	var queries []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		queries = append(queries, r.URL.RawQuery)
		mu.Unlock()
		from := 0
		if v := r.URL.Query().Get("after"); v != "" {
			from, _ = strconv.Atoi(v)
		}
		next := ""
		if from+per < len(all) {
			next = strconv.Itoa(from + per)
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(resp(all[from:min(from+per, len(all))], next))
	}))
	t.Cleanup(srv.Close)
	return srv, &queries
}

// wantWholeJSON checks that out, a listing printed a page at a time, is
// byte for byte what printing the whole list v at once printed (an
// encoding/json Encoder indenting by two spaces).
func wantWholeJSON(t *testing.T, out string, v any) {
	t.Helper()
	var whole bytes.Buffer
	enc := json.NewEncoder(&whole)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		t.Fatal(err)
	}
	if out != whole.String() {
		t.Errorf("-o json across pages:\n%s\nwant, as the whole list printed at once:\n%s", out, whole.String())
	}
}

// TestFindingsFollowsPages: GET /v1/findings answers a page at a time;
// airlock findings shows every finding of the day by following each
// page's cursor, in the table (one header) and in -o json (one array, as
// one answer printed it).
func TestFindingsFollowsPages(t *testing.T) {
	srv, all, queries := findingsPages(t, 7, 3)
	env := []string{EnvAddr + "=" + srv.URL, EnvToken + "=k"}
	code, out, errOut := run(t, env, "findings", "--day", "2026-12-05")
	if code != 0 {
		t.Fatalf("findings: exit %d: %s", code, errOut)
	}
	if n := strings.Count(out, "TIME"); n != 1 {
		t.Errorf("the header is printed %d times:\n%s", n, out)
	}
	for _, f := range all {
		if !strings.Contains(out, f.Instance+" ") {
			t.Errorf("the table lacks the finding from %s:\n%s", f.Instance, out)
		}
	}
	if lines := strings.Split(strings.TrimRight(out, "\n"), "\n"); len(lines) != len(all)+1 {
		t.Errorf("%d lines for %d findings:\n%s", len(lines), len(all), out)
	}
	want := []string{"day=2026-12-05&limit=1000", "after=3&day=2026-12-05&limit=1000", "after=6&day=2026-12-05&limit=1000"}
	if got := *queries; strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("queries %q, want %q", got, want)
	}

	code, out, errOut = run(t, env, "findings", "-o", "json")
	if code != 0 {
		t.Fatalf("findings -o json: exit %d: %s", code, errOut)
	}
	wantWholeJSON(t, out, all)
}

// TestFindingsJSONEmpty: no findings is an empty JSON array, as before.
func TestFindingsJSONEmpty(t *testing.T) {
	srv, _, _ := findingsPages(t, 0, 3)
	code, out, errOut := run(t, []string{EnvAddr + "=" + srv.URL, EnvToken + "=k"}, "findings", "-o", "json")
	if code != 0 || out != "[]\n" {
		t.Fatalf("findings -o json with none: exit %d, %q, %s", code, out, errOut)
	}
}

// TestFindingsStopsOnARepeatedCursor: a server that answers every page
// with the cursor it was sent would have the CLI ask for the same page
// forever; it fails instead.
func TestFindingsStopsOnARepeatedCursor(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(httpapi.FindingsResponse{Findings: []model.Finding{}, Next: "5"})
	}))
	defer srv.Close()
	code, _, errOut := run(t, []string{EnvAddr + "=" + srv.URL, EnvToken + "=k"}, "findings")
	if code == 0 || !strings.Contains(errOut, "same cursor") {
		t.Fatalf("findings against a server repeating its cursor: exit %d, %s", code, errOut)
	}
}
