package pggw

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/gateway/gatewaytest"
	"github.com/airlock-dev/airlock/internal/testenv"
	"github.com/jackc/pgx/v5/pgproto3"
)

// TestUnfaithfulUpstreamAnswerHeld: on a read-only session a read is
// forwarded while its record is written, and no byte the upstream sends
// after it may reach the client before that record is durable, however
// the upstream answers (DESIGN.md, "Fail closed"). The relay used to
// wait only for the record of the statement its queue said the bytes
// answer: an upstream that left an earlier statement's answer short (no
// answer, no ReadyForQuery) had the next statement's rows taken for the
// earlier one's, whose record was durable, and relayed at once while the
// later one's was still pending. Here the upstream is a TCP listener that
// answers the first statement short, then the second in full, its row
// marked; the recorder holds the second's record (Stall). The row must not
// reach the client until the record is released; if the record fails, the
// client gets FATAL 58000 and never the row.
func TestUnfaithfulUpstreamAnswerHeld(t *testing.T) {
	row := func(v string) pgproto3.BackendMessage { return &pgproto3.DataRow{Values: [][]byte{[]byte(v)}} }
	done := &pgproto3.CommandComplete{CommandTag: []byte("SELECT 1")}
	ready := &pgproto3.ReadyForQuery{TxStatus: 'I'}
	type scenario struct {
		name     string
		extended bool
		// first: what the upstream answers the first statement with.
		first []pgproto3.BackendMessage
	}
	scenarios := []scenario{
		{name: "no answer"},
		{name: "no ReadyForQuery", first: []pgproto3.BackendMessage{row("k1"), done}},
		{name: "an error without ReadyForQuery", first: []pgproto3.BackendMessage{
			&pgproto3.ErrorResponse{Severity: "ERROR", Code: "XX000", Message: "boom"}}},
		{name: "extended, no ReadyForQuery", extended: true, first: []pgproto3.BackendMessage{
			&pgproto3.ParseComplete{}, &pgproto3.BindComplete{}, row("k1"), done}},
	}
	for _, sc := range scenarios {
		for _, fail := range []bool{false, true} {
			name := sc.name
			if fail {
				name += ", record fails"
			}
			t.Run(name, func(t *testing.T) {
				second := []pgproto3.BackendMessage{row("secret-k2"), done, ready}
				if sc.extended {
					second = append([]pgproto3.BackendMessage{&pgproto3.ParseComplete{}, &pgproto3.BindComplete{}}, second...)
				}
				u := startUnfaithful(t, [][]pgproto3.BackendMessage{sc.first, second})
				send := func(k string) {
					var b []byte
					if sc.extended {
						b, _ = (&pgproto3.Parse{Query: "select '" + k + "' as v"}).Encode(b)
						b, _ = (&pgproto3.Bind{}).Encode(b)
						b, _ = (&pgproto3.Execute{}).Encode(b)
						b, _ = (&pgproto3.Sync{}).Encode(b)
					} else {
						b, _ = (&pgproto3.Query{String: "select '" + k + "' as v"}).Encode(b)
					}
					if _, err := u.client.Write(b); err != nil {
						t.Fatal(err)
					}
				}
				send("k1")
				u.waitAnswered(t, 1)
				st := u.auth.Stall()
				send("k2")
				select {
				case <-st.Held():
				case <-time.After(5 * time.Second):
					t.Fatal("the second statement's record was never made")
				}
				u.waitAnswered(t, 2)
				time.Sleep(200 * time.Millisecond) // time for a relay that does not wait
				if got := u.read(); bytes.Contains(got, []byte("secret-k2")) {
					t.Fatalf("the client read the second statement's row while its record was pending: %q", msgTypes(got))
				}
				if fail {
					st.Release(errors.New("the log is full"))
				} else {
					st.Release(nil)
				}
				deadline := time.Now().Add(5 * time.Second)
				for {
					got := u.read()
					if fail {
						if bytes.Contains(got, []byte("secret-k2")) {
							t.Fatalf("the client read the row of a statement whose record failed: %q", msgTypes(got))
						}
						if u.closed() {
							if !bytes.Contains(got, []byte("FATAL")) || !bytes.Contains(got, []byte(codeSystemError)) {
								t.Fatalf("the session ended without FATAL %s: %q", codeSystemError, got)
							}
							return
						}
					} else if bytes.Contains(got, []byte("secret-k2")) {
						return
					}
					if time.Now().After(deadline) {
						t.Fatalf("after the record's release, the client read %q", msgTypes(got))
					}
					time.Sleep(5 * time.Millisecond)
				}
			})
		}
	}
}

// unfaithful is a session of a read-only grant relayed to an upstream
// that answers the i-th statement (a Query or a Sync) with answers[i],
// whatever that statement was, over TCP, and a client that keeps what it
// reads.
type unfaithful struct {
	auth   *gatewaytest.Authority
	client net.Conn

	mu       sync.Mutex
	got      []byte
	eof      bool
	answered int
}

