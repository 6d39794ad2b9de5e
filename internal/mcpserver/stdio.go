package mcpserver

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// MaxLine bounds one message on stdio. run_with_grant's stdin may be 1 MiB,
// which JSON escaping can make up to 6 MiB (\u0000 for each byte); 8 MiB
// leaves room for the rest of the call.
const MaxLine = 8 << 20

// StdioTransport is the SDK's newline-delimited JSON stdio transport with
// JSON-RPC's error handling in front of it. The SDK's own transport stops
// reading at the first line that is not JSON (its decoder cannot resync)
// and fails the connection on a message it cannot decode, so one bad line
// from a client ended the server, the agent's session and every call in
// flight. Here each line is checked before the SDK sees it: a line that
// is not JSON is answered with a parse error (-32700, no id), one that is
// JSON but no JSON-RPC message, or longer than the limit, with an invalid
// request (-32600, with the line's id when one can be read); the session
// goes on. Only the end of stdin (or a read error) ends it, as
// before; at the end of stdin the requests already passed on are answered
// first (see drainLimit).
//
// Batches still go to the SDK. It can no longer refuse them once a
// protocol version without batching (2025-06-18 on) is negotiated, since
// it tells its own connection the version through a method this wrapper
// cannot forward; a batch that it does refuse is answered as an invalid
// request instead of ending the session.
type StdioTransport struct {
	// In and Out default to os.Stdin and os.Stdout.
	In  io.Reader
	Out io.Writer
	// MaxLine bounds one line in bytes (default MaxLine). A longer line
	// is read and dropped, not kept.
	MaxLine int
	// Logger gets a line for each refused message: why, and its size
	// (never its content, which may hold anything). Nil discards.
	Logger *slog.Logger
}

// Connect implements mcp.Transport.
func (t *StdioTransport) Connect(ctx context.Context) (mcp.Connection, error) {
	in, out := t.In, t.Out
	if in == nil {
		in = os.Stdin
	}
	if out == nil {
		out = os.Stdout
	}
	limit := t.MaxLine
	if limit <= 0 {
		limit = MaxLine
	}
	logger := t.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	pr, pw := io.Pipe()
	fl := newInflight()
	w := &lineWriter{w: out, inflight: fl}
	// The SDK's own cap is off: no line longer than limit reaches it.
	inner, err := (&mcp.IOTransport{Reader: pr, Writer: w, MaxLineLength: -1}).Connect(ctx)
	if err != nil {
		return nil, err
	}
	c := &lineConn{Connection: inner, in: in, out: w, logger: logger, done: make(chan struct{}), inflight: fl}
	go c.feed(ctx, in, pw, limit)
	return c, nil
}

// lineWriter serializes writes to out: the SDK's responses and this
// transport's error answers each go out as one whole line. The requests
// each line answers leave inflight: a batch's before the line goes out
// (a client may reuse an id as soon as it reads the answer), the rest
// after it (draining waits until their answers are out).
type lineWriter struct {
	mu       sync.Mutex
	w        io.Writer
	inflight *inflight
}

func (w *lineWriter) Write(p []byte) (int, error) {
	var rest []jsonrpc.ID
	if w.inflight != nil {
		rest = w.inflight.unbatch(answeredIDs(p, nil))
	}
	w.mu.Lock()
	n, err := w.w.Write(p)
	w.mu.Unlock()
	for _, id := range rest {
		w.inflight.done(id)
	}
	return n, err
}

// answeredIDs appends to ids the ids of the responses in line, one
// message or a batch's array (not the server's own requests to the
// client, whose ids are the server's).
func answeredIDs(line []byte, ids []jsonrpc.ID) []jsonrpc.ID {
	line = bytes.TrimSpace(line)
	if len(line) > 0 && line[0] == '[' {
		var batch []json.RawMessage
		if json.Unmarshal(line, &batch) == nil {
			for _, m := range batch {
				ids = answeredIDs(m, ids)
			}
		}
		return ids
	}
	if msg, err := jsonrpc.DecodeMessage(line); err == nil {
		if r, ok := msg.(*jsonrpc.Response); ok && r.ID.IsValid() {
			ids = append(ids, r.ID)
		}
	}
	return ids
}

