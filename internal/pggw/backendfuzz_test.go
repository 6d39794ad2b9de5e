package pggw

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/gateway"
	"github.com/airlock-dev/airlock/internal/gateway/gatewaytest"
	"github.com/jackc/pgx/v5/pgproto3"
)

// FuzzBackendMessages runs a session's two relay loops (the real ones,
// run) between a plausible client and an upstream that answers as
// PostgreSQL would (emuServer), its answers shaped by plan: rows, errors
// (insufficient_privilege among them), notices, parameter statuses,
// notifications, messages split across writes. raw, when not empty, is
// spliced into the upstream's stream at a point plan chooses: arbitrary
// bytes, well-framed or not. The invariants:
//
//   - nothing panics (a panic the connection contains counts);
//   - the session ends once its client and upstream are done, however
//     the stream was cut (no hang);
//   - what a session allocates is bounded by what it was sent, not by a
//     length read from the network;
//   - every statement the upstream ran has its request recorded (but a
//     read forwarded while its record was written, whose record the
//     session's end withdrew: its answer never reached the client), and
//     every request its one result (after it) by the session's end;
//   - until raw is spliced in (after which the upstream no longer says
//     which statement its answers are for), no byte of a statement's
//     answer reaches the client before its request is durable: on a
//     read-only session reads are forwarded while their records are
//     written (disclose.go), and the records here take a while; this
//     holds for an unfaithful upstream too (flagUnfaithful: answers
//     dropped, sent twice or late, an extra ReadyForQuery or
//     ErrorResponse before one, as plan says), which shifts the relay's
//     queue; nor, from a faithful upstream, the error of a statement
//     refused for lack of privilege before its result is recorded, as
//     refused (record.go).
//
// The upstream tags each answer with a marker naming the statement it
// answers and a nonce raw cannot forge, so the client can tell whose
// answer it reads, however out of step the upstream sends it.
func FuzzBackendMessages(f *testing.F) {
	ph := &panicLog{}
	auth := gatewaytest.New()
	gw, err := New(Options{
		Authority:       auth,
		Targets:         []Target{{Name: "db", Upstream: "postgres://nobody@127.0.0.1:1/orders?sslmode=disable", Roles: failingRoles{}}},
		StartupTimeout:  2 * time.Second,
		MaxMessageBytes: 1 << 16,
		Logger:          slog.New(ph),
	})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { gw.Close() })
	ro := auth.Add(gatewaytest.Spec{Target: "db", TargetKind: "postgres", Scope: []string{"pg:select orders.public.*"}})
	rw := auth.Add(gatewaytest.Spec{Target: "db", TargetKind: "postgres", Scope: []string{"pg:select orders.public.*", "pg:insert orders.public.*"}})

	// script: flags, then one byte per client step (runClient); plan: the
	// upstream's choices; raw: bytes spliced into its stream.
	all := []byte{flagReadOnly | flagWait | flagTerminate}
	for op := range byte(stepOps) {
		all = append(all, op)
	}
	f.Add(all, []byte{}, []byte{})
	f.Add(all, bytes.Repeat([]byte{3, 0, 0x13, 0, 2, 6, 1, 7}, 8), []byte{})
	f.Add([]byte{flagReadOnly, 0, 1, 2, 4, 5, 6, 0, 2}, []byte{2, 0x41, 7, 3, 0x90, 6, 1}, []byte{})
	f.Add([]byte{flagWait | flagTerminate, 3, 4, 7, 4, 5, 8, 9, 12, 4}, []byte{1, 2, 3, 4, 5, 6, 7, 8}, []byte{})
	// Refusals (42501 with nothing before it), simple and extended.
	f.Add([]byte{flagReadOnly | flagWait | flagTerminate, 0, 2, 0, 2}, []byte{9, 0xe0, 0, 0, 0xe0, 0, 0, 0xe0, 0, 0, 0xe0}, []byte{})
	f.Add([]byte{flagReadOnly | flagWait, 0, 0, 0}, []byte{1}, []byte("Z\x00\x00\x00\x05I"))
	f.Add([]byte{flagReadOnly | flagWait, 2, 2}, []byte{0}, []byte("C\x00\x00\x00\x0dSELECT 1\x00"))
	f.Add([]byte{flagReadOnly, 0, 2}, []byte{0}, []byte("E\x03\xff\xff\xff"))                     // declares 64 MiB, sends none
	f.Add([]byte{flagReadOnly, 0, 2}, []byte{0}, []byte("D\x00\x02\x00\x00\x00\x01\x00\x00\x00")) // a large row, cut short
	f.Add([]byte{0, 3, 4}, []byte{0}, []byte("X\x00\x00\x00\x02"))                                // a length below its own
	f.Add([]byte{flagReadOnly | flagWait, 0, 0}, []byte{0, 0x60 | 0x80}, []byte{})                // client_encoding SJIS
	f.Add([]byte{flagWait, 3, 4, 4}, []byte{0}, []byte("3\x00\x00\x00\x041\x00\x00\x00\x04"))
	// An unfaithful upstream: every step, waiting and pipelined, its
	// answers dropped, sent twice, after an extra ReadyForQuery or
	// ErrorResponse, or late, in turn.
	unfaithful := []byte{}
	for i := range byte(64) {
		unfaithful = append(unfaithful, i%5, 1+i%4)
	}
	all = slices.Clone(all)
	all[0] |= flagUnfaithful
	f.Add(all, unfaithful, []byte{})
	all = slices.Clone(all)
	all[0] &^= flagWait
	f.Add(all, unfaithful, []byte{})

	f.Fuzz(func(t *testing.T, script, plan, raw []byte) {
		if len(script) > 64 || len(plan) > 256 || len(raw) > 1<<16 {
			return
		}
		gr := rw
		if len(script) > 0 && script[0]&flagReadOnly != 0 {
			gr = ro
		}
		var before runtime.MemStats
		runtime.ReadMemStats(&before)
		panics := gw.panics.Load()

		h := newBackendHarness(t, gw, auth, gr, plan, raw, len(script) > 0 && script[0]&flagUnfaithful != 0)
		h.runClient(script)
		h.waitEnd()

		var after runtime.MemStats
		runtime.ReadMemStats(&after)
		if n := gw.panics.Load() - panics; n != 0 {
			t.Fatalf("%d panics contained: %s", n, ph.last())
		}
		if err := h.violation(); err != "" {
			t.Fatal(err)
		}
		h.checkRecords()
		// A session's own buffers and records are some hundreds of KiB;
		// a length read from the network and allocated at once is MiB.
		// The race detector allocates on its own account (raceOn).
		bound := uint64(8<<20) + 16*uint64(len(script)+len(plan)+len(raw))
		if raceOn {
			bound *= 4
		}
		if got := after.TotalAlloc - before.TotalAlloc; got > bound {
			t.Fatalf("the session allocated %d bytes, more than %d for its input", got, bound)
		}
	})
}

