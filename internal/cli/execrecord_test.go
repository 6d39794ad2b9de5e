package cli

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestExecRecordsTheCommand: airlock exec writes CMD's command line to
// the grant's log before running it, as run_with_grant does, with
// "via": "exec" and without the caller's key. It recorded nothing, and
// the route it now uses recorded every command "via": "mcp".
func TestExecRecordsTheCommand(t *testing.T) {
	l := startServer(t, nil)
	code, out, errOut := l.as(l.botKey, "exec", "aws-prod", "--allow", "s3:GetObject arn:aws:s3:::logs/app/*", "--for", "5m", "--reason", "record",
		"--", "sh", "-c", "true "+l.botKey)
	if code != 0 {
		t.Fatalf("exec: exit %d: %s %s", code, out, errOut)
	}
	g := l.grantOf(errOut)
	code, out, errOut = l.as(l.aliceKey, "grant", "show", g.ID, "-o", "json")
	if code != 0 {
		t.Fatalf("grant show: exit %d: %s", code, errOut)
	}
	var shown struct {
		History []struct {
			Type  string          `json:"type"`
			Entry json.RawMessage `json:"entry"`
		} `json:"history"`
	}
	if err := json.Unmarshal([]byte(out), &shown); err != nil {
		t.Fatal(err)
	}
	var commands []string
	for _, e := range shown.History {
		if e.Type != "grant.command" {
			continue
		}
		var entry struct {
			Data struct {
				Argv []string `json:"argv"`
				Via  string   `json:"via"`
			} `json:"data"`
		}
		if err := json.Unmarshal(e.Entry, &entry); err != nil {
			t.Fatal(err)
		}
		commands = append(commands, strings.Join(entry.Data.Argv, " ")+" via "+entry.Data.Via)
	}
	if want := "sh -c true [REDACTED] via exec"; len(commands) != 1 || commands[0] != want {
		t.Fatalf("recorded commands %q, want [%q]", commands, want)
	}
	if strings.Contains(out, l.botKey) {
		t.Fatal("the caller's key is in the grant's history")
	}
}
