package cli

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/airlock-dev/airlock/internal/model"
)

// TestAgentListAndWhoamiShowAuthMethods: agent list has an AUTH column and
// -o json an auth_methods list; whoami says how the identity may sign in.
func TestAgentListAndWhoamiShowAuthMethods(t *testing.T) {
	l := startServer(t, nil)
	code, out, errOut := l.as(l.aliceKey, "agent", "list")
	if code != 0 {
		t.Fatalf("agent list: exit %d: %s", code, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if h := strings.Fields(lines[0]); h[len(h)-1] != "AUTH" {
		t.Fatalf("agent list header = %q", lines[0])
	}
	for _, ln := range lines[1:] {
		if f := strings.Fields(ln); f[len(f)-1] != "key" {
			t.Errorf("agent list row %q: AUTH is not key", ln)
		}
	}

	code, out, errOut = l.as(l.aliceKey, "agent", "list", "-o", "json")
	var ids []model.Identity
	if code != 0 || json.Unmarshal([]byte(out), &ids) != nil || len(ids) == 0 {
		t.Fatalf("agent list -o json: exit %d: %s %s", code, out, errOut)
	}
	for _, id := range ids {
		if len(id.AuthMethods) != 1 || id.AuthMethods[0] != "key" {
			t.Errorf("%s auth_methods = %q", id.Name, id.AuthMethods)
		}
	}

	code, out, errOut = l.as(l.botKey, "whoami")
	if code != 0 || !strings.Contains(out, "may authenticate by key\n") {
		t.Fatalf("whoami: exit %d: %q %s", code, out, errOut)
	}
}
