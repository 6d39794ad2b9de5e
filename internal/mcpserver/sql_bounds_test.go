package mcpserver

import (
	"context"
	"encoding/json"
	"runtime"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/airlock-dev/airlock/internal/testenv"
)

// TestRunQueryBounds checks that sql_query's result bounds hold for rows
// that JSON cannot carry as decoded (NaN, infinities) and for one row far
// larger than the whole result may be.
func TestRunQueryBounds(t *testing.T) {
	dsn := testenv.PostgresDSN(t)
	ctx := context.Background()
	connect := func() *pgx.Conn {
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close(context.Background()) })
		return conn
	}

	// A NaN in each row used to make the row count as 0 bytes, so 5 MiB
	// of rows were kept (and the tool then failed to encode them).
	out, err := runQuery(ctx, connect(), "select 'NaN'::float8 n, '-Infinity'::float4 i, array['Infinity'::float8, 1] a, repeat('x', 100000) s from generate_series(1, 50)")
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(out)
	if err != nil {
		t.Fatalf("the result does not encode: %v", err)
	}
	if !out.Truncated || len(b) > MaxResultBytes+4096 {
		t.Fatalf("result of %d bytes, %d rows, truncated %v; want at most about %d bytes", len(b), out.RowCount, out.Truncated, MaxResultBytes)
	}
	if out.RowCount == 0 || out.Rows[0][0] != "NaN" || out.Rows[0][1] != "-Infinity" {
		t.Fatalf("first row: %v", out.Rows)
	}

	// One row of 32 MiB is refused before it is read, not read and then
	// dropped.
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	out, err = runQuery(ctx, connect(), "select repeat('x', 32 << 20) s")
	runtime.ReadMemStats(&after)
	if err != nil {
		t.Fatal(err)
	}
	if !out.Truncated || out.RowCount != 0 || !strings.Contains(out.Note, "limit of one row") {
		t.Fatalf("huge row: %+v", out)
	}
	if got := after.TotalAlloc - before.TotalAlloc; got > 16<<20 {
		t.Fatalf("a refused row still allocated %d MiB", got>>20)
	}
}
