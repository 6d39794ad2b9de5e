package mcpserver

import (
	"context"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/airlock-dev/airlock/internal/client"
	"github.com/airlock-dev/airlock/internal/model"
)

// TestReadmeToolTableMatchesTheServer: the README's MCP section has one
// row per tool an agent is offered on stdio, and says /mcp offers all of
// them but run_with_grant. An agent host's user reads that table to
// know what the model may do; a tool added or renamed in code without it
// is one nobody reviewed the description of.
func TestReadmeToolTableMatchesTheServer(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(b), "\n### MCP\n")
	section, _, ok2 := strings.Cut(section, "\n### ")
	if !ok || !ok2 {
		t.Fatal("README.md has no \"### MCP\" section")
	}
	var documented []string
	for _, m := range regexp.MustCompile("(?m)^\\| `([a-z_]+)` \\|").FindAllStringSubmatch(section, -1) {
		documented = append(documented, m[1])
	}
	slices.Sort(documented)
	if !strings.Contains(section, "It has no `run_with_grant`") {
		t.Error("the MCP section no longer says /mcp has no run_with_grant; check what it says against AllowRun")
	}

	agent := model.Identity{Name: "bot", Kind: model.Agent}
	stdio := offered(t, Options{AllowRun: true}, agent)
	if !slices.Equal(stdio, documented) {
		t.Errorf("airlock mcp offers an agent %v; the README's table lists %v", stdio, documented)
	}
	overHTTP := offered(t, Options{}, agent)
	want := slices.DeleteFunc(slices.Clone(documented), func(s string) bool { return s == "run_with_grant" })
	if !slices.Equal(overHTTP, want) {
		t.Errorf("/mcp offers an agent %v; the README says %v (the table without run_with_grant)", overHTTP, want)
	}
}

// offered lists, sorted, the tools a server for who offers.
func offered(t *testing.T, opts Options, who model.Identity) []string {
	t.Helper()
	ctx := context.Background()
	srv := newFor(client.New("http://127.0.0.1:1", "k"), who, opts)
	st, ct := mcp.NewInMemoryTransports()
	ss, err := srv.Connect(ctx, st, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ss.Close()
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "readme", Version: "1"}, nil).Connect(ctx, ct, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	res, err := cs.ListTools(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tool := range res.Tools {
		names = append(names, tool.Name)
	}
	slices.Sort(names)
	return names
}