// drainLimit bounds how long, once stdin has ended, the transport waits
// for the SDK to answer the requests it was given before it tells the SDK
// that input ended (which ends the session and every call in it): a
// piped client (printf '…' | airlock mcp) closes stdin right after its
// last request and still reads the answers. Longer than any call may
// take (a wait or a command's timeout, at most maxWait), so that only a
// request the SDK never answers is given up on. A signal (the context's
// end) stops the wait at once, as a host stops its server.
const drainLimit = maxWait + time.Minute

// inflight tracks the requests passed to the SDK that it has not
// answered yet, by id.
type inflight struct {
	mu  sync.Mutex
	ids map[jsonrpc.ID]int
	// batched holds the request ids of batches passed on and not yet
	// answered. Apart from ids, so that draining never waits on them:
	// a batch the SDK refuses (it takes none once 2025-06-18 or later
	// is negotiated) is never answered by it, and its ids stay here,
	// where they only refuse later batches, which it refuses too.
	batched map[jsonrpc.ID]bool
	changed chan struct{} // a send after each answer, never blocking
}

func newInflight() *inflight {
	return &inflight{ids: map[jsonrpc.ID]int{}, batched: map[jsonrpc.ID]bool{}, changed: make(chan struct{}, 1)}
}

// sent notes a request passed to the SDK.
func (f *inflight) sent(id jsonrpc.ID) {
	f.mu.Lock()
	f.ids[id]++
	f.mu.Unlock()
}

// sentAll notes a batch's requests passed to the SDK, unless an id
// repeats within ids or is still in flight: then it notes nothing and
// reports false. Ids leave the set only once their answer has gone out,
// after the SDK has forgotten them, so every batch the SDK would refuse
// for its ids is refused here first.
func (f *inflight) sentAll(ids []jsonrpc.ID) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, id := range ids {
		if f.ids[id] > 0 || f.batched[id] || slices.Contains(ids[:i], id) {
			return false
		}
	}
	for _, id := range ids {
		f.batched[id] = true
	}
	return true
}

// done notes that the request id needs no more answer: one went out, or
// the client cancelled it (an answer to a cancelled request is not sent).
func (f *inflight) done(id jsonrpc.ID) {
	f.mu.Lock()
	if n := f.ids[id]; n > 1 {
		f.ids[id] = n - 1
	} else {
		delete(f.ids, id)
	}
	f.mu.Unlock()
	select {
	case f.changed <- struct{}{}:
	default:
	}
}

// unbatch notes the answers to the batch members among ids and returns
// the other ids.
func (f *inflight) unbatch(ids []jsonrpc.ID) []jsonrpc.ID {
	f.mu.Lock()
	defer f.mu.Unlock()
	rest := ids[:0]
	for _, id := range ids {
		if f.batched[id] {
			delete(f.batched, id)
		} else {
			rest = append(rest, id)
		}
	}
	return rest
}

// pending is how many requests still wait for an answer.
func (f *inflight) pending() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.ids)
}

// drain waits until every request passed on has been answered, ctx ends
// or limit passes.
func (f *inflight) drain(ctx context.Context, limit time.Duration) {
	t := time.NewTimer(limit)
	defer t.Stop()
	for f.pending() > 0 {
		select {
		case <-f.changed:
		case <-ctx.Done():
			return
		case <-t.C:
			return
		}
	}
}

// Close leaves stdout open, as the SDK's StdioTransport does.
func (w *lineWriter) Close() error { return nil }

// lineConn is the SDK's connection fed only lines it can take.
type lineConn struct {
	mcp.Connection
	in     io.Reader
	out    *lineWriter
	logger *slog.Logger
	// done is closed when stdin has ended or failed, before the pipe to
	// the SDK is closed: an error Read sees after it is the end of input.
	done chan struct{}
	// inflight holds the requests given to the SDK and not yet answered.
	inflight *inflight
}

// Close closes the SDK's connection, and stdin as the SDK's own transport
// does, which unblocks the read of it where the platform allows.
func (c *lineConn) Close() error {
	err := c.Connection.Close()
	if cl, ok := c.in.(io.Closer); ok {
		err = errors.Join(err, cl.Close())
	}
	return err
}

