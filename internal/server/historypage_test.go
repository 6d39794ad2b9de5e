package server

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/airlock-dev/airlock/internal/client"
	"github.com/airlock-dev/airlock/internal/config"
	"github.com/airlock-dev/airlock/internal/grants"
	"github.com/airlock-dev/airlock/internal/httpapi"
	"github.com/airlock-dev/airlock/internal/store"
)

// TestGrantHistoryPagesEditedStore: GET /v1/grants/{id}/history answers a
// page of the grant's log entries, not all of them (a grant of a long
// session holds millions: one answer of hundreds of megabytes), and the
// pages, read after the grant's record as airlock grant show reads them,
// hold every entry once in log order; a call's parameters edited in the
// database after the first page (its leaf hash made to match) are
// reported on the page that holds the call, on SQLite and PostgreSQL. So
// is it for a grant whose own entries (commands, one after every 10
// calls) lie in more than 64 runs among its sessions' calls, whose pages
// continue the proof its record's read kept without reading its own
// entries again.
func TestGrantHistoryPagesEditedStore(t *testing.T) {
	forEditableStoresCommands(t, testGrantHistoryPagesEdited)
}

// forEditableStoresCommands runs test on SQLite and PostgreSQL, for a
// grant without commands (every 0) and one with a command after every 10
// calls: its own entries in more than 64 runs among its sessions' calls.
func forEditableStoresCommands(t *testing.T, test func(t *testing.T, cfg *config.Config, edit editEntry, aliceKey string, every int)) {
	for name, setup := range editableStores() {
		for _, every := range []int{0, 10} {
			t.Run(fmt.Sprintf("%s/commands every %d calls", name, every), func(t *testing.T) {
				cfg, edit, _, aliceKey := setup(t)
				test(t, cfg, edit, aliceKey, every)
			})
		}
	}
}

func testGrantHistoryPagesEdited(t *testing.T, cfg *config.Config, edit editEntry, aliceKey string, every int) {
	ctx := context.Background()
	s := openServer(t, cfg)
	defer s.Close()
	const sessions, calls, limit = 30, 40, 100
	grant := loggedSessionsCommands(t, s, sessions, calls, every)
	entries, err := s.store.LogEntries(ctx, store.LogFilter{GrantID: grant})
	if err != nil || len(entries) < sessions*calls {
		t.Fatalf("%d entries (%v)", len(entries), err)
	}
	// A call on page 8.
	i := 7*limit + 10
	for entries[i].Type != "session.call" {
		i++
	}
	victim := entries[i]
	srv := httptest.NewServer(s.Handler)
	defer srv.Close()
	get := func(q string) (int, []byte) {
		t.Helper()
		req, _ := http.NewRequest("GET", srv.URL+"/v1/grants/"+grant+"/history"+q, nil)
		req.Header.Set("Authorization", "Bearer "+aliceKey)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, body
	}
	// No page named: the first page of the default size, not the whole log.
	code, body := get("")
	var first httpapi.HistoryResponse
	if err := json.Unmarshal(body, &first); code != http.StatusOK || err != nil {
		t.Fatalf("%d %.200s (%v)", code, body, err)
	}
	if len(first.Events) != grants.DefaultEventsPage || first.Next == "" || len(first.LogMismatch) > 0 {
		t.Fatalf("no page named: %d events of %d (%d bytes), next %q, %q", len(first.Events), len(entries), len(body), first.Next, first.LogMismatch)
	}
	code, body = get(fmt.Sprintf("?limit=%d", limit))
	if err := json.Unmarshal(body, &first); code != http.StatusOK || err != nil || len(first.Events) != limit {
		t.Fatalf("?limit=%d: %d, %d events of %d (%d bytes), %v", limit, code, len(first.Events), len(entries), len(body), err)
	}
	for _, q := range []string{"?limit=0", fmt.Sprintf("?limit=%d", grants.MaxEventsPage+1), "?after=x", "?from=1"} {
		if code, body := get(q); code != http.StatusBadRequest {
			t.Errorf("%s: %d %.200s, want 400", q, code, body)
		}
	}

	alice := client.New(srv.URL, aliceKey)
	if g, err := alice.Grant(ctx, grant); err != nil || len(g.LogMismatch) > 0 {
		t.Fatalf("the grant: %q, %v", g.LogMismatch, err)
	}
	differ := "log entries of this grant differ from those an earlier read of it read"
	var got []int64
	reported := false
	for after, page := "", 1; ; page++ {
		p, err := alice.HistoryPage(ctx, grant, after, limit)
		if err != nil {
			t.Fatal(err)
		}
		if len(p.Events) > limit {
			t.Fatalf("page %d: %d events", page, len(p.Events))
		}
		mm := strings.Join(p.LogMismatch, "\n")
		holds := slices.ContainsFunc(p.Events, func(e httpapi.Event) bool { return e.Seq == victim.Seq })
		switch {
		case page == 1 && mm != "":
			t.Errorf("page 1: %q", mm)
		case holds && !strings.Contains(mm, differ):
			t.Errorf("page %d: the edited entry #%d is not reported: %q", page, victim.Seq, mm)
		case holds:
			reported = true
		}
		for _, e := range p.Events {
			got = append(got, e.Seq)
		}
		if page == 1 {
			edit.rehashed(t, victim, `"request_id":"`, `"request_id":"9`)
		}
		if p.Next == "" {
			break
		}
		if page > len(entries) {
			t.Fatalf("still a next page after %d pages", page)
		}
		after = p.Next
	}
	if !reported {
		t.Errorf("no page held the edited entry #%d", victim.Seq)
	}
	if len(got) != len(entries) {
		t.Fatalf("%d entries over the pages, the grant holds %d", len(got), len(entries))
	}
	for i, e := range entries {
		if got[i] != e.Seq {
			t.Fatalf("entry %d is #%d, want #%d (in log order, each once)", i, got[i], e.Seq)
		}
	}
}

