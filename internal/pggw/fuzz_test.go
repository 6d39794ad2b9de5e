package pggw

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/airlock-dev/airlock/internal/gateway"
	"github.com/airlock-dev/airlock/internal/gateway/gatewaytest"
	"github.com/airlock-dev/airlock/internal/tlscert"
	"github.com/jackc/pgx/v5/pgproto3"
)

// failingRoles never makes a role: the fuzzed gateway must not get that far.
type failingRoles struct{}

func (failingRoles) Ensure(context.Context, *gateway.Grant) (Role, error) {
	return Role{}, errors.New("no roles in the fuzzer")
}
func (failingRoles) Drop(context.Context, string) error { return nil }

func fuzzGateway(f testing.TB) (*Gateway, *gatewaytest.Authority) {
	auth := gatewaytest.New()
	// A certificate, so that both the SSLRequest and the direct TLS paths
	// run.
	tlsCfg, _, err := tlscert.Ensure(f.TempDir(), nil)
	if err != nil {
		f.Fatal(err)
	}
	g, err := New(Options{
		Authority: auth,
		TLS:       tlsCfg,
		// Port 1 on loopback: nothing listens; never reached without the secret.
		Targets:         []Target{{Name: "db", Upstream: "postgres://nobody@127.0.0.1:1/orders?sslmode=disable", Roles: failingRoles{}}},
		StartupTimeout:  2 * time.Second,
		MaxMessageBytes: 1 << 16,
		Logger:          slog.New(slog.DiscardHandler),
	})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { g.Close() })
	return g, auth
}

// FuzzStartup sends random bytes as a client's first packets: the gateway
// must answer with an error or close, never panic or hang.
func FuzzStartup(f *testing.F) {
	gw, auth := fuzzGateway(f)
	gr := auth.Add(gatewaytest.Spec{Target: "db", TargetKind: "postgres", Scope: []string{"pg:select orders.public.*"}})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		f.Fatal(err)
	}
	go gw.Serve(context.Background(), ln)
	f.Add(startupPacket("user", gr.CredentialID, "database", "orders"))
	// Startup packets PostgreSQL refuses for their layout
	// (TestStartupLayoutAsPostgres), one it reads with a name given twice
	// (the last value wins), and the largest it reads.
	for _, body := range []string{"user\x00u\x00", "user\x00u\x00\x00foo\x00\x00", "user\x00u\x00\x00junk",
		"user\x00u\x00database\x00\x00", "", "\x00", "user\x00\x00\x00", "user\x00x\x00user\x00" + gr.CredentialID + "\x00\x00",
		"user\x00u\x00application_name\x00" + strings.Repeat("a", maxStartupBody-30) + "\x00\x00"} {
		f.Add(rawStartup(body))
	}
	f.Add([]byte{0, 0, 0, 8, 4, 0xd2, 0x16, 0x2f}) // SSLRequest
	f.Add([]byte{0, 0, 0, 8, 4, 0xd2, 0x16, 0x30}) // GSSENCRequest
	f.Add([]byte{0, 0, 0, 16, 4, 0xd2, 0x16, 0x2e, 0, 0, 0, 1, 1, 2, 3, 4})
	// Direct TLS: a ClientHello with ALPN "postgresql" (the handshake
	// stalls on the fuzzer's side), cut short, and a bare record byte.
	hello := clientHello(f)
	f.Add(hello)
	f.Add(hello[:len(hello)/2])
	f.Add([]byte{tlsRecordHandshake})
	sasl := func(data string) []byte {
		m := pgproto3.SASLInitialResponse{AuthMechanism: scramMechanism, Data: []byte(data)}
		b, _ := m.Encode(nil)
		return b
	}
	f.Add(append(startupPacket("user", gr.CredentialID, "database", "orders"), sasl("n,,n=,r=abcdefghijklmnop")...))
	f.Add(append(startupPacket("user", "AKALX"), sasl("p=tls-server-end-point,,n=,r=x")...))
	f.Add(append(append(startupPacket("user", "u"), sasl("y,,n=,r=abc")...), []byte("p\x00\x00\x00\x0ec=eSws,r=abc,p=AAAA")...))
	f.Add(append(startupPacket("user", "u"), []byte("p\x00\x00\x00\x08abcd")...))
	f.Fuzz(func(t *testing.T, data []byte) {
		nc, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		_ = nc.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := nc.Write(data); err != nil {
			return // the gateway closed early: fine
		}
		_ = nc.(*net.TCPConn).CloseWrite()
		_, err = io.Copy(io.Discard, nc)
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("the gateway neither answered nor closed for input %q", data)
		}
	})
}

