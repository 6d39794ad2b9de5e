package httpapi_test

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/airlock-dev/airlock/internal/apierr"
	"github.com/airlock-dev/airlock/internal/httpapi"
)

// TestCommandVia: a recorded command says where it was run from, as the
// client says: "mcp" (run_with_grant), "exec" (airlock exec), and "api"
// when the client says nothing. Every command was recorded "via": "mcp",
// whoever called the route.
func TestCommandVia(t *testing.T) {
	e := newEnv(t)
	active := e.request(e.bot, autoScope, "10m")
	for _, via := range []string{"mcp", "exec", ""} {
		if r := e.do("POST", "/v1/grants/"+active.ID+"/commands", e.bot, httpapi.CommandInput{Argv: []string{"aws", "s3", "ls", via}, Via: via}); r.status != http.StatusOK {
			t.Fatalf("recording a command via %q: %d %s", via, r.status, r.body)
		}
	}
	wantError(t, e.do("POST", "/v1/grants/"+active.ID+"/commands", e.bot, httpapi.CommandInput{Argv: []string{"ls"}, Via: "slack"}), http.StatusBadRequest, apierr.CodeInvalid, "via")

	var hist httpapi.HistoryResponse
	e.do("GET", "/v1/grants/"+active.ID+"/history", e.alice, nil).decode(t, &hist)
	var got []string
	for _, ev := range hist.Events {
		if ev.Type != "grant.command" {
			continue
		}
		var entry struct {
			Data struct {
				Argv []string `json:"argv"`
				Via  string   `json:"via"`
			} `json:"data"`
		}
		if err := json.Unmarshal(ev.Entry, &entry); err != nil {
			t.Fatal(err)
		}
		got = append(got, entry.Data.Argv[len(entry.Data.Argv)-1]+"→"+entry.Data.Via)
	}
	if want := []string{"mcp→mcp", "exec→exec", "→api"}; len(got) != len(want) || got[0] != want[0] || got[1] != want[1] || got[2] != want[2] {
		t.Fatalf("recorded commands (last argument→via): %q, want %q", got, want)
	}
}
