package server

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"slices"
	"testing"

	"github.com/airlock-dev/airlock/internal/apierr"
	"github.com/airlock-dev/airlock/internal/client"
	"github.com/airlock-dev/airlock/internal/config"
	"github.com/airlock-dev/airlock/internal/grants"
	"github.com/airlock-dev/airlock/internal/model"
)

// TestGrantSessionsPaged: GET /v1/grants/{id}/sessions answers a page at a
// time, on either store: a grant with more sessions than a page lists them
// across pages, each once and in the order they started, by following
// each page's cursor (as the CLI's client does); a cursor of another
// grant's sessions is refused. Before, every session of the grant was one
// answer, and a client that connects per statement makes hundreds of
// thousands.
func TestGrantSessionsPaged(t *testing.T) {
	for name, extra := range map[string]func(t *testing.T) string{
		"sqlite":   func(*testing.T) string { return "" },
		"postgres": func(t *testing.T) string { return fmt.Sprintf("store: %q\n", pgDatabase(t)) },
	} {
		t.Run(name, func(t *testing.T) {
			cfg, botKey, aliceKey := auditConfigKeys(t, extra(t))
			testGrantSessionsPaged(t, cfg, botKey, aliceKey)
		})
	}
}

func testGrantSessionsPaged(t *testing.T, cfg *config.Config, botKey, aliceKey string) {
	ctx := context.Background()
	s := openServer(t, cfg)
	defer s.Close()
	var gs []model.Grant
	for range 2 {
		g, err := s.Service.Request(ctx, bot, grants.RequestInput{Target: "aws-prod",
			Scope: []string{"s3:GetObject arn:aws:s3:::logs/app/*"}, Duration: "10m", Reason: "sessions"})
		if err != nil || g.Status != model.Active {
			t.Fatalf("request: %v, %v", g.Status, err)
		}
		gs = append(gs, g)
	}
	gg, err := s.Service.Authority().Lookup(gs[0].CredentialID)
	if err != nil {
		t.Fatal(err)
	}
	const n, limit = 17, 7
	var started []string
	for range n {
		ses, err := s.Service.Authority().StartSession(ctx, gg, "127.0.0.1:4242")
		if err != nil {
			t.Fatal(err)
		}
		started = append(started, ses.ID)
		if err := ses.End(ctx); err != nil {
			t.Fatal(err)
		}
	}
	srv := httptest.NewServer(s.Handler)
	defer srv.Close()

	for who, c := range map[string]*client.Client{"alice": client.New(srv.URL, aliceKey), "the agent": client.New(srv.URL, botKey)} {
		var got, cursors []string
		after := ""
		for {
			p, err := c.SessionsPage(ctx, gs[0].ID, after, limit)
			if err != nil {
				t.Fatalf("%s: %v", who, err)
			}
			if len(p.Sessions) > limit || p.Next != "" && len(p.Sessions) != limit {
				t.Fatalf("%s: a page of %d sessions (next %q), limit %d", who, len(p.Sessions), p.Next, limit)
			}
			for _, ss := range p.Sessions {
				got = append(got, ss.ID)
			}
			if p.Next == "" {
				break
			}
			if len(cursors) > n {
				t.Fatalf("%s: still a next page after %d pages", who, len(cursors))
			}
			cursors = append(cursors, p.Next)
			after = p.Next
		}
		if !slices.Equal(got, started) || len(cursors) != (n-1)/limit {
			t.Fatalf("%s's pages: %v over %d pages\nwant, in the order they started: %v", who, got, len(cursors)+1, started)
		}
		// The client's Sessions follows the pages itself.
		if all, err := c.Sessions(ctx, gs[0].ID); err != nil || len(all) != n {
			t.Fatalf("%s: Sessions followed the pages to %d sessions (%v), want %d", who, len(all), err, n)
		}
		// A cursor belongs to its grant.
		_, err = c.SessionsPage(ctx, gs[1].ID, cursors[0], limit)
		var ae *apierr.Error
		if !errors.As(err, &ae) || ae.Status != 400 || ae.Field != "after" {
			t.Errorf("%s: a cursor of another grant's sessions: %v, want a 400 naming after", who, err)
		}
		if p, err := c.SessionsPage(ctx, gs[1].ID, "", limit); err != nil || len(p.Sessions) != 0 || p.Next != "" {
			t.Errorf("%s: the other grant's sessions: %+v, %v; want none", who, p, err)
		}
	}
}
