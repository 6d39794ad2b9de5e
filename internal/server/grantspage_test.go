package server

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http/httptest"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/apierr"
	"github.com/airlock-dev/airlock/internal/client"
	"github.com/airlock-dev/airlock/internal/config"
	"github.com/airlock-dev/airlock/internal/grants"
	"github.com/airlock-dev/airlock/internal/model"
)

// TestGrantsPaged: GET /v1/grants answers a page at a time, on either
// store: more grants than a page are listed across pages, each once and in
// the review's order, by following each page's cursor (as the CLI's client
// does); an agent's pages hold only its own grants, its cursor goes on
// over its own alone, and a cursor given with another filter, or by
// another caller's view, is refused. Before, every matching grant was one
// answer, however many a busy account holds.
func TestGrantsPaged(t *testing.T) {
	for name, extra := range map[string]func(t *testing.T) string{
		"sqlite":   func(*testing.T) string { return "" },
		"postgres": func(t *testing.T) string { return fmt.Sprintf("store: %q\n", pgDatabase(t)) },
	} {
		t.Run(name, func(t *testing.T) {
			cfg, botKey, aliceKey := auditConfigKeys(t, extra(t))
			testGrantsPaged(t, cfg, botKey, aliceKey)
		})
	}
}

func testGrantsPaged(t *testing.T, cfg *config.Config, botKey, aliceKey string) {
	ctx := context.Background()
	s := openServer(t, cfg)
	defer s.Close()
	// The bot's grants (active) and alice's (denied: no policy permits
	// her), interleaved: more than two pages of 7 of either.
	const n, limit = 17, 7
	var all, bots []string
	for i := range n {
		for _, who := range []model.Identity{bot, alice} {
			g, err := s.Service.Request(ctx, who, grants.RequestInput{Target: "aws-prod",
				Scope: []string{"s3:GetObject arn:aws:s3:::logs/app/*"}, Duration: "10m", Reason: fmt.Sprintf("grant %d", i)})
			if err != nil {
				t.Fatal(err)
			}
			all = append(all, g.ID)
			if who.Name == bot.Name {
				bots = append(bots, g.ID)
			}
		}
	}
	srv := httptest.NewServer(s.Handler)
	defer srv.Close()
	today := url.Values{"day": {time.Now().UTC().Format("2006-01-02")}, "target": {"aws-prod"}}

	// pages reads the query a page at a time by hand, checking each page.
	pages := func(c *client.Client, q url.Values) (ids []string, cursors []string) {
		t.Helper()
		after := ""
		for {
			p, err := c.GrantsPage(ctx, q, after, limit)
			if err != nil {
				t.Fatal(err)
			}
			if len(p.Grants) > limit || p.Next != "" && len(p.Grants) != limit {
				t.Fatalf("a page of %d grants (next %q), limit %d", len(p.Grants), p.Next, limit)
			}
			for _, g := range p.Grants {
				ids = append(ids, g.ID)
			}
			if p.Next == "" {
				return ids, cursors
			}
			if len(cursors) > 2*n {
				t.Fatalf("still a next page after %d pages", len(cursors))
			}
			cursors = append(cursors, p.Next)
			after = p.Next
		}
	}
	alicec, agent := client.New(srv.URL, aliceKey), client.New(srv.URL, botKey)
	got, cursors := pages(alicec, today)
	// Requested one after another, so the review's order (requested at,
	// then id) is the order they were asked for in.
	if !slices.Equal(got, all) || len(cursors) != (2*n-1)/limit {
		t.Fatalf("alice's pages: %v over %d pages\nwant %v", got, len(cursors)+1, all)
	}
	mine, agentCursors := pages(agent, today)
	if !slices.Equal(mine, bots) {
		t.Fatalf("the agent's pages: %v\nwant its own %v", mine, bots)
	}
	// The client's Grants follows the pages itself.
	var followed []string
	if err := alicec.Grants(ctx, today, func(gs []model.Grant) error {
		for _, g := range gs {
			followed = append(followed, g.ID)
		}
		return nil
	}); err != nil || !slices.Equal(followed, all) {
		t.Fatalf("Grants followed the pages to %v (%v), want %v", followed, err, all)
	}

	refused := func(what string, c *client.Client, q url.Values, after string) {
		t.Helper()
		_, err := c.GrantsPage(ctx, q, after, limit)
		var ae *apierr.Error
		if !errors.As(err, &ae) || ae.Status != 400 || ae.Field != "after" {
			t.Errorf("%s: %v, want a 400 naming after", what, err)
		}
	}
	// A cursor belongs to its query: another filter, or another caller's
	// view of the same filter, is refused rather than answered from a
	// place it was not written for.
	refused("alice's cursor with another filter", alicec, url.Values{"target": {"aws-prod"}}, cursors[0])
	refused("alice's cursor with another status", alicec, url.Values{"day": today["day"], "target": {"aws-prod"}, "status": {"active"}}, cursors[0])
	refused("alice's cursor given by the agent", agent, today, cursors[0])
	refused("the agent's cursor given by alice", alicec, today, agentCursors[0])
	refused("a cursor made up by hand", alicec, today, "x")
	refused("a cursor of an id no grant has", alicec, today, base64.RawURLEncoding.EncodeToString([]byte("g1.1.0011223344556677.g_\x00")))
	// The agent's cursor, given with its identity spelled out, is the
	// same view: the rest of its own grants, none of alice's.
	withMe := url.Values{"day": today["day"], "target": {"aws-prod"}, "identity": {bot.Name}}
	p, err := agent.GrantsPage(ctx, withMe, agentCursors[0], limit)
	if err != nil || len(p.Grants) != limit || p.Grants[0].ID != bots[limit] {
		t.Fatalf("the agent's second page, identity named: %+v, %v", p, err)
	}
	for _, g := range p.Grants {
		if g.Identity != bot.Name {
			t.Fatalf("the agent was shown %s's grant %s", g.Identity, g.ID)
		}
	}
}