func startUnfaithful(t *testing.T, answers [][]pgproto3.BackendMessage) *unfaithful {
	gw, auth := fuzzGateway(t)
	gr := auth.Add(gatewaytest.Spec{Target: "db", TargetKind: "postgres", Scope: []string{"pg:select orders.public.*"}})
	sess, err := auth.StartSession(context.Background(), gr, "test")
	if err != nil {
		t.Fatal(err)
	}
	u := &unfaithful{auth: auth}
	pair := func() (net.Conn, net.Conn) {
		ln, err := net.Listen("tcp", testenv.FreeAddr(t))
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		accepted := make(chan net.Conn, 1)
		go func() {
			c, _ := ln.Accept()
			accepted <- c
		}()
		d, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		a := <-accepted
		if a == nil {
			t.Fatal("accept failed")
		}
		t.Cleanup(func() { d.Close(); a.Close() })
		return d, a
	}
	upc, srv := pair()
	gwc, cl := pair()
	u.client = cl
	c := sessionConn(gw, gwc, upc, sess, gr)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := cl.Read(buf)
			u.mu.Lock()
			u.got = append(u.got, buf[:n]...)
			u.eof = err != nil
			u.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	go func() {
		var hdr [5]byte
		for {
			if _, err := io.ReadFull(srv, hdr[:]); err != nil {
				return
			}
			if _, err := io.CopyN(io.Discard, srv, int64(binary.BigEndian.Uint32(hdr[1:]))-4); err != nil {
				return
			}
			if hdr[0] != 'Q' && hdr[0] != 'S' {
				continue
			}
			u.mu.Lock()
			i := u.answered
			u.mu.Unlock()
			var out []byte
			if i < len(answers) {
				for _, m := range answers[i] {
					out, _ = m.Encode(out)
				}
			}
			if _, err := srv.Write(out); err != nil {
				return
			}
			u.mu.Lock()
			u.answered++
			u.mu.Unlock()
		}
	}()
	go c.run(upc)
	return u
}

// waitAnswered waits until the upstream has answered n statements.
func (u *unfaithful) waitAnswered(t *testing.T, n int) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		u.mu.Lock()
		k := u.answered
		u.mu.Unlock()
		if k >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the upstream answered %d statements, want %d", k, n)
		}
	}
}

func (u *unfaithful) read() []byte {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]byte(nil), u.got...)
}

func (u *unfaithful) closed() bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.eof
}

// TestUnfaithfulUpstreamResultAfterRequest: a statement's result follows
// its request in the log, and is not recorded if its request is not. An
// upstream out of step can complete a statement the client forwarded
// after the upstream loop read the message, and so after the loop
// waited for the records forwarded before it (hold): here a
// ReadyForQuery no Sync asked for, read while a batch ended by Flush is
// in flight, and, once read, a batch with its Sync forwarded (through
// the gateway's test hook, between hold and the message's relay) with
// its record held. The ReadyForQuery completes both; the second's result
// was recorded at once, its request still pending, and stayed in the log
// when the request then failed; now the result waits for the request,
// and a request that fails ends the session (FATAL 58000), no result
// recorded.
func TestUnfaithfulUpstreamResultAfterRequest(t *testing.T) {
	gw, auth := fuzzGateway(t)
	gr := auth.Add(gatewaytest.Spec{Target: "db", TargetKind: "postgres", Scope: []string{"pg:select orders.public.*"}})
	batch := func(k string, end pgproto3.FrontendMessage) []byte {
		b, _ := (&pgproto3.Parse{Query: "select '" + k + "' as v"}).Encode(nil)
		b, _ = (&pgproto3.Bind{}).Encode(b)
		b, _ = (&pgproto3.Execute{}).Encode(b)
		b, _ = end.Encode(b)
		return b
	}
	c := relayConn(t, gw, auth, gr, bytes.NewReader(batch("k1", &pgproto3.Flush{})))
	c.readOnly = readOnlyScope(gr.Scope)
	if err := c.clientLoop(); err != nil {
		t.Fatal(err)
	}
	var st *gatewaytest.Stall
	once := false
	h := panicHook(func(stage string, raw []byte) {
		if stage != "upstream" || raw[0] != 'Z' || once {
			return
		}
		once = true
		st = auth.Stall()
		c.br = newIdleReader(bytes.NewReader(batch("k2", &pgproto3.Sync{})))
		if err := c.clientLoop(); err != nil {
			t.Error(err)
		}
		go func() {
			<-st.Held()
			time.Sleep(50 * time.Millisecond)
			st.Release(errors.New("the log is full"))
		}()
	})
	gw.panicHook.Store(&h)
	up, _ := (&pgproto3.ParseComplete{}).Encode(nil)
	up, _ = (&pgproto3.BindComplete{}).Encode(up)
	up, _ = (&pgproto3.ReadyForQuery{TxStatus: 'I'}).Encode(up)
	c.pk.ubr = newIdleReader(bytes.NewReader(up))
	c.upstreamLoop(c.pk.ubr)
	if !once {
		t.Fatal("the hook never ran")
	}
	if c.ctx().Err() == nil {
		t.Error("the session goes on after a statement's record failed")
	}
	requested := map[string]bool{}
	for _, call := range auth.Calls(gr.ID) {
		switch n := call.Params["n"]; {
		case n == "":
		case call.Kind == "request":
			requested[n] = true
		case call.Kind == "result" && !requested[n]:
			t.Errorf("statement %s's result is recorded without its request before it: %+v", n, auth.Calls(gr.ID))
		}
	}
}