// Flags of the script's first byte.
const (
	flagReadOnly  = 1 << 0 // the grant is pg:select only: reads forwarded while recorded
	flagWait      = 1 << 1 // the client waits for each step's answers (else it pipelines)
	flagTerminate = 1 << 2 // it ends with Terminate, else by closing its socket
	// The upstream answers out of step (emuServer.send) and the client
	// waits for each step's answers a short while only (some never come).
	flagUnfaithful = 1 << 3
)

// panicLog is a slog.Handler that keeps the gateway's last contained panic.
type panicLog struct {
	mu  sync.Mutex
	msg string
}

func (p *panicLog) Enabled(context.Context, slog.Level) bool { return true }
func (p *panicLog) WithAttrs([]slog.Attr) slog.Handler       { return p }
func (p *panicLog) WithGroup(string) slog.Handler            { return p }
func (p *panicLog) Handle(_ context.Context, r slog.Record) error {
	if !strings.HasPrefix(r.Message, "panic") {
		return nil
	}
	var b strings.Builder
	b.WriteString(r.Message)
	r.Attrs(func(a slog.Attr) bool {
		fmt.Fprintf(&b, "\n%s: %v", a.Key, a.Value)
		return true
	})
	p.mu.Lock()
	p.msg = b.String()
	p.mu.Unlock()
	return nil
}

func (p *panicLog) last() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.msg
}

// statementIDs finds the ids the client writes into its statements.
var statementIDs = regexp.MustCompile(`k[0-9]+`)

// backendHarness is one fuzzed session: its client, its upstream, and a
// recorder whose request records become durable a little while after
// they are made.
type backendHarness struct {
	t     *testing.T
	c     *conn
	in    *gateway.Session
	nonce string

	client, server net.Conn // the client's and the upstream's ends

	mu      sync.Mutex
	durable map[string]bool // ids of statements whose request is durable
	ran     map[string]bool // ids of statements the upstream ran
	// reads: ids of reads on a read-only session, forwarded while their
	// records are written: one whose record is withdrawn (the session
	// ended first) ran unrecorded, its answer withheld (disclose.go).
	reads    map[string]bool
	readOnly bool
	bad      string // the first disclosure violation
	// unfaithful: the upstream answers out of step (flagUnfaithful)
	unfaithful bool
	delays     []byte      // how long each record takes, in half-milliseconds
	tainted    atomic.Bool // raw was spliced into the upstream's stream
	killed     atomic.Bool // the upstream said something the gateway kills the session for
	rec        *gatewaytest.Recorded
	ended      chan struct{}
	readys     atomic.Int64  // ReadyForQuery the client read
	closed     chan struct{} // the client's reader saw the end
	clientWG   sync.WaitGroup
	serverWG   sync.WaitGroup
}

