//go:build unix

package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/client"
	"github.com/airlock-dev/airlock/internal/grants"
)

// TestMCPSignalKillsCommand: a host stops `airlock mcp` with SIGTERM (the
// MCP stdio shutdown, after closing stdin) or Ctrl-C while run_with_grant
// runs a command. Before, the default action killed the server at once,
// and the command, in a process group of its own, ran on with the grant's
// credentials in its environment; the signal now ends the call and kills
// the command before the server exits.
func TestMCPSignalKillsCommand(t *testing.T) {
	l := startServer(t, nil)
	ctx := context.Background()
	bot := client.New("http://"+l.apiAddr, l.botKey)
	g, err := bot.Request(ctx, grants.RequestInput{Target: "aws-prod", Scope: []string{"s3:GetObject arn:aws:s3:::logs/app/*"}, Duration: "5m", Reason: "signal"})
	if err != nil {
		t.Fatal(err)
	}
	pidFile := filepath.Join(t.TempDir(), "pid")

	args, _ := json.Marshal([]string{"mcp"})
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), envChildArgs+"="+string(args), EnvAddr+"=http://"+l.apiAddr, EnvToken+"="+l.botKey)
	var errOut bytes.Buffer
	cmd.Stderr = &errOut
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() {
		// Drain the responses so that the server never blocks writing.
		sc := bufio.NewScanner(stdout)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
		}
		exited <- cmd.Wait()
	}()
	defer func() {
		cmd.Process.Kill() // fails harmlessly once it has exited
		stdin.Close()
	}()
	for _, m := range []string{
		`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}`,
		`{"jsonrpc":"2.0","method":"notifications/initialized"}`,
		`{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"run_with_grant","arguments":{"grant_id":"` + g.ID +
			`","argv":["sh","-c","echo $$ > '` + pidFile + `'; exec sleep 300"],"timeout_seconds":600}}}`,
	} {
		if _, err := stdin.Write([]byte(m + "\n")); err != nil {
			t.Fatal(err)
		}
	}
	var pid int
	for deadline := time.Now().Add(30 * time.Second); pid == 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the command never started:\n%s", errOut.String())
		}
		if b, err := os.ReadFile(pidFile); err == nil && bytes.HasSuffix(b, []byte("\n")) {
			pid, _ = strconv.Atoi(strings.TrimSpace(string(b)))
		}
	}
	defer syscall.Kill(pid, syscall.SIGKILL)

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("airlock mcp on SIGTERM: %v\n%s", err, errOut.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("airlock mcp did not exit on SIGTERM:\n%s", errOut.String())
	}
	// The command is gone (or a zombie awaiting its new parent), not
	// sleeping on with the grant's credentials.
	for deadline := time.Now().Add(10 * time.Second); alive(pid); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the command run_with_grant started (pid %d) outlived airlock mcp", pid)
		}
	}
}

// alive reports whether pid is a process that is not a zombie.
func alive(pid int) bool {
	if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
		return false
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return !os.IsNotExist(err)
	}
	// pid (comm) STATE ...: the state follows the last ')'.
	i := bytes.LastIndexByte(b, ')')
	return i < 0 || i+2 >= len(b) || b[i+2] != 'Z'
}
