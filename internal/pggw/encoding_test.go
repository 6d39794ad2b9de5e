package pggw

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/gateway"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
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

// hijacked is a raw connection of g's through the gateway.
func (e *env) hijacked(g *gateway.Grant) *pgconn.HijackedConn {
	e.t.Helper()
	pc, err := pgconn.Connect(ctxT(e.t, 15*time.Second), e.url(g, ""))
	if err != nil {
		e.t.Fatal(err)
	}
	hc, err := pc.Hijack()
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { hc.Conn.Close() })
	return hc
}

// pipeline sends the simple Queries in one write and reads until each has
// its ReadyForQuery or the session ends; it returns the errors the client
// got.
func pipeline(hc *pgconn.HijackedConn, queries ...string) []pgproto3.ErrorResponse {
	for _, q := range queries {
		hc.Frontend.Send(&pgproto3.Query{String: q})
	}
	if err := hc.Frontend.Flush(); err != nil {
		return nil
	}
	_ = hc.Conn.SetDeadline(time.Now().Add(20 * time.Second))
	var errs []pgproto3.ErrorResponse
	for ready := 0; ready < len(queries); {
		m, err := hc.Frontend.Receive()
		if err != nil {
			break // the session ended
		}
		switch m := m.(type) {
		case *pgproto3.ReadyForQuery:
			ready++
		case *pgproto3.ErrorResponse:
			errs = append(errs, *m)
		}
	}
	return errs
}

// sjisHidden are texts that end, for a UTF8 reading, in a literal or
// comment that SJIS ends earlier, each followed by what it hides: 0x83
// 0x5C is one SJIS character ("ソ"), so the server's literal ends at the
// quote after it while the gateway reads an escaped quote and a literal
// that runs on to the last quote; 0x83 0x40 is one too, so the server
// reads a dollar quote $ソ$ … $ソ$ where the gateway reads "$", a name,
// "@", "$" and then a comment.
var sjisHidden = []struct{ name, before, after string }{
	{"escaped quote", "select E'\x83\\'; ", " --'"},
	{"dollar quote", "select $\x83@$ -- $\x83@$; ", ""},
}

// TestEncodingSetPipelinedCannotHideAuthChange: a Query pipelined behind
// "SET client_encoding TO 'SJIS'" reaches the server in SJIS before the
// upstream reports the new encoding (at ReadyForQuery). An ALTER ROLE …
// PASSWORD hidden, for a UTF8 reading, in a literal or comment of a
// SELECT before it was forwarded and run: the grant's role got a password
// the agent chose. Such a text is now refused as a change of
// authentication.
func TestEncodingSetPipelinedCannotHideAuthChange(t *testing.T) {
	e := newEnv(t, nil)
	ctx := ctxT(t, 30*time.Second)
	admin := e.admin()
	for _, h := range sjisHidden {
		t.Run(h.name, func(t *testing.T) {
			g := e.grant(time.Hour, "pg:select %s.public.*")
			password := func() string {
				var pw string
				if err := admin.QueryRow(ctx, "select coalesce(rolpassword, '') from pg_authid where rolname = $1", "airlock_"+g.ID).Scan(&pw); err != nil {
					t.Fatal(err)
				}
				return pw
			}
			hc := e.hijacked(g) // the role exists from here on
			before := password()
			errs := pipeline(hc, "SET client_encoding TO 'SJIS'",
				h.before+"alter role current_user password 'chosen-by-the-agent'"+h.after)
			if after := password(); after != before {
				t.Fatal("a pipelined query in SJIS changed the grant role's password through the gateway")
			}
			refused := false
			for _, m := range errs {
				refused = refused || m.Code == codeInsufficientPrivilege
			}
			if !refused {
				t.Errorf("errors %v, want %s for the hidden ALTER ROLE", errs, codeInsufficientPrivilege)
			}
		})
	}
}