// Read returns the SDK's next message. An error while input goes on is
// the SDK refusing one message (a batch it does not take): it is
// answered, and reading goes on.
func (c *lineConn) Read(ctx context.Context) (jsonrpc.Message, error) {
	for {
		msg, err := c.Connection.Read(ctx)
		if err == nil {
			return msg, nil
		}
		select {
		case <-c.done:
			return nil, err
		default:
		}
		if ctx.Err() != nil || errors.Is(err, io.EOF) || errors.Is(err, io.ErrClosedPipe) || errors.Is(err, mcp.ErrConnectionClosed) {
			return nil, err
		}
		c.refuse(nil, jsonrpc.CodeInvalidRequest, "invalid request: "+err.Error(), 0)
	}
}

// feed reads in line by line, answers what the SDK cannot take, and
// passes the rest on to it through pw.
func (c *lineConn) feed(ctx context.Context, in io.Reader, pw *io.PipeWriter, limit int) {
	var err error
	defer func() {
		if err == nil {
			// stdin ended: answer what was asked before ending.
			c.inflight.drain(ctx, drainLimit)
		}
		close(c.done)
		pw.CloseWithError(err)
	}()
	r := bufio.NewReaderSize(in, 64<<10)
	var line []byte
	size, tooLong := 0, false
	for {
		chunk, rerr := r.ReadSlice('\n')
		size += len(chunk)
		switch {
		case tooLong:
		case size > limit+2: // room for "\r\n"
			tooLong = true
			// Keep the start: a request's id is usually near it.
			line = append(line, chunk[:min(len(chunk), idPrefix)]...)
			line = line[:min(len(line), idPrefix)]
		default:
			line = append(line, chunk...)
		}
		if errors.Is(rerr, bufio.ErrBufferFull) {
			continue
		}
		if size > 0 {
			if perr := c.line(pw, line, size, tooLong, limit); perr != nil {
				// The SDK closed its end: the session is over.
				err = perr
				return
			}
		}
		if rerr != nil {
			if rerr != io.EOF {
				err = rerr
			}
			return
		}
		line, size, tooLong = line[:0], 0, false
		if cap(line) > 1<<20 {
			line = nil // do not hold a large buffer for the session's life
		}
	}
}

// idPrefix is how much of an over-long line is kept to find its id.
const idPrefix = 4 << 10

// line handles one line (its newline included, unless input ended).
func (c *lineConn) line(pw *io.PipeWriter, line []byte, size int, tooLong bool, limit int) error {
	if tooLong {
		c.refuse(prefixID(line), jsonrpc.CodeInvalidRequest,
			fmt.Sprintf("invalid request: message of %d bytes is longer than the %d-byte limit", size, limit), size)
		return nil
	}
	// Trimmed: the SDK's decoder takes nothing but a newline after a
	// value, and stops for good at anything else.
	msg := bytes.TrimSpace(line)
	if len(msg) == 0 {
		return nil
	}
	if why := notJSON(msg); why != "" {
		c.refuse(nil, jsonrpc.CodeParseError, why, size)
		return nil
	}
	switch msg[0] {
	case '{':
		if why, id := requestIDProblem(msg); why != "" {
			c.refuse(id, jsonrpc.CodeInvalidRequest, "invalid request: "+why, size)
			return nil
		}
		m, err := jsonrpc.DecodeMessage(msg)
		if err != nil {
			c.refuse(objectID(msg), jsonrpc.CodeInvalidRequest, "invalid request: not a JSON-RPC 2.0 message", size)
			return nil
		}
		if r, ok := m.(*jsonrpc.Request); ok {
			switch {
			case r.ID.IsValid():
				c.inflight.sent(r.ID)
			case r.Method == "notifications/cancelled":
				if id, ok := cancelledID(r.Params); ok {
					c.inflight.done(id)
				}
			}
		}
	case '[':
		var batch []json.RawMessage
		if err := json.Unmarshal(msg, &batch); err != nil || len(batch) == 0 {
			c.refuse(nil, jsonrpc.CodeInvalidRequest, "invalid request: empty batch", size)
			return nil
		}
		ids := make([]jsonrpc.ID, 0, len(batch))
		for _, m := range batch {
			if why, _ := requestIDProblem(m); why != "" {
				c.refuse(nil, jsonrpc.CodeInvalidRequest, "invalid request: in a batch member, "+why, size)
				return nil
			}
			dm, err := jsonrpc.DecodeMessage(m)
			if err != nil {
				c.refuse(nil, jsonrpc.CodeInvalidRequest, "invalid request: a batch member is not a JSON-RPC 2.0 message", size)
				return nil
			}
			if r, ok := dm.(*jsonrpc.Request); ok && r.ID.IsValid() {
				ids = append(ids, r.ID)
			}
		}
		// The SDK refuses a batch whose request ids repeat, in it or in
		// a batch it has not answered yet, but only after queueing the
		// batch's other members, which it then runs: a refused batch
		// would still act. Refused here, it never reaches the SDK.
		if !c.inflight.sentAll(ids) {
			c.refuse(nil, jsonrpc.CodeInvalidRequest, "invalid request: a batch member's id repeats one in the batch or one not yet answered", size)
			return nil
		}
	default:
		c.refuse(nil, jsonrpc.CodeInvalidRequest, "invalid request: not a JSON-RPC 2.0 message", size)
		return nil
	}
	_, err := pw.Write(append(msg, '\n'))
	return err
}