func newBackendHarness(t *testing.T, gw *Gateway, auth *gatewaytest.Authority, gr *gateway.Grant, plan, raw []byte, unfaithful bool) *backendHarness {
	var nb [6]byte
	_, _ = rand.Read(nb[:])
	h := &backendHarness{t: t, nonce: "N" + hex.EncodeToString(nb[:]), durable: map[string]bool{}, ran: map[string]bool{}, reads: map[string]bool{},
		delays: plan, ended: make(chan struct{}), closed: make(chan struct{}), unfaithful: unfaithful}
	in, err := auth.StartSession(context.Background(), gr, "fuzz")
	if err != nil {
		t.Fatal(err)
	}
	h.in = in
	for _, s := range auth.Sessions() {
		if s.ID == in.ID {
			h.rec = s
		}
	}
	h.readOnly = readOnlyScope(gr.Scope)
	var recs atomic.Int64
	markDurable := func(c gateway.Call) {
		c = c.WithPairsInParams() // the relay gives a statement's as pairs
		h.mu.Lock()
		for _, id := range statementIDs.FindAllString(c.Params["statement"], -1) {
			h.durable[id] = true
		}
		h.mu.Unlock()
	}
	request := func(ctx context.Context, c gateway.Call) error {
		if err := in.Request(context.WithoutCancel(ctx), c); err != nil {
			return err
		}
		markDurable(c)
		return nil
	}
	async := func(ctx context.Context, c gateway.Call) func(context.Context) error {
		// A journal's write takes a while: 0 to 1.5 ms as plan says.
		i := int(recs.Add(1))
		var d time.Duration
		if len(h.delays) > 0 {
			d = time.Duration(h.delays[i%len(h.delays)]%4) * 500 * time.Microsecond
		}
		// As the audit log's: a record still queued when its wait ends
		// is withdrawn (and so never lands); one the writer took lands
		// or fails whatever the wait does.
		var mu sync.Mutex
		state := 0 // queued, taken, withdrawn
		done := make(chan error, 1)
		go func() {
			time.Sleep(d)
			mu.Lock()
			if state == 2 {
				mu.Unlock()
				return
			}
			state = 1
			mu.Unlock()
			done <- request(ctx, c)
		}()
		return func(wctx context.Context) error {
			select {
			case err := <-done:
				return err
			case <-wctx.Done():
				mu.Lock()
				if state == 0 {
					state = 2
					mu.Unlock()
					return wctx.Err()
				}
				mu.Unlock()
				return <-done
			}
		}
	}
	sess := gateway.NewSession(in.ID, gr, gateway.Recorder{Request: request, RequestAsync: async, Result: in.Result,
		End: func(ctx context.Context) error {
			defer close(h.ended)
			return in.End(ctx)
		}})

	gwc, cl := net.Pipe()
	upc, srv := net.Pipe()
	h.client, h.server = cl, srv
	c := sessionConn(gw, gwc, upc, sess, gr)
	h.c = c
	t.Cleanup(func() { cl.Close(); srv.Close() })

	emu := &emuServer{h: h, plan: plan, raw: raw, stmts: map[string]string{}, portals: map[string]emuPortal{}, tx: 'I', unfaithful: unfaithful}
	if len(plan) > 0 {
		emu.injectAt = int(plan[0])
	}
	h.serverWG.Add(1)
	go func() {
		defer h.serverWG.Done()
		emu.serve(srv)
	}()
	h.clientWG.Add(1)
	go func() {
		defer h.clientWG.Done()
		defer close(h.closed)
		h.readClient()
	}()
	go c.run(upc)
	return h
}

// sessionConn is a conn of session sess of grant gr on gw's target "db",
// its client on gwc and its upstream on upc, logged in: run relays it.
func sessionConn(gw *Gateway, gwc, upc net.Conn, sess *gateway.Session, gr *gateway.Grant) *conn {
	c := newConn(gw, gwc)
	c.sess, c.t = sess, gw.targets["db"]
	c.st = gw.grantState(gr)
	c.readOnly = readOnlyScope(gr.Scope)
	c.established()
	c.up = upc
	return c
}

