package mcpserver_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// running reports whether pid is a live process (a zombie is not).
func running(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i > 0 && len(s) > i+2 && s[i+2] != 'Z'
}

// TestRunLeavesNothingBehind: a command that starts a process in the
// background and exits 0 was reported as "did not run" (exit -1) after
// the 2s WaitDelay, and the background process went on running with the
// grant's credentials after the call returned. It is now reported as
// exited 0, and the process is killed with the command's process group.
func TestRunLeavesNothingBehind(t *testing.T) {
	f := newHTTPFixture(t, "")
	ctx := context.Background()
	cs := stdioSession(t, f.url, f.botKey, f.logs)
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "request_access", Arguments: map[string]any{
		"target": "aws-prod", "allow": []string{"s3:GetObject arn:aws:s3:::logs/app/*"}, "duration": "5m", "reason": "INC-3"}})
	if err != nil || res.IsError {
		t.Fatalf("request_access: %v %+v", err, res)
	}
	id := res.StructuredContent.(map[string]any)["grant_id"]
	res, err = cs.CallTool(ctx, &mcp.CallToolParams{Name: "run_with_grant", Arguments: map[string]any{
		"grant_id": id, "argv": []string{"sh", "-c", "sleep 30 & echo $!"}}})
	if err != nil || res.IsError {
		t.Fatalf("run_with_grant: %v %+v", err, res)
	}
	out := res.StructuredContent.(map[string]any)
	pid, err := strconv.Atoi(strings.TrimSpace(fmt.Sprint(out["stdout"])))
	if err != nil {
		t.Fatalf("stdout: %+v", out)
	}
	defer syscall.Kill(pid, syscall.SIGKILL)
	if out["exit_code"] != 0.0 || !strings.HasPrefix(fmt.Sprint(out["status"]), "exited with status 0") {
		t.Errorf("a command that exited 0 is reported as %v: %v", out["exit_code"], out["status"])
	}
	// SIGKILL is sent before the result; the process is gone once the
	// kernel has delivered it.
	for i := 0; running(pid); i++ {
		if i == 500 {
			t.Fatalf("the command's background process %d still runs after the call returned", pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
