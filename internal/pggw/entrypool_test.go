package pggw

import (
	"bytes"
	"fmt"
	"runtime"
	"strconv"
	"testing"

	"github.com/airlock-dev/airlock/internal/gateway/gatewaytest"
	"github.com/jackc/pgx/v5/pgproto3"
)

// TestStatementEntryAllocs holds a pgbench -S statement, sent one at a
// time as pgbench sends them (its messages through the client loop, then
// its answer through the upstream loop, which records its result), to two
// allocations and 260 bytes on the relay's side, the in-memory authority
// keeping nothing (DiscardCalls). What is left: the statement's record
// (stmtRecord, 144 bytes) and its text (simple) or its parameters'
// (prepared). The queue entry comes back to the pool once the result is
// recorded (freeEntry); it was 384 bytes a statement, and a prepared
// batch's slab 1,152 (three entries: the Execute's, an unused one for the
// Bind, the Sync's), beside the number's string (8).
func TestStatementEntryAllocs(t *testing.T) {
	if raceOn {
		t.Skip("allocation bounds hold only without the race detector")
	}
	const maxAllocs, maxBytes = 2.2, 260
	for _, mode := range []string{"simple", "prepared"} {
		auth, cycle := statementCycles(t, mode)
		var k int // statements a cycle
		// A cycle's own cost (the loops' starts and ends) is taken off:
		// a statement's is what a cycle of two costs more than one of
		// one.
		const runs = 2000
		var allocs, perStmt [3]float64
		for _, k = range []int{1, 2} {
			for range 200 { // numbers past 100, whose strings are not static
				cycle(k)
			}
			allocs[k] = testing.AllocsPerRun(runs, func() { cycle(k) })
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			for range runs {
				cycle(k)
			}
			runtime.ReadMemStats(&after)
			perStmt[k] = float64(after.TotalAlloc-before.TotalAlloc) / runs
		}
		a, by := allocs[2]-allocs[1], perStmt[2]-perStmt[1]
		if a > maxAllocs || by > maxBytes {
			t.Errorf("%s: %.2f allocations and %.0f bytes a statement, want at most %v and %v", mode, a, by, maxAllocs, maxBytes)
		} else {
			t.Logf("%s: %.2f allocations and %.0f bytes a statement (a cycle of one: %.2f, %.0f)", mode, a, by, allocs[1], perStmt[1])
		}
		d := 0
		for _, s := range auth.Sessions() {
			d += s.Discarded()
		}
		if d < 2*3*(200+2*runs+1) {
			t.Errorf("%s: %d calls recorded, want a request and a result for each statement", mode, d)
		}
	}
}

// statementCycles is BenchmarkRelayCode's session in mode, with a cycle
// that sends k (1 or 2) pgbench -S statements at once through the client
// loop, then their answers through the upstream loop, which records their
// results, as pgbench sends a statement and waits for its answer.
func statementCycles(tb testing.TB, mode string) (*gatewaytest.Authority, func(k int)) {
	c, stmt, answer, auth, _ := relayCodeConn(tb, mode)
	auth.DiscardCalls(true)
	cr, ur := bytes.NewReader(nil), bytes.NewReader(nil)
	c.br, c.pk.ubr = newIdleReader(cr), newIdleReader(ur)
	stmts := [][]byte{1: stmt, 2: bytes.Repeat(stmt, 2)}
	answers := [][]byte{1: answer, 2: bytes.Repeat(answer, 2)}
	return auth, func(k int) {
		cr.Reset(stmts[k])
		c.br.Reset(cr)
		if err := c.clientLoop(); err != nil {
			tb.Fatal(err)
		}
		ur.Reset(answers[k])
		c.pk.ubr.Reset(ur)
		c.upstreamLoop(c.pk.ubr)
	}
}

// BenchmarkStatementCycle is BenchmarkRelayCode one statement at a time
// (statementCycles), as pgbench -S sends them: each statement's queue
// entry is back in the pool before the next one's is taken. ns/op and
// allocs/op are a statement's and its cycle's (the loops' starts and
// ends: TestStatementEntryAllocs takes those off).
func BenchmarkStatementCycle(b *testing.B) {
	for _, mode := range []string{"simple", "prepared"} {
		b.Run(mode, func(b *testing.B) {
			_, cycle := statementCycles(b, mode)
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				cycle(1)
			}
		})
	}
}

