package pggw

import (
	"bytes"
	"testing"

	"github.com/airlock-dev/airlock/internal/gateway"
	"github.com/airlock-dev/airlock/internal/gateway/gatewaytest"
	"github.com/jackc/pgx/v5/pgproto3"
)

// BenchmarkRelayCode measures the relay's own Go code per statement, with
// no network and no scheduler in the way: b.N pgbench -S statements
// (simple: a Query; prepared: Bind, Execute, Sync) through the client loop
// into a discarding upstream writer, then their answers (RowDescription or
// BindComplete, DataRow, CommandComplete, ReadyForQuery) through the
// upstream loop's tracking into a discarding client, with the requests and
// results recorded into the in-memory authority. BenchmarkRelay measures
// the whole gateway, system calls included; this isolates what the
// gateway's code adds to them (ns/op and allocs/op are per statement).
func BenchmarkRelayCode(b *testing.B) {
	for _, mode := range []string{"simple", "prepared"} {
		b.Run(mode, func(b *testing.B) { relayCode(b, mode) })
	}
}

// relayCode is BenchmarkRelayCode for one mode.
func relayCode(b *testing.B, mode string) {
	c, stmt, answer, auth, gr := relayCodeConn(b, mode)
	c.br = newIdleReader(bytes.NewReader(bytes.Repeat(stmt, b.N)))
	up := bytes.Repeat(answer, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	if err := c.clientLoop(); err != nil {
		b.Fatal(err)
	}
	c.pk.ubr = newIdleReader(bytes.NewReader(up)) // as relay.go sets it: tagString keeps the last tag there
	c.upstreamLoop(c.pk.ubr)
	b.StopTimer()
	if n := auth.NumCalls(gr.ID); n < 2*b.N {
		b.Fatalf("%d statements, %d calls recorded", b.N, n)
	}
}

// relayCodeConn is BenchmarkRelayCode's session in mode, its prepared
// statement (if any) parsed, with a pgbench -S statement's messages
// (stmt) and their answer.
func relayCodeConn(tb testing.TB, mode string) (c *conn, stmt, answer []byte, auth *gatewaytest.Authority, gr *gateway.Grant) {
	gw, auth := fuzzGateway(tb)
	gr = auth.Add(gatewaytest.Spec{Target: "db", TargetKind: "postgres", Scope: []string{"pg:select orders.public.*"}})
	var setup []byte
	if mode == "simple" {
		stmt, _ = (&pgproto3.Query{String: "SELECT abalance FROM pgbench_accounts WHERE aid = 81234;"}).Encode(nil)
		answer, _ = (&pgproto3.RowDescription{Fields: []pgproto3.FieldDescription{{Name: []byte("abalance"), DataTypeOID: 23, DataTypeSize: 4, TypeModifier: -1}}}).Encode(nil)
	} else {
		setup, _ = (&pgproto3.Parse{Name: "P_0", Query: "SELECT abalance FROM pgbench_accounts WHERE aid = $1;"}).Encode(nil)
		setup, _ = (&pgproto3.Sync{}).Encode(setup)
		stmt, _ = (&pgproto3.Bind{PreparedStatement: "P_0", Parameters: [][]byte{[]byte("81234")}}).Encode(nil)
		stmt, _ = (&pgproto3.Execute{}).Encode(stmt)
		stmt, _ = (&pgproto3.Sync{}).Encode(stmt)
		answer, _ = (&pgproto3.BindComplete{}).Encode(nil)
	}
	answer, _ = (&pgproto3.DataRow{Values: [][]byte{[]byte("0")}}).Encode(answer)
	answer, _ = (&pgproto3.CommandComplete{CommandTag: []byte("SELECT 1")}).Encode(answer)
	answer, _ = (&pgproto3.ReadyForQuery{TxStatus: 'I'}).Encode(answer)
	c = relayConn(tb, gw, auth, gr, bytes.NewReader(setup))
	c.readOnly = readOnlyScope(gr.Scope)
	if len(setup) > 0 {
		// The Parse is answered before the statements, as pgbench
		// waits for it: the gateway then knows it ran (settled).
		if err := c.clientLoop(); err != nil {
			tb.Fatal(err)
		}
		up, _ := (&pgproto3.ParseComplete{}).Encode(nil)
		up, _ = (&pgproto3.ReadyForQuery{TxStatus: 'I'}).Encode(up)
		c.pk.ubr = newIdleReader(bytes.NewReader(up)) // as relay.go sets it: tagString keeps the last tag there
		c.upstreamLoop(c.pk.ubr)
	}
	return c, stmt, answer, auth, gr
}

// TestRelayCodeAllocs bounds BenchmarkRelayCode's allocations per
// statement (the in-memory authority makes none of its own for a request
// recorded at once): a change that adds any to the relay's per-statement
// path fails here. Three are left for simple: the statement's queue entry
// (all b.N are queued at once here, so an entry comes back to the pool
// only from an earlier run: TestStatementEntryAllocs counts them one
// statement at a time, as pgbench sends them), its record (stmtRecord:
// its parameters as pairs and its number in decimal, where each
// parameters' set was a map of two allocations) and its text. Prepared
// has its parameters' text for the statement's, and a Sync's entry too:
// four, where its batch's entries were one slab of three (1,152 bytes,
// now 2 × 240 and the record's 144).
func TestRelayCodeAllocs(t *testing.T) {
	if raceOn {
		t.Skip("allocation bounds hold only without the race detector")
	}
	for _, mode := range []string{"simple", "prepared"} {
		want := 3.5
		if mode == "prepared" {
			want = 4.5
		}
		res := testing.Benchmark(func(b *testing.B) { relayCode(b, mode) })
		if n := float64(res.MemAllocs) / float64(res.N); n > want {
			t.Errorf("%s: %.2f allocations per statement, want at most %v", mode, n, want)
		} else {
			t.Logf("%s: %.2f allocations per statement (%d B, %d statements)", mode, n, res.AllocedBytesPerOp(), res.N)
		}
	}
}
