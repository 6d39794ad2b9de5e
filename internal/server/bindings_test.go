package server

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/airlock-dev/airlock/internal/store"
)

// TestBindingChangeLoggedAtStart: alice's slack_user edited in
// airlock.yaml between two starts is an identity.updated entry naming the
// new and the previous member (the configuration reaches the identities'
// rows through Open), a third start on the same file writes none, and
// audit verify compares the rows' bindings with the log and passes.
func TestBindingChangeLoggedAtStart(t *testing.T) {
	cfg := auditConfig(t, "")
	ctx := context.Background()
	start := func(slackUser string) *Server {
		t.Helper()
		for i := range cfg.Identities {
			if cfg.Identities[i].Name == "alice" {
				cfg.Identities[i].SlackUser = slackUser
			}
		}
		return openServer(t, cfg)
	}
	updates := func(s *Server) []map[string]any {
		t.Helper()
		es, err := s.store.LogEntries(ctx, store.LogFilter{Type: "identity.updated"})
		if err != nil {
			t.Fatal(err)
		}
		var out []map[string]any
		for _, e := range es {
			var env struct{ Data map[string]any }
			if err := json.Unmarshal(e.Data, &env); err != nil {
				t.Fatal(err)
			}
			out = append(out, env.Data)
		}
		return out
	}
	start("U024BE7LH").Close()
	s := start("U0MALLORY")
	u := updates(s)
	s.Close()
	if len(u) != 1 || u[0]["name"] != "alice" || u[0]["slack_user"] != "U0MALLORY" {
		t.Fatalf("alice's slack_user changed between starts: identity.updated entries %v", u)
	}
	if p, _ := u[0]["previous"].(map[string]any); p["slack_user"] != "U024BE7LH" {
		t.Errorf("previous bindings %v, want slack_user U024BE7LH", u[0]["previous"])
	}
	s = start("U0MALLORY")
	defer s.Close()
	if u := updates(s); len(u) != 1 {
		t.Errorf("an unchanged start wrote more: %v", u)
	}
	if rep, err := s.Verify(ctx); err != nil || !rep.OK {
		t.Fatalf("verify: %v %s", err, problems(rep))
	}
}
