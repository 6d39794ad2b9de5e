package mcpserver_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/airlock-dev/airlock/internal/client"
)

// TestHugeWaitSecondsWaits: a wait_seconds too large for a Duration waits
// the longest wait, as a huge timeout_seconds runs the longest. Before,
// the count times time.Second wrapped negative, and grant_status answered
// "pending" at once without waiting for the approval.
func TestHugeWaitSecondsWaits(t *testing.T) {
	f := newHTTPFixture(t, "")
	ctx := context.Background()
	cs := stdioSession(t, f.url, f.botKey, f.logs)
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "request_access", Arguments: map[string]any{
		"target": "aws-prod", "allow": []string{"s3:GetObject arn:aws:s3:::logs/billing/*"}, "duration": "30m", "reason": "INC-4"}})
	if err != nil || res.IsError {
		t.Fatalf("request_access: %v %+v", err, res)
	}
	g := res.StructuredContent.(map[string]any)
	if g["status"] != "pending" {
		t.Fatalf("request: %+v", g)
	}
	id := g["grant_id"].(string)
	approved := make(chan error, 1)
	go func() {
		time.Sleep(200 * time.Millisecond) // let grant_status start waiting
		_, err := client.New(f.url, f.alice).Approve(ctx, id, "ok")
		approved <- err
	}()
	res, err = cs.CallTool(ctx, &mcp.CallToolParams{Name: "grant_status", Arguments: map[string]any{"grant_id": id, "wait_seconds": int64(9223372037)}})
	if err := <-approved; err != nil {
		t.Fatal(err)
	}
	if err != nil || res.IsError {
		t.Fatalf("grant_status: %v %+v", err, res)
	}
	if s := res.StructuredContent.(map[string]any)["status"]; s != "active" {
		t.Fatalf("grant_status with a huge wait_seconds answered %v without waiting for the approval", s)
	}
}

// TestNegativeWaitSecondsRefused: a negative wait_seconds is refused by
// grant_status as by request_access (DESIGN: a duration is positive).
// Before, grant_status took it for "do not wait" and answered pending.
func TestNegativeWaitSecondsRefused(t *testing.T) {
	f := newHTTPFixture(t, "")
	ctx := context.Background()
	cs := stdioSession(t, f.url, f.botKey, f.logs)
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "request_access", Arguments: map[string]any{
		"target": "aws-prod", "allow": []string{"s3:GetObject arn:aws:s3:::logs/billing/*"}, "duration": "30m", "reason": "INC-4"}})
	if err != nil || res.IsError {
		t.Fatalf("request_access: %v %+v", err, res)
	}
	id := res.StructuredContent.(map[string]any)["grant_id"].(string)
	for _, call := range []*mcp.CallToolParams{
		{Name: "grant_status", Arguments: map[string]any{"grant_id": id, "wait_seconds": -5}},
		{Name: "request_access", Arguments: map[string]any{"target": "aws-prod", "allow": []string{"s3:GetObject arn:aws:s3:::logs/billing/*"},
			"duration": "30m", "reason": "INC-4", "wait_seconds": -5}},
	} {
		res, err := cs.CallTool(ctx, call)
		if err != nil {
			t.Fatalf("%s: %v", call.Name, err)
		}
		if !res.IsError || !strings.Contains(res.Content[0].(*mcp.TextContent).Text, "wait_seconds must not be negative") {
			t.Fatalf("%s with wait_seconds -5: %+v", call.Name, res)
		}
	}
}