// readClient reads what the gateway sends the client, checking every
// marked answer against the records durable at that moment.
func (h *backendHarness) readClient() {
	br := bufio.NewReader(h.client)
	mark := []byte(h.nonce + ":")
	for {
		var hdr [5]byte
		if _, err := io.ReadFull(br, hdr[:]); err != nil {
			return
		}
		n := int(int32(binary.BigEndian.Uint32(hdr[1:])))
		// A row or COPY chunk larger than the relay's buffer streams
		// through whatever its length (streamLarge), as PostgreSQL's up
		// to 1 GiB do: only what the relay reads whole is bounded.
		if n < 4 || (n-4 > maxBufferedUpstream && hdr[0] != 'D' && hdr[0] != 'd') {
			h.fail(fmt.Sprintf("the gateway sent the client a message %q of length %d", hdr[0], n))
			return
		}
		if n-4 > 1<<16 {
			// Only raw's messages are this large (the upstream's own
			// are small), and they carry no marker.
			if _, err := io.CopyN(io.Discard, br, int64(n-4)); err != nil {
				return
			}
			continue
		}
		body := make([]byte, n-4)
		if _, err := io.ReadFull(br, body); err != nil {
			return
		}
		if hdr[0] == 'Z' {
			h.readys.Add(1)
		}
		if h.tainted.Load() {
			continue
		}
		// Which statement an error refuses is the queue's to say, which
		// an unfaithful upstream shifts: only disclosure is checked then.
		if hdr[0] == 'E' && bytes.Contains(body, []byte("(refused) "+h.nonce+":")) && !h.killed.Load() && !h.unfaithful {
			h.checkRefused(body[bytes.Index(body, mark)+len(mark):])
		}
		for b := body; ; {
			i := bytes.Index(b, mark)
			if i < 0 {
				break
			}
			b = b[i+len(mark):]
			id := b[:len(b)-len(bytes.TrimLeft(b, "k0123456789"))]
			if len(id) == 0 {
				continue // a statement without an id (BEGIN, COMMIT)
			}
			h.mu.Lock()
			ok := h.durable[string(id)]
			h.mu.Unlock()
			if !ok {
				h.fail(fmt.Sprintf("the client read %q answering statement %s before its request was durable", hdr[0], id))
			}
		}
	}
}

// checkRefused checks that the result of the statement a refusal (42501,
// nothing of its answer before it) names at the start of b is recorded,
// as refused, before the client reads the error: a review read as soon as
// the client has it counts the refusal (record.go).
func (h *backendHarness) checkRefused(b []byte) {
	id := string(b[:len(b)-len(bytes.TrimLeft(b, "k0123456789"))])
	if id == "" {
		return // a statement without an id (BEGIN, COMMIT)
	}
	calls := h.rec.Calls()
	n := ""
	for _, c := range calls {
		if c.Kind == "request" && c.Params["n"] != "" && slices.Contains(statementIDs.FindAllString(c.Params["statement"], -1), id) {
			n = c.Params["n"]
		}
	}
	for _, c := range calls {
		if c.Kind == "result" && n != "" && c.Params["n"] == n {
			if !c.Refused {
				h.fail(fmt.Sprintf("statement %s's result is not recorded as refused: %+v", id, c))
			}
			return
		}
	}
	h.fail(fmt.Sprintf("the client read statement %s's refusal before its result was recorded: %+v", id, calls))
}

func (h *backendHarness) fail(msg string) {
	h.mu.Lock()
	if h.bad == "" {
		h.bad = msg
	}
	h.mu.Unlock()
}

func (h *backendHarness) violation() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.bad
}

// Client steps: the script's bytes after its first, modulo stepOps.
const stepOps = 16