// FuzzFrontendMessages feeds random client messages to an authenticated
// session's relay, then random upstream messages to its response tracking.
// Nothing may panic; the client loop must end at the end of its input.
func FuzzFrontendMessages(f *testing.F) {
	gw, auth := fuzzGateway(f)
	gr := auth.Add(gatewaytest.Spec{Target: "db", TargetKind: "postgres", Scope: []string{"pg:select orders.public.*"}})
	var seed []byte
	for _, m := range []pgproto3.FrontendMessage{
		&pgproto3.Query{String: "select 1; select 2"},
		&pgproto3.Parse{Name: "s1", Query: "select $1::int"},
		&pgproto3.Bind{PreparedStatement: "s1", Parameters: [][]byte{[]byte("7")}},
		&pgproto3.Describe{ObjectType: 'P'},
		&pgproto3.Execute{},
		&pgproto3.Sync{},
		&pgproto3.Bind{DestinationPortal: "p", Parameters: [][]byte{nil}, ParameterFormatCodes: []int16{1}},
		&pgproto3.Execute{Portal: "p", MaxRows: 1},
		&pgproto3.Flush{},
		&pgproto3.Close{ObjectType: 'S', Name: "s1"},
		&pgproto3.Query{String: "copy t from stdin"},
		&pgproto3.CopyData{Data: []byte("1\n")},
		&pgproto3.CopyDone{},
		&pgproto3.FunctionCall{Function: 42, Arguments: [][]byte{[]byte("x")}},
		&pgproto3.Terminate{},
	} {
		seed, _ = m.Encode(seed)
	}
	var up []byte
	for _, m := range []pgproto3.BackendMessage{
		&pgproto3.RowDescription{}, &pgproto3.DataRow{Values: [][]byte{[]byte("1")}},
		&pgproto3.CommandComplete{CommandTag: []byte("SELECT 1")}, &pgproto3.ReadyForQuery{TxStatus: 'I'},
		&pgproto3.ParseComplete{}, &pgproto3.BindComplete{}, &pgproto3.ErrorResponse{Code: "42501", Message: "denied"},
		&pgproto3.PortalSuspended{}, &pgproto3.EmptyQueryResponse{}, &pgproto3.CopyData{Data: []byte("x")},
		&pgproto3.ReadyForQuery{TxStatus: 'T'},
	} {
		up, _ = m.Encode(up)
	}
	f.Add(seed, up)
	f.Add([]byte{'Q', 0, 0, 0, 4}, []byte{'Z', 0, 0, 0, 4})
	f.Add([]byte{'B', 0, 0, 0, 9, 0, 0, 0, 0, 0xff}, []byte{})
	f.Fuzz(func(t *testing.T, client, upstream []byte) {
		// Short reads as well as whole ones, through the reader's buffering.
		var cr io.Reader = bytes.NewReader(client)
		if len(client)%2 == 1 {
			cr = iotest.HalfReader(cr)
		}
		c := relayConn(t, gw, auth, gr, cr)
		c.readOnly = readOnlyScope(gr.Scope) // the hold path too
		done := make(chan struct{})
		go func() {
			defer close(done)
			_ = c.clientLoop()
			c.upstreamLoop(newIdleReader(bytes.NewReader(upstream)))
		}()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("relay did not finish its input")
		}
		c.finish()
	})
	_ = binary.BigEndian
}

// relayConn returns an authenticated session's connection on gr, past its
// startup, reading the client's messages from client and writing what it
// forwards nowhere.
func relayConn(t testing.TB, gw *Gateway, auth *gatewaytest.Authority, gr *gateway.Grant, client io.Reader) *conn {
	t.Helper()
	sess, err := auth.StartSession(context.Background(), gr, "test")
	if err != nil {
		t.Fatal(err)
	}
	server, peer := net.Pipe()
	t.Cleanup(func() { server.Close(); peer.Close() })
	go io.Copy(io.Discard, peer)
	c := newConn(gw, server)
	c.br = newIdleReader(client)
	c.sess, c.t = sess, gw.targets["db"]
	c.st = gw.grantState(gr)
	c.rs.init(newFlushWriter(io.Discard))
	return c
}
