package server

import (
	"context"
	"fmt"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/client"
	"github.com/airlock-dev/airlock/internal/config"
	"github.com/airlock-dev/airlock/internal/grants"
	"github.com/airlock-dev/airlock/internal/model"
)

// TestFindingsPaged: GET /v1/findings answers a page at a time, on either
// store: a log with more findings than a page lists them across pages, each
// once and in order, by following each page's cursor (as the CLI's client
// does), and an agent's pages hold only its own. Before, the whole log's
// findings were one answer, which an attacker multiplies by using a
// credential from one address after another.
func TestFindingsPaged(t *testing.T) {
	for name, extra := range map[string]func(t *testing.T) string{
		"sqlite":   func(*testing.T) string { return "" },
		"postgres": func(t *testing.T) string { return fmt.Sprintf("store: %q\n", pgDatabase(t)) },
	} {
		t.Run(name, func(t *testing.T) {
			cfg, botKey, aliceKey := auditConfigKeys(t, extra(t))
			testFindingsPaged(t, cfg, botKey, aliceKey)
		})
	}
}

func testFindingsPaged(t *testing.T, cfg *config.Config, botKey, aliceKey string) {
	ctx := context.Background()
	s := openServer(t, cfg)
	defer s.Close()
	b := bot
	b.Instance = &model.Instance{IP: "10.0.0.1"}
	g, err := s.Service.Request(ctx, b, grants.RequestInput{Target: "aws-prod",
		Scope: []string{"s3:GetObject arn:aws:s3:::logs/app/*"}, Duration: "10m", Reason: "findings"})
	if err != nil || g.Status != model.Active {
		t.Fatalf("request: %v, %v", g.Status, err)
	}
	gg, err := s.Service.Authority().Lookup(g.CredentialID)
	if err != nil {
		t.Fatal(err)
	}
	// Each address the credentials are used from is a credential-moved
	// finding: more than two pages of 7.
	const n, limit = 17, 7
	for i := range n {
		ses, err := s.Service.Authority().StartSession(ctx, gg, fmt.Sprintf("10.9.0.%d:4242", i))
		if err != nil {
			t.Fatal(err)
		}
		if err := ses.End(ctx); err != nil {
			t.Fatal(err)
		}
	}
	srv := httptest.NewServer(s.Handler)
	defer srv.Close()
	today := time.Now().UTC().Format("2006-01-02")

	alice := client.New(srv.URL, aliceKey)
	var got []string
	after, pages := "", 0
	for {
		p, err := alice.FindingsPage(ctx, today, after, limit)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		if len(p.Findings) > limit {
			t.Fatalf("page %d holds %d findings, more than its limit %d", pages, len(p.Findings), limit)
		}
		for _, f := range p.Findings {
			got = append(got, f.Instance)
		}
		if p.Next == "" {
			break
		}
		if pages > n {
			t.Fatalf("still a next page after %d pages", pages)
		}
		after = p.Next
	}
	if len(got) != n || pages < 3 {
		t.Fatalf("%d findings over %d pages, want %d over at least 3: %v", len(got), pages, n, got)
	}
	for i, inst := range got {
		if want := fmt.Sprintf("10.9.0.%d", i); inst != want {
			t.Fatalf("finding %d is from %s, want %s (in the log's order, each once): %v", i, inst, want, got)
		}
	}
	// The client's Findings follows the pages itself.
	all := 0
	if err := alice.Findings(ctx, "", func(fs []model.Finding) error { all += len(fs); return nil }); err != nil || all != n {
		t.Fatalf("Findings followed the pages to %d findings (%v), want %d", all, err, n)
	}
	// Another day's pages are empty, and end.
	if p, err := alice.FindingsPage(ctx, "2001-01-01", "", limit); err != nil || len(p.Findings) != 0 || p.Next != "" {
		t.Fatalf("another day: %+v, %v", p, err)
	}
	// The agent sees its own findings (here, all of them), paged alike.
	agent := client.New(srv.URL, botKey)
	mine := 0
	if err := agent.Findings(ctx, today, func(fs []model.Finding) error {
		for _, f := range fs {
			if f.Identity != bot.Name {
				t.Errorf("the agent was shown %s's finding", f.Identity)
			}
			// (Its own API calls, from another address than its
			// request, may add a shared-identity finding.)
			if f.Kind == model.FindingCredentialMoved {
				mine++
			}
		}
		return nil
	}); err != nil || mine != n {
		t.Fatalf("the agent's findings: %d (%v), want %d", mine, err, n)
	}
}