// TestRecycledEntriesKeepRecords: queue entries go back to the pool
// (freeEntry) and serve the next statements while the recorder still
// holds the calls of the earlier ones, and while later statements are
// queued. Rounds of one to four pipelined statements, simple and
// prepared alternating, each answered with a row count of its own, the
// next round sent before the last one's results are all recorded:
// every request must pair by its number with one result, with the
// statement's own text, parameters and row count. An entry given back
// before its result was recorded, or a record pointing into an entry,
// shows here as a result or request under the wrong number or with
// another statement's rows (and, under -race, as a race between the
// client loop filling an entry and the upstream loop reading it).
func TestRecycledEntriesKeepRecords(t *testing.T) {
	gw, auth := fuzzGateway(t)
	gr := auth.Add(gatewaytest.Spec{Target: "db", TargetKind: "postgres", Scope: []string{"pg:select orders.public.*"}})
	setup, _ := (&pgproto3.Parse{Name: "P", Query: "SELECT $1::int"}).Encode(nil)
	setup, _ = (&pgproto3.Sync{}).Encode(setup)
	c := relayConn(t, gw, auth, gr, bytes.NewReader(setup))
	c.readOnly = readOnlyScope(gr.Scope)
	if err := c.clientLoop(); err != nil {
		t.Fatal(err)
	}
	up, _ := (&pgproto3.ParseComplete{}).Encode(nil)
	up, _ = (&pgproto3.ReadyForQuery{TxStatus: 'I'}).Encode(up)
	c.pk.ubr = newIdleReader(bytes.NewReader(up))
	c.upstreamLoop(c.pk.ubr)

	// Statement 1, P's first Execute, before the rounds: the gateway
	// checks the statement there (bindStmt), which this upstream does
	// not answer as a server would, so its rows are not compared.
	first, _ := (&pgproto3.Bind{PreparedStatement: "P", Parameters: [][]byte{[]byte("1")}}).Encode(nil)
	first, _ = (&pgproto3.Execute{}).Encode(first)
	first, _ = (&pgproto3.Sync{}).Encode(first)
	c.br = newIdleReader(bytes.NewReader(first))
	if err := c.clientLoop(); err != nil {
		t.Fatal(err)
	}
	up, _ = (&pgproto3.BindComplete{}).Encode(nil)
	up, _ = (&pgproto3.CommandComplete{CommandTag: []byte("SELECT 1")}).Encode(up)
	up, _ = (&pgproto3.ReadyForQuery{TxStatus: 'I'}).Encode(up)
	c.pk.ubr = newIdleReader(bytes.NewReader(up))
	c.upstreamLoop(c.pk.ubr)

	want := map[string]string{} // n → the statement's text or parameters and rows
	k := 1
	var lastAnswers []byte
	for round := range 300 {
		var msgs, answers []byte
		for range round%4 + 1 {
			k++
			rows := strconv.Itoa(k)
			var tag string
			if k%2 == 0 {
				msgs, _ = (&pgproto3.Query{String: "SELECT " + rows}).Encode(msgs)
				tag = "SELECT " + rows
			} else {
				msgs, _ = (&pgproto3.Bind{PreparedStatement: "P", Parameters: [][]byte{[]byte(rows)}}).Encode(msgs)
				msgs, _ = (&pgproto3.Execute{}).Encode(msgs)
				msgs, _ = (&pgproto3.Sync{}).Encode(msgs)
				tag = "$1='" + rows + "'"
				answers, _ = (&pgproto3.BindComplete{}).Encode(answers)
			}
			want[strconv.Itoa(k)] = tag + " " + rows // n is k: the Parse is not numbered
			answers, _ = (&pgproto3.CommandComplete{CommandTag: []byte("SELECT " + rows)}).Encode(answers)
			answers, _ = (&pgproto3.ReadyForQuery{TxStatus: 'I'}).Encode(answers)
		}
		// This round's statements are queued while the last round's
		// answers are still to come: entries of both are live at once.
		c.br = newIdleReader(bytes.NewReader(msgs))
		if err := c.clientLoop(); err != nil {
			t.Fatal(err)
		}
		if lastAnswers != nil {
			c.pk.ubr = newIdleReader(bytes.NewReader(lastAnswers))
			c.upstreamLoop(c.pk.ubr)
		}
		lastAnswers = answers
	}
	c.pk.ubr = newIdleReader(bytes.NewReader(lastAnswers))
	c.upstreamLoop(c.pk.ubr)

	requests, results := map[string]string{}, map[string]string{}
	for _, call := range auth.Calls(gr.ID) {
		call = call.WithPairsInParams()
		n := call.Params["n"]
		switch call.Kind {
		case "request":
			what := call.Params["statement"]
			if p := call.Params["parameters"]; p != "" {
				what = p
			}
			if _, dup := requests[n]; dup {
				t.Errorf("two requests numbered %s", n)
			}
			requests[n] = what
		case "result":
			if _, dup := results[n]; dup {
				t.Errorf("two results numbered %s", n)
			}
			results[n] = fmt.Sprint(call.Rows)
		}
	}
	if len(want) != k-1 || len(requests) != k || len(results) != k {
		t.Fatalf("%d statements, %d requests and %d results recorded", k, len(requests), len(results))
	}
	for n, w := range want {
		if got := requests[n] + " " + results[n]; got != w {
			t.Errorf("statement %s recorded as %q, want %q", n, got, w)
		}
	}
}
