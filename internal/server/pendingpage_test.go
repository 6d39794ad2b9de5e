package server

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/airlock-dev/airlock/internal/apierr"
	"github.com/airlock-dev/airlock/internal/authn"
	"github.com/airlock-dev/airlock/internal/client"
	"github.com/airlock-dev/airlock/internal/config"
	"github.com/airlock-dev/airlock/internal/grants"
	"github.com/airlock-dev/airlock/internal/model"
)

// pendingTestConfig is auditTestConfig with oscar, a person of ops, and a
// second target, aws-dev: the bot asks a person for reads on both; alice
// (sre-leads) may decide aws-prod's requests only, oscar both targets'.
var pendingTestConfig = strings.NewReplacer("targets:\n", `  - name: oscar
    kind: human
    groups: [ops]
    key_sha256: "%s"
targets:
  - name: aws-dev
    kind: aws
    account: "444455556666"
    region: us-east-1
    endpoint: http://127.0.0.1:7070
    credentials:
      access_key_id_env: AWS_DEV_ACCESS_KEY_ID
      secret_access_key_env: AWS_DEV_SECRET_ACCESS_KEY
`).Replace(auditTestConfig)

const pendingTestPolicies = `@id("sre-asks-prod")
@approval("human")
permit (principal in Group::"sre-team", action == Action::"s3:GetObject", resource == Target::"aws-prod");

@id("sre-asks-dev")
@approval("human")
permit (principal in Group::"sre-team", action == Action::"s3:GetObject", resource == Target::"aws-dev");

@id("leads-approve-prod")
permit (principal in Group::"sre-leads", action == Action::"approve", resource == Target::"aws-prod");

@id("ops-approve-prod")
permit (principal in Group::"ops", action == Action::"approve", resource == Target::"aws-prod");

@id("ops-approve-dev")
permit (principal in Group::"ops", action == Action::"approve", resource == Target::"aws-dev");
`

// TestPendingPaged: GET /v1/pending answers a page at a time, on either
// store: a queue longer than a page is listed across pages, each request
// once and in the order requested, by following each page's cursor (as
// the CLI's client does); the pages of alice, who may decide only some of
// the pending requests, hold only those, full pages though the others lie
// between them; a cursor is its caller's alone. Before, the queue was one
// answer and the parameters were ignored.
func TestPendingPaged(t *testing.T) {
	for name, extra := range map[string]func(t *testing.T) string{
		"sqlite":   func(*testing.T) string { return "" },
		"postgres": func(t *testing.T) string { return fmt.Sprintf("store: %q\n", pgDatabase(t)) },
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			keys := map[string]string{}
			var shas []any
			for _, name := range []string{"bot", "alice", "oscar"} {
				k, sha := authn.NewKey()
				keys[name] = k
				shas = append(shas, sha)
			}
			for name, text := range map[string]string{
				"policies/pending.cedar": pendingTestPolicies,
				"airlock.yaml":           fmt.Sprintf(pendingTestConfig+extra(t), shas...),
			} {
				path := filepath.Join(dir, name)
				if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			cfg, err := config.Load(filepath.Join(dir, "airlock.yaml"))
			if err != nil {
				t.Fatal(err)
			}
			testPendingPaged(t, cfg, keys)
		})
	}
}

func testPendingPaged(t *testing.T, cfg *config.Config, keys map[string]string) {
	ctx := context.Background()
	s := openServer(t, cfg)
	defer s.Close()
	s.Service.SetMaxPending(100)
	// The bot's requests on aws-prod and aws-dev, interleaved, two on dev
	// for one on prod: more than two pages of 7 of alice's.
	const n, limit = 17, 7
	var all, prod []string
	for i := range n {
		for _, target := range []string{"aws-dev", "aws-prod", "aws-dev"} {
			g, err := s.Service.Request(ctx, bot, grants.RequestInput{Target: target,
				Scope: []string{"s3:GetObject arn:aws:s3:::logs/*"}, Duration: "30m", Reason: fmt.Sprintf("request %d", i)})
			if err != nil || g.Status != model.Pending {
				t.Fatalf("request on %s: %s, %v", target, g.Status, err)
			}
			all = append(all, g.ID)
			if target == "aws-prod" {
				prod = append(prod, g.ID)
			}
		}
	}
	srv := httptest.NewServer(s.Handler)
	defer srv.Close()
	alicec, oscarc, agent := client.New(srv.URL, keys["alice"]), client.New(srv.URL, keys["oscar"]), client.New(srv.URL, keys["bot"])

	// pages reads a queue a page at a time by hand, checking each page.
	pages := func(c *client.Client) (ids, cursors []string) {
		t.Helper()
		after := ""
		for {
			p, err := c.PendingPage(ctx, after, limit)
			if err != nil {
				t.Fatal(err)
			}
			if len(p.Grants) > limit || p.Next != "" && len(p.Grants) != limit {
				t.Fatalf("a page of %d requests (next %q), limit %d", len(p.Grants), p.Next, limit)
			}
			for _, g := range p.Grants {
				ids = append(ids, g.ID)
			}
			if p.Next == "" {
				return ids, cursors
			}
			if len(cursors) > len(all) {
				t.Fatalf("still a next page after %d pages", len(cursors))
			}
			cursors = append(cursors, p.Next)
			after = p.Next
		}
	}
	// Requested one after another, so the queue's order (requested at,
	// then id) is the order they were asked for in.
	mine, aliceCursors := pages(alicec)
	if !slices.Equal(mine, prod) || len(aliceCursors) != (n-1)/limit {
		t.Fatalf("alice's pages: %v over %d pages\nwant only aws-prod's %v", mine, len(aliceCursors)+1, prod)
	}
	every, oscarCursors := pages(oscarc)
	if !slices.Equal(every, all) || len(oscarCursors) != (3*n-1)/limit {
		t.Fatalf("oscar's pages: %v over %d pages\nwant %v", every, len(oscarCursors)+1, all)
	}
	// The client's Pending follows the pages itself.
	var followed []string
	if err := alicec.Pending(ctx, func(gs []model.Grant) error {
		for _, g := range gs {
			followed = append(followed, g.ID)
		}
		return nil
	}); err != nil || !slices.Equal(followed, prod) {
		t.Fatalf("Pending followed the pages to %v (%v), want %v", followed, err, prod)
	}

	refused := func(what string, c *client.Client, after string, limit int, field string) {
		t.Helper()
		_, err := c.PendingPage(ctx, after, limit)
		var ae *apierr.Error
		if !errors.As(err, &ae) || ae.Status != 400 || ae.Field != field {
			t.Errorf("%s: %v, want a 400 naming %s", what, err, field)
		}
	}
	refused("alice's cursor given by oscar", oscarc, aliceCursors[0], limit, "after")
	refused("oscar's cursor given by alice", alicec, oscarCursors[0], limit, "after")
	refused("a cursor made up by hand", alicec, "x", limit, "after")
	refused("a cursor of an id no grant has", alicec, base64.RawURLEncoding.EncodeToString([]byte("p1.1.0011223344556677.g_\x00")), limit, "after")
	refused("more than a page may hold", alicec, "", grants.MaxPendingPage+1, "limit")
	if _, err := agent.PendingPage(ctx, "", limit); !isStatus(err, 403) {
		t.Errorf("the agent's queue: %v, want a 403", err)
	}
}

func isStatus(err error, status int) bool {
	var ae *apierr.Error
	return errors.As(err, &ae) && ae.Status == status
}