// TestGrantRecordEditedStore: GET /v1/grants/{id} (the console's grant
// page reads it on every view) reads the grant's own entries again after
// the first read kept its proof, and an own entry edited in the database
// since (its leaf hash made to match) is reported, on SQLite and
// PostgreSQL: the grant's request, and a command of a grant whose
// commands (one after every 10 calls) lie in more than 64 runs among its
// sessions' calls. Such a grant's record was derived from its whole log on
// each read, which does not see a command edited so: it was not reported.
func TestGrantRecordEditedStore(t *testing.T) {
	forEditableStoresCommands(t, testGrantRecordEdited)
}

func testGrantRecordEdited(t *testing.T, cfg *config.Config, edit editEntry, aliceKey string, every int) {
	ctx := context.Background()
	s := openServer(t, cfg)
	defer s.Close()
	const sessions, calls = 30, 40
	grant := loggedSessionsCommands(t, s, sessions, calls, every)
	typ, old, new := "grant.requested", `"reason":"`, `"reason":"x`
	if every > 0 {
		typ, old, new = "grant.command", `"ls"`, `"rm"`
	}
	own, err := s.store.LogEntries(ctx, store.LogFilter{GrantID: grant, Type: typ})
	if err != nil || len(own) == 0 || every > 0 && len(own) != sessions*calls/every {
		t.Fatalf("%d %s entries (%v)", len(own), typ, err)
	}
	victim := own[len(own)/2]
	srv := httptest.NewServer(s.Handler)
	defer srv.Close()
	alice := client.New(srv.URL, aliceKey)
	for i := range 2 {
		if g, err := alice.Grant(ctx, grant); err != nil || len(g.LogMismatch) > 0 {
			t.Fatalf("read %d: %q, %v", i+1, g.LogMismatch, err)
		}
	}
	edit.rehashed(t, victim, old, new)
	differ := "log entries of this grant differ from those an earlier read of it read"
	if g, err := alice.Grant(ctx, grant); err != nil || !strings.Contains(strings.Join(g.LogMismatch, "\n"), differ) {
		t.Errorf("the grant after its %s entry #%d was edited: %q, %v", typ, victim.Seq, g.LogMismatch, err)
	}
}
