package cli

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/httpapi"
	"github.com/airlock-dev/airlock/internal/model"
)

// TestPendingFollowsPages: GET /v1/pending answers a page at a time, and a
// page may be empty yet have a next (it stopped at its scan bound among
// requests the caller may not decide); airlock pending lists every request
// by following each page's cursor and prints each page as it comes: the
// table under one header, -o json byte for byte what the whole list
// printed at once. Before, the CLI asked for one answer and printed the
// first page alone.
func TestPendingFollowsPages(t *testing.T) {
	at := time.Date(2026, 12, 5, 9, 0, 0, 0, time.UTC)
	var all []model.Grant
	for i := range 7 {
		all = append(all, model.Grant{ID: fmt.Sprintf("g_%02d", i), Identity: "log-triage-bot", IdentityKind: model.Agent, Target: "aws-prod",
			Account: "111122223333", Status: model.Pending, RequestedAt: at.Add(time.Duration(i) * time.Second),
			DecideBy: at.Add(time.Hour), Duration: 30 * time.Minute, Reason: fmt.Sprintf("task %d", i)})
	}
	// The pages the server answers, by cursor: the second one empty.
	pages := map[string]httpapi.ListResponse{
		"":   {Grants: all[:3], Next: "c1"},
		"c1": {Grants: []model.Grant{}, Next: "c2"},
		"c2": {Grants: all[3:6], Next: "c3"},
		"c3": {Grants: all[6:]},
	}
	var mu sync.Mutex
	var queries []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		queries = append(queries, r.URL.Path+"?"+r.URL.RawQuery)
		mu.Unlock()
		p, ok := pages[r.URL.Query().Get("after")]
		if !ok || r.URL.Path != "/v1/pending" {
			http.Error(w, "no such page", http.StatusNotFound)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(p)
	}))
	defer srv.Close()
	env := []string{EnvAddr + "=" + srv.URL, EnvToken + "=k"}

	code, out, errOut := run(t, env, "pending")
	if code != 0 {
		t.Fatalf("pending: exit %d: %s", code, errOut)
	}
	if n := strings.Count(out, "GRANT "); n != 1 {
		t.Errorf("the header is printed %d times:\n%s", n, out)
	}
	for _, g := range all {
		if !strings.Contains(out, g.ID+" ") {
			t.Errorf("the table lacks %s:\n%s", g.ID, out)
		}
	}
	if lines := strings.Split(strings.TrimRight(out, "\n"), "\n"); len(lines) != len(all)+1 {
		t.Errorf("%d lines for %d requests:\n%s", len(lines), len(all), out)
	}
	want := []string{"/v1/pending?limit=1000", "/v1/pending?after=c1&limit=1000", "/v1/pending?after=c2&limit=1000", "/v1/pending?after=c3&limit=1000"}
	if strings.Join(queries, " ") != strings.Join(want, " ") {
		t.Errorf("queries %q, want %q", queries, want)
	}

	code, out, errOut = run(t, env, "pending", "-o", "json")
	if code != 0 {
		t.Fatalf("pending -o json: exit %d: %s", code, errOut)
	}
	wantWholeJSON(t, out, all)

	// None waiting: the header alone, and an empty JSON array, as before.
	pages = map[string]httpapi.ListResponse{"": {Grants: []model.Grant{}}}
	if code, out, errOut := run(t, env, "pending"); code != 0 || strings.Count(out, "\n") != 1 || !strings.HasPrefix(out, "GRANT ") {
		t.Errorf("pending with none: exit %d, %q, %s", code, out, errOut)
	}
	if code, out, errOut := run(t, env, "pending", "-o", "json"); code != 0 || out != "[]\n" {
		t.Errorf("pending -o json with none: exit %d, %q, %s", code, out, errOut)
	}
}
