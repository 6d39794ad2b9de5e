package mcpserver_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/client"
	"github.com/airlock-dev/airlock/internal/mcpserver"
)

// rpcReply is one line the server wrote.
type rpcReply struct {
	ID     json.RawMessage `json:"id"`
	Result json.RawMessage `json:"result"`
	Error  *struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
	raw string
}

// rawSession drives a server over stdio line by line, as a client with
// bugs (or a person typing) would.
type rawSession struct {
	t       *testing.T
	in      *io.PipeWriter
	replies chan rpcReply
	ended   chan error
}

func startRawSession(t *testing.T, maxLine int) (*rawSession, *lockedBuffer) {
	t.Helper()
	f := newHTTPFixture(t, "")
	logs := &lockedBuffer{}
	logger := slog.New(slog.NewTextHandler(logs, nil))
	srv, err := mcpserver.New(context.Background(), client.New(f.url, f.botKey), mcpserver.Options{Logger: logger, AllowRun: true})
	if err != nil {
		t.Fatal(err)
	}
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	s := &rawSession{t: t, in: inW, replies: make(chan rpcReply, 100), ended: make(chan error, 1)}
	go func() {
		s.ended <- srv.Run(context.Background(), &mcpserver.StdioTransport{In: inR, Out: outW, MaxLine: maxLine, Logger: logger})
		outW.Close()
	}()
	go func() {
		sc := bufio.NewScanner(outR)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			r := rpcReply{raw: sc.Text()}
			if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
				r.raw = "undecodable: " + r.raw
			}
			s.replies <- r
		}
		close(s.replies)
	}()
	t.Cleanup(func() { inW.Close() })
	return s, logs
}

func (s *rawSession) send(line string) {
	s.t.Helper()
	if _, err := io.WriteString(s.in, line); err != nil {
		s.t.Fatalf("writing to the server: %v", err)
	}
}

// next is the server's next line.
func (s *rawSession) next() rpcReply {
	s.t.Helper()
	select {
	case r, ok := <-s.replies:
		if !ok {
			s.t.Fatalf("the server closed its output (ended: %v)", <-s.ended)
		}
		return r
	case <-time.After(30 * time.Second):
		s.t.Fatal("no answer from the server in 30s")
	}
	return rpcReply{}
}

// initAndGrant initializes the session (id 1) and gets a grant for
// s3:GetObject on logs/app/* with request_access (id 2), returning its id.
func (s *rawSession) initAndGrant() string {
	s.t.Helper()
	s.send(`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}` + "\n")
	if r := s.next(); string(r.ID) != "1" || r.Error != nil {
		s.t.Fatalf("initialize: %s", r.raw)
	}
	s.send(`{"jsonrpc":"2.0","method":"notifications/initialized"}` + "\n")
	s.send(`{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"request_access","arguments":{"target":"aws-prod","allow":["s3:GetObject arn:aws:s3:::logs/app/*"],"duration":"5m","reason":"INC-9"}}}` + "\n")
	r := s.next()
	var granted struct {
		StructuredContent struct {
			GrantID string `json:"grant_id"`
		} `json:"structuredContent"`
	}
	if json.Unmarshal(r.Result, &granted) != nil || granted.StructuredContent.GrantID == "" {
		s.t.Fatalf("request_access: %s", r.raw)
	}
	return granted.StructuredContent.GrantID
}

