package server

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/airlock-dev/airlock/internal/client"
	"github.com/airlock-dev/airlock/internal/config"
	"github.com/airlock-dev/airlock/internal/gateway"
	"github.com/airlock-dev/airlock/internal/grants"
	"github.com/airlock-dev/airlock/internal/httpapi"
	"github.com/airlock-dev/airlock/internal/model"
	"github.com/airlock-dev/airlock/internal/store"
)

// TestSessionEventsPaged: GET /v1/sessions/{id} answers a page of the
// session's events at a time, on either store: following each page's
// cursor reads every event once and in log order, each page with the
// session's record; a client that names no page gets the first page and
// its next. Before, the whole recording was one answer: a session of a
// million statements was read whole into the server's memory.
func TestSessionEventsPaged(t *testing.T) {
	for name, extra := range map[string]func(t *testing.T) string{
		"sqlite":   func(*testing.T) string { return "" },
		"postgres": func(t *testing.T) string { return fmt.Sprintf("store: %q\n", pgDatabase(t)) },
	} {
		t.Run(name, func(t *testing.T) {
			cfg, _, aliceKey := auditConfigKeys(t, extra(t))
			testSessionEventsPaged(t, cfg, aliceKey)
		})
	}
}

func testSessionEventsPaged(t *testing.T, cfg *config.Config, aliceKey string) {
	ctx := context.Background()
	s := openServer(t, cfg)
	defer s.Close()
	// Two sessions whose entries interleave in the log.
	sessions := pagingSessions(t, s, 2)
	const calls, limit = 20, 7
	for i := range calls {
		for _, ses := range sessions {
			if err := ses.Request(ctx, gateway.Call{Action: "s3:GetObject", Resource: fmt.Sprintf("arn:aws:s3:::logs/app/k%02d", i), Allowed: true}); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, ses := range sessions {
		if err := ses.End(ctx); err != nil {
			t.Fatal(err)
		}
	}
	// The entries are durable in the journal; the store has them once
	// it is copied (as before any read of the log).
	if err := s.log.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	id := sessions[0].ID
	all, err := s.store.LogEntries(ctx, store.LogFilter{SessionID: id})
	if err != nil || len(all) != calls+2 {
		t.Fatalf("the store holds %d entries of %s (%v), want %d", len(all), id, err, calls+2)
	}
	srv := httptest.NewServer(s.Handler)
	defer srv.Close()
	alice := client.New(srv.URL, aliceKey)

	var got []int64
	after, pages := "", 0
	for {
		p, err := alice.SessionEventsPage(ctx, id, after, limit)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		if p.Session.ID != id || p.Session.Calls != calls || len(p.Session.LogMismatch) > 0 {
			t.Fatalf("page %d: session %+v", pages, p.Session)
		}
		if len(p.Events) > limit || (p.Next != "" && len(p.Events) != limit) {
			t.Fatalf("page %d: %d events, next %q, limit %d", pages, len(p.Events), p.Next, limit)
		}
		for _, e := range p.Events {
			if e.SessionID != id {
				t.Fatalf("page %d: an event of session %s", pages, e.SessionID)
			}
			got = append(got, e.Seq)
		}
		if p.Next == "" {
			break
		}
		if pages > calls {
			t.Fatalf("still a next page after %d pages", pages)
		}
		after = p.Next
	}
	if want := (len(all) + limit - 1) / limit; pages != want || len(got) != len(all) {
		t.Fatalf("%d events over %d pages, want %d over %d", len(got), pages, len(all), want)
	}
	for i, e := range all {
		if got[i] != e.Seq {
			t.Fatalf("event %d is #%d, want #%d (in log order, each once)", i, got[i], e.Seq)
		}
	}
	// No page named: the first page of the default size, whole here.
	if p, err := alice.Session(ctx, id); err != nil || len(p.Events) != len(all) || p.Next != "" {
		t.Fatalf("the whole session: %d events, next %q, %v", len(p.Events), p.Next, err)
	}
	// The client follows the pages itself.
	n := 0
	if err := alice.EachSessionPage(ctx, id, 3, func(p httpapi.SessionResponse) error { n += len(p.Events); return nil }); err != nil || n != len(all) {
		t.Fatalf("EachSessionPage followed the pages to %d events (%v), want %d", n, err, len(all))
	}
	// Bad pages are refused; another's session is not found on any page.
	for _, q := range []string{"limit=0", fmt.Sprintf("limit=%d", grants.MaxEventsPage+1), "after=0", "after=x", "after=01", "limit=1&limit=2", "from=1"} {
		req, _ := http.NewRequest("GET", srv.URL+"/v1/sessions/"+id+"?"+q, nil)
		req.Header.Set("Authorization", "Bearer "+aliceKey)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var e struct {
			Error struct {
				Field string `json:"field"`
			} `json:"error"`
		}
		if resp.StatusCode != http.StatusBadRequest || json.Unmarshal(body, &e) != nil {
			t.Errorf("?%s: %d %s, want 400", q, resp.StatusCode, body)
		}
	}
}

// pagingSessions starts n sessions of one active grant of the bot's.
func pagingSessions(t *testing.T, s *Server, n int) []*gateway.Session {
	t.Helper()
	ctx := context.Background()
	g, err := s.Service.Request(ctx, bot, grants.RequestInput{Target: "aws-prod",
		Scope: []string{"s3:GetObject arn:aws:s3:::logs/app/*"}, Duration: "10m", Reason: "paging"})
	if err != nil || g.Status != model.Active {
		t.Fatalf("request: %v, %v", g.Status, err)
	}
	gg, err := s.Service.Authority().Lookup(g.CredentialID)
	if err != nil {
		t.Fatal(err)
	}
	var sessions []*gateway.Session
	for range n {
		ses, err := s.Service.Authority().StartSession(ctx, gg, "client")
		if err != nil {
			t.Fatal(err)
		}
		sessions = append(sessions, ses)
	}
	return sessions
}
