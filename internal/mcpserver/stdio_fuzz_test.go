package mcpserver

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
)

// FuzzStdioLines feeds any bytes to the stdio guard (lineConn.feed), as a
// client with bugs or a hostile one may write them, and checks what it
// does with each line: a line longer than the limit is refused, a blank
// one dropped, every other one either passed on to the SDK as one line of
// JSON the SDK can decode (an object with an id it can answer exactly, or
// a batch) or refused with one JSON-RPC error line whose id, if any, is a
// string or a number. Never a panic, never a line both passed and
// refused or neither.
func FuzzStdioLines(f *testing.F) {
	for _, s := range []string{
		`{"jsonrpc":"2.0","id":1,"method":"tools/list"}` + "\n",
		`{"jsonrpc":"2.0","id":"a","method":"ping"}` + "\r\n" + `not json` + "\n\n  \n",
		`{"jsonrpc":"2.0","id":1.5,"method":"ping"}` + "\n" + `{"jsonrpc":"2.0","id":null,"method":"ping"}`,
		`[{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","method":"notifications/initialized"}]` + "\n[]\n",
		`{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":1}}` + "\n",
		`{"id":7,"jsonrpc":"2.0","method":"tools/call","params":{"arguments":{"x":"` + string(bytes.Repeat([]byte("a"), 300)) + `"}}}` + "\n",
		`{"jsonrpc":"1.0","id":2,"method":"ping"}` + "\n" + `"x"` + "\n" + `{"jsonrpc":"2.0","id":3}` + "\n",
		"\xc2\xa0{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"ping\"}\xc2\x85\n",
	} {
		f.Add([]byte(s))
	}
	const limit = 200
	f.Fuzz(func(t *testing.T, in []byte) {
		if len(in) > 1<<14 {
			return
		}
		var out bytes.Buffer
		c := &lineConn{out: &lineWriter{w: &out}, logger: slog.New(slog.DiscardHandler), done: make(chan struct{}), inflight: newInflight()}
		pr, pw := io.Pipe()
		passedc := make(chan [][]byte, 1)
		go func() {
			var passed [][]byte
			r := bufio.NewReader(pr)
			for {
				l, err := r.ReadBytes('\n')
				if len(l) > 0 {
					passed = append(passed, l)
				}
				if err != nil {
					break
				}
			}
			passedc <- passed
		}()
		// Ended: the drain at the end of input waits for nothing, as no
		// SDK answers here.
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		c.feed(ctx, bytes.NewReader(in), pw, limit)
		passed := <-passedc

		// What the guard should do with each line of in.
		var wantPassed [][]byte
		wantOut := 0
		for rest := in; len(rest) > 0; {
			seg := rest
			if i := bytes.IndexByte(rest, '\n'); i >= 0 {
				seg = rest[:i+1]
			}
			rest = rest[len(seg):]
			msg := bytes.TrimSpace(seg)
			switch {
			case len(seg) > limit+2:
				wantOut++
			case len(msg) == 0:
			case notJSON(msg) != "":
				wantOut++
			default:
				if why, _ := requestIDProblem(msg); why != "" && msg[0] == '{' {
					wantOut++
					continue
				}
				wantPassed = append(wantPassed, msg)
			}
		}

		for _, p := range passed {
			msg, ok := bytes.CutSuffix(p, []byte("\n"))
			if !ok || bytes.IndexByte(msg, '\n') >= 0 || !json.Valid(msg) {
				t.Fatalf("passed to the SDK %q: not one line of JSON", p)
			}
			switch msg[0] {
			case '{':
				if _, err := jsonrpc.DecodeMessage(msg); err != nil {
					t.Fatalf("passed to the SDK %q, which it cannot decode: %v", msg, err)
				}
				if why, _ := requestIDProblem(msg); why != "" {
					t.Fatalf("passed to the SDK %q, whose id it cannot answer exactly: %s", msg, why)
				}
			case '[':
			default:
				t.Fatalf("passed to the SDK %q: neither an object nor a batch", msg)
			}
		}
		for _, w := range wantPassed {
			if len(passed) > 0 && bytes.Equal(bytes.TrimSuffix(passed[0], []byte("\n")), w) {
				passed = passed[1:]
				continue
			}
			// Not passed: then it was refused.
			wantOut++
		}
		if len(passed) > 0 {
			t.Fatalf("passed to the SDK %q, not a line of the input (in order)", passed[0])
		}

		lines := bytes.SplitAfter(out.Bytes(), []byte("\n"))
		if n := len(lines) - 1; n != wantOut || len(lines[n]) != 0 {
			t.Fatalf("%d refusals (output %q), want %d for input %q", n, out.Bytes(), wantOut, in)
		}
		for _, l := range lines[:len(lines)-1] {
			var r struct {
				JSONRPC string          `json:"jsonrpc"`
				ID      json.RawMessage `json:"id"`
				Error   *struct {
					Code    int64  `json:"code"`
					Message string `json:"message"`
				} `json:"error"`
			}
			if err := json.Unmarshal(l, &r); err != nil || r.JSONRPC != "2.0" || r.Error == nil || r.Error.Message == "" {
				t.Fatalf("refusal %q is not a JSON-RPC error: %v", l, err)
			}
			if r.ID != nil && echoID(r.ID) == nil {
				t.Fatalf("refusal %q carries an id that is not a string or a number", l)
			}
			if r.Error.Code != jsonrpc.CodeParseError && r.Error.Code != jsonrpc.CodeInvalidRequest {
				t.Fatalf("refusal %q: code %d", l, r.Error.Code)
			}
		}
	})
}