// TestStdioSurvivesBadLines: the SDK's stdio transport ended the session
// at the first line that was not JSON (its decoder stops for good) or not a
// JSON-RPC message, taking with it a run_with_grant call in flight. Each
// such line is now answered with a JSON-RPC error, with the line's id when
// it can be read and none when it cannot, and the session goes on: the
// call in flight completes and later calls work. A line longer than the
// limit is answered the same way without being kept.
func TestStdioSurvivesBadLines(t *testing.T) {
	const limit = 4096
	s, logs := startRawSession(t, limit)
	grantID := s.initAndGrant()

	// A call in flight: the command waits for a line on a FIFO, which
	// this test writes only once every bad line has been answered.
	fifo := filepath.Join(t.TempDir(), "go")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	s.send(fmt.Sprintf(`{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"run_with_grant","arguments":{"grant_id":%q,"argv":["sh","-c","read x < \"$0\"; echo got $x",%q]}}}`+"\n",
		grantID, fifo))

	long := `{"jsonrpc":"2.0","id":11,"method":"tools/call","params":{"name":"list_targets","arguments":{"pad":"` + strings.Repeat("A", 3*limit) + `"}}}` + "\n"
	for _, c := range []struct {
		line string
		id   string
		code int
	}{
		{"this is not json\n", "", -32700},
		{`{"jsonrpc":"2.0","id":9,"method":"tools/list"` + "\n", "", -32700}, // cut short: no id can be trusted
		{"\x1b[2J\x00\n", "", -32700},
		{`{"id":10,"method":"tools/list"}` + "\n", "10", -32600}, // no "jsonrpc":"2.0"
		{`{"jsonrpc":"2.0","id":{"x":1},"method":"tools/list"}` + "\n", "", -32600},
		{"42\n", "", -32600},
		{"[]\n", "", -32600},
		{`[{"jsonrpc":"2.0","id":20,"method":"tools/list"},{"nope":true}]` + "\n", "", -32600},
		{long, "11", -32600},
		{strings.Repeat("B", 5*limit) + "\n", "", -32600},
	} {
		s.send(c.line)
		r := s.next()
		if r.Error == nil || r.Error.Code != c.code || string(r.ID) != c.id {
			t.Errorf("%.40q: answered %s, want error %d with id %q", c.line, r.raw, c.code, c.id)
		}
	}
	// Blank lines are nothing to answer; surrounding blanks and CRLF are
	// taken (the SDK's decoder alone refused a space after a message).
	s.send("\n  \r\n")
	s.send(`  {"jsonrpc":"2.0","id":12,"method":"tools/list"}  ` + "\r\n")
	if r := s.next(); string(r.ID) != "12" || r.Error != nil || !strings.Contains(string(r.Result), "run_with_grant") {
		t.Fatalf("tools/list after bad lines: %s", r.raw)
	}

	// A batch (protocol 2025-03-26) still reaches the SDK, which answers
	// it as one; one it refuses (a repeated id) is answered as an invalid
	// request, and the session goes on.
	s.send(`[{"jsonrpc":"2.0","id":30,"method":"ping"},{"jsonrpc":"2.0","id":31,"method":"ping"}]` + "\n")
	var batch []rpcReply
	if r := s.next(); json.Unmarshal([]byte(strings.TrimPrefix(r.raw, "undecodable: ")), &batch) != nil || len(batch) != 2 || string(batch[0].ID) != "30" || string(batch[1].ID) != "31" {
		t.Fatalf("a batch of two pings: %s", r.raw)
	}
	s.send(`[{"jsonrpc":"2.0","id":40,"method":"ping"},{"jsonrpc":"2.0","id":40,"method":"ping"}]` + "\n")
	s.send(`{"jsonrpc":"2.0","id":41,"method":"ping"}` + "\n")
	if r := s.next(); r.Error == nil || r.Error.Code != -32600 || len(r.ID) != 0 {
		t.Errorf("a batch with a repeated id: answered %s, want an invalid request", r.raw)
	}
	if r := s.next(); string(r.ID) != "41" {
		t.Errorf("after a refused batch: answered %s, want the ping with id 41 (no member of the refused batch runs)", r.raw)
	}

	if err := os.WriteFile(fifo, []byte("hello\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r := s.next()
	var ran struct {
		StructuredContent struct {
			ExitCode int    `json:"exit_code"`
			Stdout   string `json:"stdout"`
		} `json:"structuredContent"`
	}
	if string(r.ID) != "3" || json.Unmarshal(r.Result, &ran) != nil || ran.StructuredContent.Stdout != "got hello\n" {
		t.Fatalf("the call in flight: %s", r.raw)
	}
	s.send(`{"jsonrpc":"2.0","id":13,"method":"tools/call","params":{"name":"list_targets","arguments":{}}}` + "\n")
	if r := s.next(); string(r.ID) != "13" || r.Error != nil || !strings.Contains(string(r.Result), "aws-prod") {
		t.Fatalf("list_targets: %s", r.raw)
	}
	s.in.Close()
	select {
	case err := <-s.ended:
		if err != nil && err != io.EOF {
			t.Errorf("the server ended at the end of input with %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the server did not end at the end of its input")
	}
	// The log says what was refused, never what the line held.
	if l := logs.String(); !strings.Contains(l, "refused a message") || strings.Contains(l, "not json") || strings.Contains(l, "AAAA") {
		t.Errorf("log:\n%s", l)
	}
}

// TestStdioRefusesIDsItCannotEcho: the SDK reads a request's id as a
// float64 and answers with it as an int64, so 1.5 was answered as 1,
// 9007199254740993 as 9007199254740992 and 1e23 as -9223372036854775808:
// the answer matched no request of the client's (or another one), and the
// call hung. A request with a null id (which MCP forbids) was dropped
// without an answer. Each is now refused as an invalid request
// carrying the id as sent, before it runs; ids the answer can carry work.
func TestStdioRefusesIDsItCannotEcho(t *testing.T) {
	s, _ := startRawSession(t, 1<<20)
	s.send(`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}` + "\n")
	if r := s.next(); string(r.ID) != "1" || r.Error != nil {
		t.Fatalf("initialize: %s", r.raw)
	}
	s.send(`{"jsonrpc":"2.0","method":"notifications/initialized"}` + "\n")
	call := func(id string) string {
		return `{"jsonrpc":"2.0","id":` + id + `,"method":"tools/call","params":{"name":"list_targets","arguments":{}}}` + "\n"
	}
	for _, id := range []string{"1.5", "9007199254740993", "-9007199254740993", "99999999999999999999999", "1e400", "null"} {
		s.send(call(id))
		s.send(`{"jsonrpc":"2.0","id":"after","method":"ping"}` + "\n")
		r := s.next()
		want := id
		if id == "null" {
			want = "" // MCP: no id where JSON-RPC writes null
		}
		if r.Error == nil || r.Error.Code != -32600 || string(r.ID) != want {
			t.Errorf("id %s: answered %s, want -32600 with id %q", id, r.raw, want)
			if string(r.ID) == `"after"` {
				continue
			}
		}
		if r := s.next(); string(r.ID) != `"after"` {
			t.Fatalf("id %s: then %s", id, r.raw)
		}
	}
	s.send(`[{"jsonrpc":"2.0","id":7,"method":"ping"},{"jsonrpc":"2.0","id":1.5,"method":"ping"}]` + "\n")
	if r := s.next(); r.Error == nil || r.Error.Code != -32600 || len(r.ID) != 0 {
		t.Errorf("a batch with an id of 1.5: %s", r.raw)
	}
	for _, id := range []string{"9007199254740991", "-9007199254740991", "0", `"1.5"`} {
		s.send(call(id))
		if r := s.next(); string(r.ID) != id || r.Error != nil || !strings.Contains(string(r.Result), "aws-prod") {
			t.Errorf("id %s: %s", id, r.raw)
		}
	}
}

// TestStdioAnswersBeforeEnding: a client that pipes its requests in and
// closes stdin (printf '…' | airlock mcp) got only the answers the
// server had written by then: the end of stdin ended the session, and
// with it every call in flight. Now the requests already read are
// answered first, and then the session ends; a request the client
// cancelled is not waited for (MCP sends no answer to it).
func TestStdioAnswersBeforeEnding(t *testing.T) {
	s, _ := startRawSession(t, 0)
	grantID := s.initAndGrant()
	dir := t.TempDir()
	fifo, never := filepath.Join(dir, "go"), filepath.Join(dir, "never")
	for _, f := range []string{fifo, never} {
		if err := syscall.Mkfifo(f, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	run := func(id int, f string) string {
		return fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"run_with_grant","arguments":{"grant_id":%q,"argv":["sh","-c","read x < \"$0\"; echo got $x",%q]}}}`+"\n",
			id, grantID, f)
	}
	// 3 waits on the FIFO, 4 is quick, 5 waits for ever and is cancelled.
	s.send(run(3, fifo) + `{"jsonrpc":"2.0","id":4,"method":"tools/list"}` + "\n" + run(5, never) +
		`{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":5,"reason":"changed my mind"}}` + "\n")
	s.in.Close()
	go func() {
		time.Sleep(300 * time.Millisecond)
		if err := os.WriteFile(fifo, []byte("now\n"), 0o600); err != nil {
			t.Error(err)
		}
	}()
	// Every answer, until the session ends (the replies channel closes).
	got := map[string]rpcReply{}
	deadline := time.After(30 * time.Second)
	for ended := false; !ended; {
		select {
		case r, ok := <-s.replies:
			if !ok {
				ended = true
				break
			}
			got[string(r.ID)] = r
		case <-deadline:
			t.Fatalf("the session did not end once every request was answered; answers: %v", got)
		}
	}
	if r, ok := got["4"]; !ok || r.Error != nil {
		t.Errorf("tools/list, read before stdin ended: %+v", r)
	}
	if r := got["3"]; !strings.Contains(string(r.Result), "got now") {
		t.Errorf("the call in flight when stdin ended: %q", r.raw)
	}
}

// TestStdioRefusedBatchNeverActs: the SDK refused a batch whose ids
// repeated (in it, or in a batch it had not answered) only after
// queueing the batch's other members, and then ran them: a refused
// batch still acted, and a member's answer could even stand in for the
// earlier batch's own (ids are matched to batches). Such a batch is now
// refused before the SDK sees it. The earlier batch here is a command
// waiting on a FIFO; it must end with its own output.
func TestStdioRefusedBatchNeverActs(t *testing.T) {
	s, _ := startRawSession(t, 4096)
	grantID := s.initAndGrant()
	fifo := filepath.Join(t.TempDir(), "go")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	s.send(fmt.Sprintf(`[{"jsonrpc":"2.0","id":50,"method":"tools/call","params":{"name":"run_with_grant","arguments":{"grant_id":%q,"argv":["sh","-c","read x < \"$0\"; echo got $x",%q]}}}]`+"\n",
		grantID, fifo))
	s.send(`[{"jsonrpc":"2.0","id":51,"method":"ping"},{"jsonrpc":"2.0","id":50,"method":"ping"}]` + "\n")
	s.send(`[{"jsonrpc":"2.0","id":52,"method":"ping"},{"jsonrpc":"2.0","id":53,"method":"ping"},{"jsonrpc":"2.0","id":52,"method":"ping"}]` + "\n")
	s.send(`{"jsonrpc":"2.0","id":54,"method":"ping"}` + "\n")
	for i := range 2 {
		if r := s.next(); r.Error == nil || r.Error.Code != -32600 || len(r.ID) != 0 {
			t.Fatalf("refused batch %d: answered %s, want an invalid request", i+1, r.raw)
		}
	}
	if r := s.next(); string(r.ID) != "54" {
		t.Fatalf("after the refused batches: answered %s, want the ping with id 54 (no member of a refused batch runs)", r.raw)
	}
	if err := os.WriteFile(fifo, []byte("hello\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r := s.next()
	var batch []struct {
		ID     json.RawMessage `json:"id"`
		Result struct {
			StructuredContent struct {
				Stdout string `json:"stdout"`
			} `json:"structuredContent"`
		} `json:"result"`
	}
	if json.Unmarshal([]byte(strings.TrimPrefix(r.raw, "undecodable: ")), &batch) != nil || len(batch) != 1 ||
		string(batch[0].ID) != "50" || batch[0].Result.StructuredContent.Stdout != "got hello\n" {
		t.Fatalf("the batch in flight: %s", r.raw)
	}
	// Its id is free again once answered.
	s.send(`[{"jsonrpc":"2.0","id":50,"method":"ping"}]` + "\n")
	if r := s.next(); !strings.Contains(r.raw, `"id":50`) || strings.Contains(r.raw, "error") {
		t.Fatalf("a batch reusing an answered id: %s", r.raw)
	}
}