// runClient sends the script's statements, each with an id (k1, k2, …),
// waiting for each step's ReadyForQuery if the script says so, then ends
// the session.
func (h *backendHarness) runClient(script []byte) {
	flags := byte(0)
	if len(script) > 0 {
		flags, script = script[0], script[1:]
	}
	var want int64
	id := 0
	sel := func() string {
		id++
		k := "k" + strconv.Itoa(id)
		if h.readOnly {
			h.mu.Lock()
			h.reads[k] = true
			h.mu.Unlock()
		}
		return "select '" + k + "' as v"
	}
	var out []byte
	add := func(ms ...pgproto3.FrontendMessage) {
		for _, m := range ms {
			out, _ = m.Encode(out)
			switch m.(type) {
			case *pgproto3.Query, *pgproto3.Sync, *pgproto3.FunctionCall:
				want++
			}
		}
	}
	for i, b := range script {
		out = out[:0]
		name := "s" + strconv.Itoa(int(b>>4)%3)
		portal := "p" + strconv.Itoa(int(b>>4)%2)
		switch b % stepOps {
		case 0: // one read, simple protocol
			add(&pgproto3.Query{String: sel()})
		case 1: // several statements in one Query
			add(&pgproto3.Query{String: sel() + "; " + sel() + "; " + sel()})
		case 2: // one read, extended protocol, unnamed
			add(&pgproto3.Parse{Query: sel()}, &pgproto3.Bind{}, &pgproto3.Describe{ObjectType: 'P'}, &pgproto3.Execute{}, &pgproto3.Sync{})
		case 3: // a named prepared statement
			add(&pgproto3.Parse{Name: name, Query: sel()}, &pgproto3.Sync{})
		case 4: // run it
			add(&pgproto3.Bind{PreparedStatement: name}, &pgproto3.Execute{}, &pgproto3.Sync{})
		case 5: // a named portal read in parts
			add(&pgproto3.Bind{PreparedStatement: name, DestinationPortal: portal}, &pgproto3.Execute{Portal: portal, MaxRows: 1}, &pgproto3.Sync{})
		case 6: // more of it
			add(&pgproto3.Execute{Portal: portal, MaxRows: 1}, &pgproto3.Sync{})
		case 7: // a write: code may run, named statements are checked
			id++
			add(&pgproto3.Query{String: "insert into t values ('k" + strconv.Itoa(id) + "')"})
		case 8: // two statements in one batch
			add(&pgproto3.Parse{Query: sel()}, &pgproto3.Bind{}, &pgproto3.Execute{},
				&pgproto3.Parse{Query: sel()}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{})
		case 9:
			add(&pgproto3.Close{ObjectType: 'S', Name: name}, &pgproto3.Sync{})
		case 10:
			add(&pgproto3.FunctionCall{Function: 1598, ResultFormatCode: 0})
		case 11: // a read that calls a function: recorded before it is forwarded
			id++
			add(&pgproto3.Query{String: "select pg_sleep(0), 'k" + strconv.Itoa(id) + "'"})
		case 12:
			if b&0x80 != 0 {
				add(&pgproto3.Query{String: "commit"})
			} else {
				add(&pgproto3.Query{String: "begin"})
			}
		case 13: // a batch ended by Flush, its Sync later
			add(&pgproto3.Parse{Query: sel()}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Flush{})
			if i == len(script)-1 || b&0x80 != 0 {
				add(&pgproto3.Sync{})
			}
		case 14: // COPY out
			id++
			add(&pgproto3.Query{String: "copy (select 'k" + strconv.Itoa(id) + "') to stdout"})
		case 15: // COPY in, its data sent without waiting for CopyInResponse
			id++
			add(&pgproto3.Query{String: "copy t from stdin -- k" + strconv.Itoa(id)}, &pgproto3.CopyData{Data: []byte("1\n")})
			if b&0x80 != 0 {
				add(&pgproto3.CopyFail{Message: "no"})
			} else {
				add(&pgproto3.CopyDone{})
			}
		}
		if _, err := h.client.Write(out); err != nil {
			return // the session ended
		}
		if flags&flagWait != 0 {
			h.waitReady(want)
		}
	}
	h.waitReady(want)
	if flags&flagTerminate != 0 {
		_, _ = h.client.Write([]byte{'X', 0, 0, 0, 4})
		return
	}
	h.client.Close()
}

// waitReady waits until the client has read n ReadyForQuery, unless the
// session ended or the upstream's stream was spliced (its answers may then
// never come); from an unfaithful upstream, which may drop them, a short
// while at most.
func (h *backendHarness) waitReady(n int64) {
	deadline := time.Now().Add(5 * time.Second)
	if h.unfaithful {
		deadline = time.Now().Add(20 * time.Millisecond)
	}
	for h.readys.Load() < n && !h.tainted.Load() && time.Now().Before(deadline) {
		select {
		case <-h.closed:
			return
		case <-time.After(100 * time.Microsecond):
		}
	}
}

// waitEnd waits for the session's end: both relay loops done, its
// results and end recorded.
func (h *backendHarness) waitEnd() {
	select {
	case <-h.ended:
	case <-time.After(20 * time.Second):
		h.t.Fatal("the session did not end")
	}
	h.client.Close()
	h.server.Close()
	h.clientWG.Wait()
	h.serverWG.Wait()
}

