package pggw

import (
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// A client encoding whose characters can hold a 0x5C byte (a backslash to
// the gateway's scanner, part of a character to the server) is refused: at
// startup, and, when set later, at the client's next message, which ends
// the session. Encodings without such bytes work.
func TestUnsafeClientEncodingRefused(t *testing.T) {
	e := newEnv(t, nil)
	g := e.grant(time.Hour, "pg:select %s.public.*")
	ctx := ctxT(t, 30*time.Second)
	var pe *pgconn.PgError

	_, err := pgconn.Connect(ctx, e.url(g, "&client_encoding=SJIS"))
	if !errors.As(err, &pe) || pe.Code != codeFeatureNotSupp {
		t.Fatalf("startup with client_encoding SJIS: %v, want FATAL %s", err, codeFeatureNotSupp)
	}

	pc, err := pgconn.Connect(ctx, e.url(g, ""))
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close(ctx)
	if _, err := pc.Exec(ctx, "SET client_encoding TO 'BIG5'").ReadAll(); err != nil {
		t.Fatal(err)
	}
	_, err = pc.Exec(ctx, `SELECT E'\x95\\'' AS x`).ReadAll()
	if !errors.As(err, &pe) || pe.Code != codeFeatureNotSupp {
		t.Fatalf("a statement after SET client_encoding BIG5: %v, want FATAL %s", err, codeFeatureNotSupp)
	}

	ok, err := pgconn.Connect(ctx, e.url(g, "&client_encoding=LATIN1"))
	if err != nil {
		t.Fatalf("client_encoding LATIN1: %v", err)
	}
	defer ok.Close(ctx)
	if _, err := ok.Exec(ctx, "SELECT 1").ReadAll(); err != nil {
		t.Fatalf("SELECT under LATIN1: %v", err)
	}
}