// TestEncodingSetPipelinedReadWaits: on a read-only session, a SELECT
// pipelined behind "SET client_encoding TO 'SJIS'" that hides, for a UTF8
// reading, a call of pg_advisory_lock was forwarded while its record was
// written: the lock was taken before the record was durable. A text that
// such an encoding may read otherwise now waits for its record.
func TestEncodingSetPipelinedReadWaits(t *testing.T) {
	e, sa := newStallEnv(t)
	admin := e.admin()
	ctx := ctxT(t, 30*time.Second)
	for i, h := range sjisHidden {
		t.Run(h.name, func(t *testing.T) {
			key := 6260 + i
			g := e.grant(time.Hour, "pg:select %s.public.customers")
			hc := e.hijacked(g)
			for len(sa.entered) > 0 {
				<-sa.entered // an earlier case's
			}
			sa.stall()
			done := make(chan struct{})
			go func() {
				defer close(done)
				pipeline(hc, "SET client_encoding TO 'SJIS'", fmt.Sprintf(h.before+"select pg_advisory_lock(%d)"+h.after, key))
			}()
			<-sa.entered // the SET's record
			// The SET goes on; the SELECT's record stalls.
			sa.mu.Lock()
			first := sa.g
			sa.g = &stallGate{ch: make(chan struct{})}
			sa.mu.Unlock()
			close(first.ch)
			<-sa.entered // the SELECT's record
			for end := time.Now().Add(500 * time.Millisecond); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
				var n int
				if err := admin.QueryRow(ctx, "select count(*) from pg_locks where locktype = 'advisory' and objid = $1", key).Scan(&n); err != nil {
					t.Fatal(err)
				}
				if n != 0 {
					sa.release(false)
					<-done
					t.Fatal("a SELECT read in SJIS took an advisory lock before its record was durable")
				}
			}
			sa.release(false)
			<-done
		})
	}
}

// TestEncodingAmbiguous: the texts that an encoding with ASCII second
// bytes may read otherwise are those with a name ending in a byte >= 0x80
// right before punctuation, or a backslash right after such a byte in a
// quoted literal, under either reading of backslashes.
func TestEncodingAmbiguous(t *testing.T) {
	for _, tc := range []struct {
		sql  string
		want bool
	}{
		{"select 1", false},
		{`select E'\n', 'a\b'`, false},
		{"select E'caf\xc3\xa9'", false},
		{"select caf\xc3\xa9 from t where caf\xc3\xa9 = 1", false}, // a name, then white space
		{"select 'caf\xc3\xa9?', 'na\xc3\xafve@x'", false},         // punctuation in a literal is text
		{"select $a\x83b$ x $a\x83b$", false},                      // a dollar quote either way
		{"select E'\x83\\'", true},
		{"select '\x83\\'", true},  // a plain literal, with standard_conforming_strings off
		{"select N'\x83\\'", true}, // N'…' reads as a plain literal
		{"select E'\\\x83\\'", true},
		{"select $\x83@$ -- $\x83@$", true}, // a dollar quote to SJIS only
		{"select caf\xc3\xa9[1] from t", true},
		{"select x\x83; select 1", true}, // JOHAB reads ";" as a second byte
		{"select \"\x83\\\"", false},     // a quoted name takes no escapes
		{"select $$\x83\\$$", false},     // nor a dollar quote
		{"select 1 -- \x83\\", false},
		{"select /* \x83\\ */ 1", false},
	} {
		if got := encodingAmbiguous(tc.sql); got != tc.want {
			t.Errorf("encodingAmbiguous(%q) = %v, want %v", tc.sql, got, tc.want)
		}
	}
	// What it changes: no early read, and ALTER ROLE words anywhere in
	// such a text are taken for a change of authentication.
	for _, h := range sjisHidden {
		if hidden := h.before + "select pg_advisory_lock(1)" + h.after; readQuery(hidden) {
			t.Errorf("readQuery(%q) = true", hidden)
		}
		if hidden := h.before + "ALTER USER current_user PASSWORD 'x'" + h.after; !changesAuth(hidden) {
			t.Errorf("changesAuth(%q) = false", hidden)
		}
	}
	if utf8 := "select E'caf\xc3\xa9 \\n'"; !readQuery(utf8) {
		t.Errorf("readQuery(%q) = false: a backslash after an ASCII byte is no longer read as before", utf8)
	}
	if ambiguous := sjisHidden[0].before + "select 'alter' --'"; changesAuth(ambiguous) {
		t.Errorf("changesAuth(%q) = true without the words of an authentication change", ambiguous)
	}
}