// checkRecords checks the session's recording: every statement the
// upstream ran was recorded; every request has one result, after it.
func (h *backendHarness) checkRecords() {
	t := h.t
	var rec *gatewaytest.Recorded
	for _, s := range gatewaySessions(h) {
		if s.ID == h.in.ID {
			rec = s
		}
	}
	if rec == nil || !rec.Ended() {
		t.Fatal("the session's recording did not end")
	}
	if n := rec.Late(); n != 0 {
		t.Fatalf("%d records after the session's end", n)
	}
	calls := rec.Calls()
	requested := map[string]bool{}
	results := map[string]int{}
	for _, c := range calls {
		n := c.Params["n"]
		switch {
		case c.Kind == "request":
			for _, id := range statementIDs.FindAllString(c.Params["statement"], -1) {
				requested[id] = true
			}
			if n == "" {
				continue
			}
			if _, dup := results[n]; dup {
				t.Fatalf("two requests numbered %s: %+v", n, calls)
			}
			results[n] = 0
		case c.Kind == "result" && n != "":
			k, ok := results[n]
			if !ok {
				t.Fatalf("a result of statement %s without its request before it: %+v", n, calls)
			}
			if k > 0 {
				t.Fatalf("two results of statement %s: %+v", n, calls)
			}
			results[n] = k + 1
		}
	}
	for n, k := range results {
		if k == 0 {
			t.Fatalf("statement %s has no result by the session's end: %+v", n, calls)
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for id := range h.ran {
		if !requested[id] && !h.reads[id] {
			t.Fatalf("the upstream ran statement %s, which has no request recorded: %+v", id, calls)
		}
	}
}

func gatewaySessions(h *backendHarness) []*gatewaytest.Recorded {
	return h.c.gw.o.Authority.(*gatewaytest.Authority).Sessions()
}

// emuPortal is a portal as the emulated server holds it.
type emuPortal struct {
	text   string
	params [][]byte
	done   bool
}

// emuServer answers the gateway as PostgreSQL would, as far as the relay
// can tell: statements and portals by name, errors that skip to Sync,
// transaction status, portals that end with their transaction, the
// gateway's own check of a prepared statement (checkQuery). What rows
// and errors its statements give is plan's.
type emuServer struct {
	h        *backendHarness
	plan     []byte
	pi       int
	raw      []byte
	injectAt int
	msgs     int

	stmts    map[string]string
	portals  map[string]emuPortal
	skipping bool
	copyIn   bool // in COPY FROM STDIN: CopyData until CopyDone or CopyFail
	tx       byte
	out      []byte
	// unfaithful: send answers out of step as plan says (send); late
	// holds the messages to send after the answers to the next message.
	unfaithful bool
	late       []byte
}

func (e *emuServer) next() byte {
	if e.pi < len(e.plan) {
		b := e.plan[e.pi]
		e.pi++
		return b
	}
	return 0
}

func (e *emuServer) send(m pgproto3.BackendMessage) {
	if e.unfaithful {
		switch e.next() % 16 {
		case 0: // dropped
			return
		case 1: // sent twice
			e.out, _ = m.Encode(e.out)
		case 2: // after a ReadyForQuery of its own
			e.out, _ = (&pgproto3.ReadyForQuery{TxStatus: e.tx}).Encode(e.out)
		case 3: // after an error of its own, which settles nothing here
			e.out, _ = (&pgproto3.ErrorResponse{Severity: "ERROR", SeverityUnlocalized: "ERROR", Code: "XX000", Message: "out of step"}).Encode(e.out)
		case 4: // late: after the answers to the next message
			e.late, _ = m.Encode(e.late)
			return
		}
	}
	e.out, _ = m.Encode(e.out)
}

func (e *emuServer) fail(code, msg string) {
	e.send(&pgproto3.ErrorResponse{Severity: "ERROR", SeverityUnlocalized: "ERROR", Code: code, Message: msg})
	e.skipping = true
	if e.tx == 'T' {
		e.tx = 'E'
	}
}

// serve reads the gateway's messages and writes the answers, from a
// goroutine of their own, as a socket's buffer would take them.
func (e *emuServer) serve(nc net.Conn) {
	writes := make(chan []byte, 4096)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for b := range writes {
			if _, err := nc.Write(b); err != nil {
				for range writes {
				}
				return
			}
		}
	}()
	defer func() {
		close(writes)
		wg.Wait()
		nc.Close()
	}()
	flush := func() {
		if len(e.out) == 0 {
			return
		}
		// Split where plan says, as TCP may.
		if s := int(e.next()); s%3 == 1 && len(e.out) > 1 {
			k := 1 + s%(len(e.out)-1)
			writes <- append([]byte(nil), e.out[:k]...)
			writes <- append([]byte(nil), e.out[k:]...)
		} else {
			writes <- append([]byte(nil), e.out...)
		}
		e.out = e.out[:0]
	}
	inject := func() {
		if len(e.raw) > 0 {
			e.h.tainted.Store(true)
			writes <- e.raw
			e.raw = nil
		}
	}
	br := bufio.NewReader(nc)
	for {
		var hdr [5]byte
		if _, err := io.ReadFull(br, hdr[:]); err != nil {
			inject()
			return
		}
		n := int(binary.BigEndian.Uint32(hdr[1:]))
		if n < 4 {
			e.h.fail(fmt.Sprintf("the gateway sent the upstream a message %q of length %d", hdr[0], n))
			return
		}
		body := make([]byte, n-4)
		if _, err := io.ReadFull(br, body); err != nil {
			inject()
			return
		}
		if e.msgs == e.injectAt {
			inject()
		}
		e.msgs++
		if hdr[0] == 'X' {
			inject()
			return
		}
		late := e.late
		e.late = nil
		e.message(hdr[0], body)
		e.out = append(e.out, late...)
		flush()
	}
}

// emuMessages are the frontend messages the server decodes, by type.
var emuMessages = map[byte]func() pgproto3.FrontendMessage{
	'P': func() pgproto3.FrontendMessage { return &pgproto3.Parse{} },
	'B': func() pgproto3.FrontendMessage { return &pgproto3.Bind{} },
	'D': func() pgproto3.FrontendMessage { return &pgproto3.Describe{} },
	'E': func() pgproto3.FrontendMessage { return &pgproto3.Execute{} },
	'C': func() pgproto3.FrontendMessage { return &pgproto3.Close{} },
}

// message answers one frontend message.
func (e *emuServer) message(typ byte, body []byte) {
	if e.copyIn {
		switch typ {
		case 'd':
		case 'c':
			e.copyIn = false
			e.send(&pgproto3.CommandComplete{CommandTag: []byte("COPY 1")})
			e.send(&pgproto3.ReadyForQuery{TxStatus: e.tx})
		case 'f':
			e.copyIn = false
			e.fail("57014", "COPY from stdin failed")
			e.skipping = false
			e.send(&pgproto3.ReadyForQuery{TxStatus: e.tx})
		default:
			e.h.fail(fmt.Sprintf("the gateway sent the upstream a message %q in COPY FROM STDIN", typ))
		}
		return
	}
	if e.skipping && typ != 'S' {
		return
	}
	var msg pgproto3.FrontendMessage
	if mk := emuMessages[typ]; mk != nil {
		if msg = mk(); msg.Decode(body) != nil {
			e.h.fail(fmt.Sprintf("the gateway sent the upstream an invalid %T", msg))
			return
		}
	}
	// What a Bind, Describe or Execute names must exist: 26000 for a
	// statement, 34000 for a portal.
	stmtOK := func(name string) bool {
		_, ok := e.stmts[name]
		if !ok {
			e.fail("26000", "prepared statement does not exist")
		}
		return ok
	}
	portalOK := func(name string) bool {
		_, ok := e.portals[name]
		if !ok {
			e.fail("34000", "portal does not exist")
		}
		return ok
	}
	switch m := msg.(type) {
	case *pgproto3.Parse:
		if _, ok := e.stmts[m.Name]; ok && m.Name != "" {
			e.fail("42P05", "prepared statement already exists")
			return
		}
		e.stmts[m.Name] = m.Query
		e.send(&pgproto3.ParseComplete{})
		return
	case *pgproto3.Bind:
		if !stmtOK(m.PreparedStatement) {
			return
		}
		if _, ok := e.portals[m.DestinationPortal]; ok && m.DestinationPortal != "" {
			e.fail("42P03", "cursor already exists")
			return
		}
		e.portals[m.DestinationPortal] = emuPortal{text: e.stmts[m.PreparedStatement], params: m.Parameters}
		e.send(&pgproto3.BindComplete{})
		return
	case *pgproto3.Describe:
		if (m.ObjectType == 'P' && portalOK(m.Name)) || (m.ObjectType == 'S' && stmtOK(m.Name)) {
			e.send(&pgproto3.NoData{})
		}
		return
	case *pgproto3.Execute:
		if !portalOK(m.Portal) {
			return
		}
		if p := e.portals[m.Portal]; p.done {
			e.send(&pgproto3.CommandComplete{CommandTag: []byte("SELECT 0")})
		} else {
			e.run(p.text, m.MaxRows, p.params, m.Portal)
		}
		return
	case *pgproto3.Close:
		if m.ObjectType == 'S' {
			delete(e.stmts, m.Name)
		} else {
			delete(e.portals, m.Name)
		}
		e.send(&pgproto3.CloseComplete{})
		return
	}
	switch typ {
	case 'Q':
		text := string(bytes.TrimRight(body, "\x00"))
		if strings.HasPrefix(text, "copy t from stdin") {
			e.h.mu.Lock()
			for _, id := range statementIDs.FindAllString(text, -1) {
				e.h.ran[id] = true
			}
			e.h.mu.Unlock()
			e.copyIn = true
			e.send(&pgproto3.CopyInResponse{OverallFormat: 0})
			return
		}
		ran := false
		for _, st := range strings.Split(text, ";") {
			if st = strings.TrimSpace(st); st == "" {
				continue
			}
			ran = true
			if !e.run(st, 0, nil, "") {
				break
			}
		}
		if !ran {
			e.send(&pgproto3.EmptyQueryResponse{})
		}
		e.skipping = false
		e.async()
		e.send(&pgproto3.ReadyForQuery{TxStatus: e.tx})
	case 'S':
		e.skipping = false
		if e.tx == 'I' {
			clear(e.portals) // the implicit transaction ends
		}
		e.async()
		e.send(&pgproto3.ReadyForQuery{TxStatus: e.tx})
	case 'H':
	case 'F':
		e.send(&pgproto3.FunctionCallResponse{Result: []byte("1")})
		e.send(&pgproto3.ReadyForQuery{TxStatus: e.tx})
	default:
		e.h.fail(fmt.Sprintf("the gateway sent the upstream a message %q", typ))
	}
}

// async sends what a server may send between statements, as plan says.
func (e *emuServer) async() {
	b := e.next()
	if b&1 != 0 {
		e.send(&pgproto3.NotificationResponse{PID: 7, Channel: "ch", Payload: "p"})
	}
	switch (b >> 1) & 7 {
	case 1:
		e.send(&pgproto3.ParameterStatus{Name: "standard_conforming_strings", Value: "off"})
	case 2:
		e.send(&pgproto3.ParameterStatus{Name: "standard_conforming_strings", Value: "on"})
	case 3:
		e.send(&pgproto3.ParameterStatus{Name: "application_name", Value: "x"})
	}
}

// run runs one statement; false if it failed (the server then skips).
func (e *emuServer) run(text string, maxRows uint32, params [][]byte, portal string) bool {
	if text == checkQuery {
		// The gateway's check: one row if statement $1 holds text $2.
		if len(params) == 2 && e.stmts[string(params[0])] == string(params[1]) {
			e.send(&pgproto3.DataRow{Values: [][]byte{[]byte("1")}})
			e.send(&pgproto3.CommandComplete{CommandTag: []byte("SELECT 1")})
			return true
		}
		e.fail(codeDivisionByZero, "division by zero")
		return false
	}
	ids := statementIDs.FindAllString(text, -1)
	e.h.mu.Lock()
	for _, id := range ids {
		e.h.ran[id] = true
	}
	e.h.mu.Unlock()
	mark := e.h.nonce + ":" + strings.Join(ids, ",")
	lower := strings.ToLower(text)
	if e.tx == 'E' && lower != "commit" && lower != "rollback" {
		e.fail("25P02", "current transaction is aborted")
		return false
	}
	b := e.next()
	rows := int(b % 4)
	if strings.HasPrefix(lower, "copy (") {
		e.send(&pgproto3.CopyOutResponse{OverallFormat: 0})
		for range rows {
			e.send(&pgproto3.CopyData{Data: []byte(mark + "\n")})
		}
		e.send(&pgproto3.CopyDone{})
		e.send(&pgproto3.CommandComplete{CommandTag: []byte("COPY " + strconv.Itoa(rows))})
		return true
	}
	for i := range rows {
		if maxRows > 0 && i == int(maxRows) {
			e.send(&pgproto3.PortalSuspended{})
			return true
		}
		e.send(&pgproto3.DataRow{Values: [][]byte{[]byte(mark)}})
		if b&0x10 != 0 {
			e.send(&pgproto3.NoticeResponse{Severity: "NOTICE", SeverityUnlocalized: "NOTICE", Code: "00000", Message: "about " + mark})
		}
	}
	switch b >> 5 {
	case 6:
		e.fail("XX000", "boom "+mark)
		return false
	case 7:
		msg := "permission denied "
		if rows == 0 {
			// Nothing of it reached the client: the relay counts it as
			// refused (entry.refused) and holds the error until its
			// result is recorded.
			msg += "(refused) "
		}
		e.fail("42501", msg+mark)
		return false
	case 5:
		if b&0x08 != 0 {
			// A client encoding the gateway refuses: the session ends at
			// the client's next message.
			e.send(&pgproto3.ParameterStatus{Name: "client_encoding", Value: "SJIS"})
			// Its kill flushes whatever the client's buffer holds, a
			// refused statement's error included (record.go).
			e.h.killed.Store(true)
		}
	}
	tag := "SELECT " + strconv.Itoa(rows)
	switch lower {
	case "begin":
		e.tx, tag = 'T', "BEGIN"
	case "commit", "rollback":
		e.tx, tag = 'I', strings.ToUpper(lower)
		clear(e.portals)
	}
	if strings.HasPrefix(lower, "insert") {
		tag = "INSERT 0 1"
	}
	e.send(&pgproto3.CommandComplete{CommandTag: []byte(tag)})
	if portal != "" {
		p := e.portals[portal]
		p.done = true
		e.portals[portal] = p
	}
	return true
}
