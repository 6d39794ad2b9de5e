package pggw

import (
	"bytes"
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
