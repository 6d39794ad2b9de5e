package mcpserver

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/airlock-dev/airlock/internal/client"
	"github.com/airlock-dev/airlock/internal/model"
)

// TestHandlerPanicIsOneFailedCall checks that a panicking tool answers its
// one call with an error and leaves the process (and the session) alive:
// the SDK runs handlers on goroutines of their own, where an unrecovered
// panic ends the program.
func TestHandlerPanicIsOneFailedCall(t *testing.T) {
	ctx := context.Background()
	var logs bytes.Buffer
	srv := newFor(client.New("http://127.0.0.1:1", "k"), model.Identity{Name: "bot", Kind: model.Agent},
		Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	mcp.AddTool(srv, &mcp.Tool{Name: "boom", Description: "panics"}, func(context.Context, *mcp.CallToolRequest, struct{}) (*mcp.CallToolResult, struct{}, error) {
		panic("secret-value-in-panic")
	})
	st, ct := mcp.NewInMemoryTransports()
	ss, err := srv.Connect(ctx, st, nil)
	if err != nil {
		t.Fatal(err)
	}
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "test", Version: "1"}, nil).Connect(ctx, ct, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { cs.Close(); ss.Wait() }()
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "boom", Arguments: map[string]any{}})
	if err == nil && (res == nil || !res.IsError) {
		t.Fatalf("a panicking tool succeeded: %+v", res)
	}
	if _, err := cs.ListTools(ctx, nil); err != nil {
		t.Fatalf("the session did not survive the panic: %v", err)
	}
	if !strings.Contains(logs.String(), "panicked") || strings.Contains(logs.String(), "secret-value-in-panic") {
		t.Fatalf("log: %s", logs.String())
	}
}