// cancelledID is the requestId of a notifications/cancelled's params.
func cancelledID(params json.RawMessage) (jsonrpc.ID, bool) {
	var p struct {
		RequestID any `json:"requestId"`
	}
	if json.Unmarshal(params, &p) != nil || p.RequestID == nil {
		return jsonrpc.ID{}, false
	}
	id, err := jsonrpc.MakeID(p.RequestID)
	return id, err == nil
}

// notJSON is "" for one JSON value (whitespace around it allowed), else
// the parse error that refuses msg. The guards in front of the SDK read
// messages with encoding/json; the SDK's decoder stops after the first
// value, so what follows it must not reach the SDK unread.
func notJSON(msg []byte) string {
	if json.Valid(msg) {
		return ""
	}
	var v any
	return "parse error: " + syntaxError(json.Unmarshal(msg, &v))
}

// syntaxError is encoding/json's account of bad JSON, which names at most
// one character of it (quoted), and the offset.
func syntaxError(err error) string {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Sprintf("%s (at byte %d)", se.Error(), se.Offset)
	}
	if err != nil {
		return err.Error()
	}
	return "invalid JSON"
}

// objectID is a JSON object's "id" as sent, if it is a string or a
// number, else nil. It is echoed as it came: read as a number, an id past
// 2^53 was answered rounded, or overflowed.
func objectID(msg []byte) json.RawMessage {
	var m map[string]json.RawMessage // keys exactly as sent, like the SDK's
	if json.Unmarshal(msg, &m) != nil {
		return nil
	}
	return echoID(m["id"])
}

// prefixID reads the top-level "id" of an object from the start of a line
// cut short, if it comes before the cut.
func prefixID(prefix []byte) json.RawMessage {
	dec := json.NewDecoder(bytes.NewReader(prefix))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil
	}
	for dec.More() {
		k, err := dec.Token()
		if err != nil {
			return nil
		}
		if k == "id" {
			var v json.RawMessage
			if dec.Decode(&v) != nil {
				return nil
			}
			return echoID(v)
		}
		var skip json.RawMessage
		if dec.Decode(&skip) != nil {
			return nil
		}
	}
	return nil
}

// refuse answers one message with a JSON-RPC error, without an id when
// none can be read (id nil). JSON-RPC 2.0 writes that id as null, but MCP
// allows only a string or a number there and leaves it out instead: the
// TypeScript SDK's client refuses a message with "id": null, where it
// takes one without an id as an error it reports.
func (c *lineConn) refuse(id json.RawMessage, code int64, msg string, size int) {
	c.logger.Warn("mcp: refused a message", "code", code, "reason", msg, "bytes", size)
	type wireError struct {
		Code    int64  `json:"code"`
		Message string `json:"message"`
	}
	answer := struct {
		JSONRPC string          `json:"jsonrpc"`
		ID      json.RawMessage `json:"id,omitempty"`
		Error   wireError       `json:"error"`
	}{JSONRPC: "2.0", ID: id, Error: wireError{code, msg}}
	b, err := json.Marshal(answer)
	if err != nil {
		return
	}
	// A failed write shows up on the SDK's next write, which ends the
	// session as it would have.
	_, _ = c.out.Write(append(b, '\n'))
}
