package pggw

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/airlock-dev/airlock/internal/gateway"
	"github.com/airlock-dev/airlock/internal/gateway/gatewaytest"
	"github.com/jackc/pgx/v5/pgproto3"
)

// TestRecordBytes holds the log's bytes of a statement's request and
// result, encoded as the log encodes them (Call.AppendJSON), to what they
// were while the relay built each record's parameters as a map: a simple
// Query, a multi-statement Query (its parts), a Bind and Execute with a
// parameter, a SQL EXECUTE of a statement prepared through the protocol
// (its text added) and a FunctionCall. The relay now gives them as Call.Pairs; the
// log, and every reader of it, must see the same bytes (this test
// passes on the relay that built maps, 7b03252). A result's duration is
// zeroed: it is the clock's.
func TestRecordBytes(t *testing.T) {
	gw, auth := fuzzGateway(t)
	gr := auth.Add(gatewaytest.Spec{Target: "db", TargetKind: "postgres", Scope: []string{"pg:select orders.public.*"}})
	enc := func(m ...pgproto3.FrontendMessage) []byte {
		var b []byte
		for _, msg := range m {
			b, _ = msg.Encode(b)
		}
		return b
	}
	benc := func(m ...pgproto3.BackendMessage) []byte {
		var b []byte
		for _, msg := range m {
			b, _ = msg.Encode(b)
		}
		return b
	}
	c := relayConn(t, gw, auth, gr, bytes.NewReader(enc(&pgproto3.Parse{Name: "p0", Query: "SELECT abalance FROM pgbench_accounts WHERE aid = $1;"}, &pgproto3.Sync{})))
	c.readOnly = readOnlyScope(gr.Scope)
	var (
		mu  sync.Mutex
		got []string
	)
	keep := func(call gateway.Call) {
		call.Duration = 0
		b, err := call.AppendJSON(nil)
		if err != nil {
			t.Errorf("encoding %+v: %v", call, err)
		}
		mu.Lock()
		got = append(got, string(b))
		mu.Unlock()
	}
	in := c.sess
	c.sess = gateway.NewSession(in.ID, gr, gateway.Recorder{
		Request: func(ctx context.Context, call gateway.Call) error { keep(call); return in.Request(ctx, call) },
		RequestAsync: func(ctx context.Context, call gateway.Call) func(context.Context) error {
			keep(call)
			err := in.Request(ctx, call)
			return func(context.Context) error { return err }
		},
		Result: func(ctx context.Context, call gateway.Call) error { keep(call); return in.Result(ctx, call) },
		End:    in.End,
	})
	if err := c.clientLoop(); err != nil {
		t.Fatal(err)
	}
	// The gateway closes the name before its Parse.
	c.pk.ubr = newIdleReader(bytes.NewReader(benc(&pgproto3.CloseComplete{}, &pgproto3.ParseComplete{}, &pgproto3.ReadyForQuery{TxStatus: 'I'})))
	c.upstreamLoop(c.pk.ubr)

	row := []pgproto3.BackendMessage{
		&pgproto3.RowDescription{Fields: []pgproto3.FieldDescription{{Name: []byte("abalance"), DataTypeOID: 23, DataTypeSize: 4, TypeModifier: -1}}},
		&pgproto3.DataRow{Values: [][]byte{[]byte("0")}},
		&pgproto3.CommandComplete{CommandTag: []byte("SELECT 1")},
	}
	rfq := &pgproto3.ReadyForQuery{TxStatus: 'I'}
	c.br = newIdleReader(bytes.NewReader(enc(
		&pgproto3.Parse{Query: "SELECT abalance FROM pgbench_accounts WHERE aid = $1;"},
		&pgproto3.Bind{Parameters: [][]byte{[]byte("81234")}}, &pgproto3.Execute{}, &pgproto3.Sync{},
		&pgproto3.Query{String: "SELECT abalance FROM pgbench_accounts WHERE aid = 81234;"},
		&pgproto3.Query{String: "select 1; select '<2>'"},
		&pgproto3.Query{String: "EXECUTE p0(7)"},
		&pgproto3.FunctionCall{Function: 1598, Arguments: [][]byte{[]byte("x'")}, ArgFormatCodes: []uint16{0}},
	)))
	if err := c.clientLoop(); err != nil {
		t.Fatal(err)
	}
	var up []byte
	up = append(up, benc(&pgproto3.ParseComplete{}, &pgproto3.BindComplete{}, row[1], row[2], rfq)...)
	up = append(up, benc(append(row, rfq)...)...)
	up = append(up, benc(append(append(row, row...), rfq)...)...)
	up = append(up, benc(append(row, rfq)...)...)
	up = append(up, benc(&pgproto3.FunctionCallResponse{Result: []byte("0.5")}, rfq)...)
	c.pk.ubr = newIdleReader(bytes.NewReader(up))
	c.upstreamLoop(c.pk.ubr)

	want := []string{
		`{"kind":"request","action":"pg:select","resource":"orders","allowed":true,"params":{"n":"1","parameters":"$1='81234'","protocol":"extended","statement":"SELECT abalance FROM pgbench_accounts WHERE aid = $1;"}}`,
		`{"kind":"request","action":"pg:select","resource":"orders","allowed":true,"params":{"n":"2","protocol":"simple","statement":"SELECT abalance FROM pgbench_accounts WHERE aid = 81234;"}}`,
		`{"kind":"request","action":"pg:select","resource":"orders","allowed":true,"params":{"n":"3","part":"1/2","protocol":"simple","statement":"select 1"}}`,
		`{"kind":"request","action":"pg:select","resource":"orders","allowed":true,"params":{"n":"4","part":"2/2","protocol":"simple","statement":"select '\u003c2\u003e'"}}`,
		`{"kind":"request","action":"pg:execute","resource":"orders","also":["pg:select orders"],"allowed":true,"params":{"n":"5","prepared":"SELECT abalance FROM pgbench_accounts WHERE aid = $1;","protocol":"simple","statement":"EXECUTE p0(7)"}}`,
		`{"kind":"request","action":"pg:function-call","resource":"orders","allowed":true,"params":{"function":"1598","n":"6","parameters":"$1='x'''","protocol":"function-call"}}`,
		`{"kind":"result","action":"pg:select","resource":"orders","allowed":true,"params":{"n":"1"},"status":"SELECT 1","bytes_out":7,"rows":1}`,
		`{"kind":"result","action":"pg:select","resource":"orders","allowed":true,"params":{"n":"2"},"status":"SELECT 1","bytes_out":7,"rows":1}`,
		`{"kind":"result","action":"pg:select","resource":"orders","allowed":true,"params":{"n":"3"},"status":"SELECT 1","bytes_out":7,"rows":1}`,
		`{"kind":"result","action":"pg:select","resource":"orders","allowed":true,"params":{"n":"4"},"status":"SELECT 1","bytes_out":7,"rows":1}`,
		`{"kind":"result","action":"pg:execute","resource":"orders","allowed":true,"params":{"n":"5"},"status":"SELECT 1","bytes_out":7,"rows":1}`,
		`{"kind":"result","action":"pg:function-call","resource":"orders","allowed":true,"params":{"n":"6"}}`,
	}
	mu.Lock()
	defer mu.Unlock()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("records\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
