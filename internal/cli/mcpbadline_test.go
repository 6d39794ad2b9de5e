//go:build unix

package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/client"
	"github.com/airlock-dev/airlock/internal/grants"
	"github.com/airlock-dev/airlock/internal/mcpserver"
)

// TestMCPBadLineKeepsSession: `airlock mcp` exited at the first line on
// stdin that was not JSON (the SDK's stdio transport stops reading for
// good), dropping the agent's session and the run_with_grant call in
// flight. Written to the real process's stdin, a line that is not JSON is
// now answered with a parse error (-32700, no id), a line over the 8 MiB
// limit with an invalid request carrying its id; the call in flight
// completes, a later call works, and the process exits 0 when stdin closes.
func TestMCPBadLineKeepsSession(t *testing.T) {
	l := startServer(t, nil)
	bot := client.New("http://"+l.apiAddr, l.botKey)
	g, err := bot.Request(context.Background(), grants.RequestInput{Target: "aws-prod", Scope: []string{"s3:GetObject arn:aws:s3:::logs/app/*"}, Duration: "5m", Reason: "bad lines"})
	if err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(t.TempDir(), "go")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}

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
	defer func() {
		cmd.Process.Kill() // fails harmlessly once it has exited
		stdin.Close()
	}()
	type reply struct {
		ID     json.RawMessage `json:"id"`
		Result json.RawMessage `json:"result"`
		Error  *struct {
			Code int `json:"code"`
		} `json:"error"`
		raw string
	}
	replies := make(chan reply, 10)
	exited := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			r := reply{raw: sc.Text()}
			json.Unmarshal(sc.Bytes(), &r)
			replies <- r
		}
		close(replies)
		exited <- cmd.Wait()
	}()
	next := func(what string) reply {
		t.Helper()
		select {
		case r, ok := <-replies:
			if !ok {
				t.Fatalf("%s: airlock mcp exited (%v):\n%s", what, <-exited, errOut.String())
			}
			return r
		case <-time.After(30 * time.Second):
			t.Fatalf("%s: no answer in 30s:\n%s", what, errOut.String())
		}
		return reply{}
	}
	send := func(line string) {
		t.Helper()
		if _, err := io.WriteString(stdin, line+"\n"); err != nil {
			t.Fatalf("writing to airlock mcp: %v\n%s", err, errOut.String())
		}
	}

	send(`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}`)
	if r := next("initialize"); string(r.ID) != "1" || r.Error != nil {
		t.Fatalf("initialize: %s", r.raw)
	}
	send(`{"jsonrpc":"2.0","method":"notifications/initialized"}`)
	send(fmt.Sprintf(`{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"run_with_grant","arguments":{"grant_id":%q,"argv":["sh","-c","read x < \"$0\"; echo got $x",%q]}}}`, g.ID, fifo))

	send(`{"jsonrpc":"2.0","id":3,"method":"tools/list"`) // cut short
	if r := next("a line that is not JSON"); r.Error == nil || r.Error.Code != -32700 || r.ID != nil {
		t.Fatalf("a line that is not JSON: %s", r.raw)
	}
	send(`{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"list_targets","arguments":{"pad":"` + strings.Repeat("A", mcpserver.MaxLine) + `"}}}`)
	if r := next("an over-long line"); r.Error == nil || r.Error.Code != -32600 || string(r.ID) != "4" {
		t.Fatalf("an over-long line: %.300s", r.raw)
	}
	send(`{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"list_targets","arguments":{}}}`)
	if r := next("list_targets"); string(r.ID) != "5" || r.Error != nil || !strings.Contains(string(r.Result), "aws-prod") {
		t.Fatalf("list_targets after bad lines: %s", r.raw)
	}
	if err := os.WriteFile(fifo, []byte("hello\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if r := next("the call in flight"); string(r.ID) != "2" || !strings.Contains(string(r.Result), `"stdout":"got hello\n"`) {
		t.Fatalf("the call in flight: %s", r.raw)
	}
	stdin.Close()
	if _, ok := <-replies; ok {
		t.Error("an answer nothing asked for")
	}
	if err := <-exited; err != nil {
		t.Errorf("airlock mcp at the end of stdin: %v\n%s", err, errOut.String())
	}
	if s := errOut.String(); !strings.Contains(s, "refused a message") || strings.Contains(s, "AAAA") {
		t.Errorf("stderr:\n%s", s)
	}
}
