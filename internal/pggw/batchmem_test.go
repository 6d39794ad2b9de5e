package pggw

import (
	"bytes"
	"context"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// executes is n minimal Execute messages (the unnamed portal, no row
// limit): 10 bytes each on the wire.
func executes(n int) []byte {
	one := []byte{'E', 0, 0, 0, 9, 0, 0, 0, 0, 0}
	return bytes.Repeat(one, n)
}

// A batch's bound (twice MaxMessageBytes) covers what the gateway keeps
// for each of its messages, not only their bytes: Executes of 10 bytes
// each cost the gateway several times that until the batch's Sync (their
// pending records, then their queue entries), so a batch of them that
// fits the byte count would hold many times the bound.
func TestBatchOfTinyMessagesBounded(t *testing.T) {
	const max = 64 << 10
	e := newEnv(t, func(o *Options) { o.MaxMessageBytes = max })
	g := e.grant(time.Hour, "pg:select %s.public.customers")
	ctx := ctxT(t, 10*time.Second)
	pc, err := pgconn.Connect(ctx, e.url(g, ""))
	if err != nil {
		t.Fatal(err)
	}
	hc, err := pc.Hijack()
	if err != nil {
		t.Fatal(err)
	}
	defer hc.Conn.Close()
	// 60 KB on the wire, under the 128 KiB the bytes alone may take.
	msgs := executes(6000)
	go func() { _, _ = hc.Conn.Write(append(msgs, 'S', 0, 0, 0, 4)) }()
	errs := readErrors(t, hc.Conn, 5*time.Second)
	if len(errs) != 1 || errs[0].Code != codeProgramLimit || errs[0].Severity != "FATAL" {
		t.Fatalf("errors = %+v, want one FATAL %s", errs, codeProgramLimit)
	}
}

// A Query of many tiny statements ("a;a;…", one every two bytes) is
// recorded without the gateway holding a slice of all of them, which
// took eight times the message's size (and more while it grew), every
// time the text was split.
func TestQueryOfTinyStatementsBounded(t *testing.T) {
	e := newEnv(t, nil)
	g := e.grant(time.Hour, "pg:select %s.public.customers")
	// A guard against a hang, not a speed bound: in a CI run under -race
	// beside other packages' tests (load 17) the query took over 30 s.
	ctx := ctxT(t, 3*time.Minute)
	pc, err := pgconn.Connect(ctx, e.url(g, ""))
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close(context.Background())
	size := uint64(8 << 20)
	if raceOn {
		size = 2 << 20 // the same bound, a quarter of the race detector's work
	}
	sql := strings.Repeat("a;", int(size/2))
	var m0, m1 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m0)
	_, err = pc.Exec(ctx, sql).ReadAll()
	runtime.ReadMemStats(&m1)
	if pgCode(err) != "42601" { // syntax error at the first "a"
		t.Fatalf("err = %v, want a syntax error", err)
	}
	n := m1.TotalAlloc - m0.TotalAlloc
	t.Logf("a %d MiB query allocated %d MiB", size>>20, n>>20)
	if n > 8*size {
		t.Errorf("a %d MiB query allocated %d MiB, want at most %d", size>>20, n>>20, 8*size>>20)
	}
	if calls := e.requests(g); len(calls) != maxRecordedStatements {
		t.Errorf("%d requests recorded, want %d", len(calls), maxRecordedStatements)
	}
}
