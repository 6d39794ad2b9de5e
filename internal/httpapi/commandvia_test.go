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
// whoever called the route. Beside it, "endpoint" is what the server saw:
// "api" for this route, whatever the client says.
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
				Argv     []string `json:"argv"`
				Via      string   `json:"via"`
				Endpoint string   `json:"endpoint"`
			} `json:"data"`
		}
		if err := json.Unmarshal(ev.Entry, &entry); err != nil {
			t.Fatal(err)
		}
		got = append(got, entry.Data.Argv[len(entry.Data.Argv)-1]+"→"+entry.Data.Via+"@"+entry.Data.Endpoint)
	}
	// "via" is the client's word; "endpoint" what the server saw: each
	// came to the API's route from the network, "mcp" claimed or not
	// (only this server's /mcp endpoint, in process, records "mcp").
	if want := []string{"mcp→mcp@api", "exec→exec@api", "→api@api"}; len(got) != len(want) || got[0] != want[0] || got[1] != want[1] || got[2] != want[2] {
		t.Fatalf("recorded commands (last argument→via@endpoint): %q, want %q", got, want)
	}
}
