package sessions

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/gateway"
)

// BenchmarkRecorderStatement measures the recorder's per-call path for a
// PostgreSQL statement as pggw records one on a read-only session: its
// request queued (RequestAsync) and waited for until durable, then its
// result (Result), batched for the flusher, on a real journaled log and
// SQLite store (newEnv, as airlock serve runs them), one statement at a
// time; b.N statements. The log's own work (the event's encoding, the
// journal's write and flush, the copy into SQLite) is in the figure too:
// for the recorder's part, count instructions under callgrind and read
// the sessions package's functions apart from the log's
// (callgrind_annotate --inclusive=yes), at two -test.benchtime values.
func BenchmarkRecorderStatement(b *testing.B) {
	e := newEnv(b, Options{})
	e.rec.Run()
	g := grant("g_bench")
	g.TargetKind = "postgres"
	sess, err := e.rec.Start(e.ctx, g, "s_bench", "127.0.0.1:50000")
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		ns := strconv.Itoa(i + 1)
		req := gateway.Call{Kind: "request", Action: "pg:select", Resource: "pgbench", Allowed: true, OutcomeAtResult: true,
			Params: map[string]string{"statement": "SELECT abalance FROM pgbench_accounts WHERE aid = 81234;", "protocol": "simple", "n": ns}}
		var p gateway.Pending // pggw's is in its statement's queue entry
		if err := sess.RequestAsyncIn(ctx, req, &p).Wait(ctx); err != nil {
			b.Fatal(err)
		}
		res := gateway.Call{Kind: "result", Action: "pg:select", Resource: "pgbench", Allowed: true, Rows: 1, Duration: 150 * time.Microsecond,
			Params: map[string]string{"n": ns}}
		if err := sess.Result(ctx, res); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	if err := e.rec.Flush(ctx); err != nil {
		b.Fatal(err)
	}
	// Every statement counted in the session's row, from its logged
	// request and result.
	row, err := e.st.Session(ctx, "s_bench")
	if err != nil {
		b.Fatal(err)
	}
	if row.Calls != int64(b.N) {
		b.Fatalf("the session's row counts %d calls, want %d", row.Calls, b.N)
	}
}
