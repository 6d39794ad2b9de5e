package pggw

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/gateway"
	"github.com/airlock-dev/airlock/internal/gateway/gatewaytest"
	"github.com/jackc/pgx/v5/pgconn"
)

// backendsOf counts the upstream backends of a grant's role.
func (e *env) backendsOf(grantID string) int {
	e.t.Helper()
	var n int
	if err := e.admin().QueryRow(ctxT(e.t, 10*time.Second), "select count(*) from pg_stat_activity where usename = $1", "airlock_"+grantID).Scan(&n); err != nil {
		e.t.Fatal(err)
	}
	return n
}

func TestSessionCutWhenGrantEnds(t *testing.T) {
	for _, reason := range []string{"expired", "revoked"} {
		t.Run(reason, func(t *testing.T) {
			e := newEnv(t, nil)
			g := e.grant(time.Hour, "pg:select %s.public.customers")
			c := e.connect(g, "")
			ctx := ctxT(t, 20*time.Second)
			if _, err := c.Exec(ctx, "select 1"); err != nil {
				t.Fatal(err)
			}
			if n := e.backendsOf(g.ID); n != 1 {
				t.Fatalf("%d backends of the role, want 1", n)
			}
			// A long statement in flight when the grant ends.
			errc := make(chan error, 1)
			go func() {
				_, err := c.Exec(ctx, "select pg_sleep(30)")
				errc <- err
			}()
			time.Sleep(200 * time.Millisecond)
			e.auth.End(g, reason)
			var err error
			select {
			case err = <-errc:
				// Before pg_sleep(30) could finish on its own: it was cut.
			case <-time.After(20 * time.Second):
				t.Fatal("the client was not cut off")
			}
			var pe *pgconn.PgError
			// In words: "has expired", "has been revoked" (it read "has
			// revoked").
			want := "airlock: grant " + g.ID + " has expired; this session is closed"
			if reason == "revoked" {
				want = "airlock: grant " + g.ID + " has been revoked; this session is closed"
			}
			if !errors.As(err, &pe) || pe.Severity != "FATAL" || pe.Code != "57P01" || pe.Message != want {
				t.Fatalf("err = %#v, want FATAL 57P01 %q", err, want)
			}
			// The backend is gone and the role dropped, soon.
			deadline := time.Now().Add(5 * time.Second)
			for e.backendsOf(g.ID) != 0 || !e.roles.dropped(g.ID) {
				if time.Now().After(deadline) {
					t.Fatalf("backend still there (%d) or role not dropped (%v)", e.backendsOf(g.ID), e.roles.dropped(g.ID))
				}
				time.Sleep(50 * time.Millisecond)
			}
			var roles int
			_ = e.admin().QueryRow(ctx, "select count(*) from pg_roles where rolname = $1", "airlock_"+g.ID).Scan(&roles)
			if roles != 0 {
				t.Fatal("the role survived the grant")
			}
			// The session's recording was closed.
			ss := e.auth.Sessions()
			deadline = time.Now().Add(5 * time.Second)
			for !ss[0].Ended() {
				if time.Now().After(deadline) {
					t.Fatal("session not ended")
				}
				time.Sleep(20 * time.Millisecond)
			}
			// The statement cut off has a result saying so, and why: the
			// grant's end, not a connection that merely closed.
			var sleepResult bool
			cut := "airlock: cut off: grant " + g.ID + " has expired before the statement completed"
			if reason == "revoked" {
				cut = "airlock: cut off: grant " + g.ID + " has been revoked before the statement completed"
			}
			for _, call := range e.auth.Calls(g.ID) {
				if call.Kind == "result" && call.Action == "pg:select" && call.Error == cut {
					sleepResult = true
				}
			}
			if !sleepResult {
				t.Errorf("no result %q recorded for the interrupted statement: %+v", cut, e.auth.Calls(g.ID))
			}
		})
	}
}

// A statement that cannot be recorded inside a transaction block ends the
// session, so that the transaction is rolled back upstream: with an error
// alone, a COMMIT would commit what ran before the refusal.
func TestRecordFailureInTransactionRollsBack(t *testing.T) {
	e := newEnv(t, nil)
	g := e.grant(time.Hour, "pg:insert,pg:select %s.public.side_effects")
	ctx := ctxT(t, 20*time.Second)
	for _, mode := range []string{"simple", "extended"} {
		c := e.connect(g, "")
		if _, err := c.Exec(ctx, "begin"); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Exec(ctx, "insert into side_effects (note) values ('before "+mode+"')"); err != nil {
			t.Fatal(err)
		}
		e.auth.FailRecords(true)
		var err error
		if mode == "simple" {
			_, err = c.Exec(ctx, "insert into side_effects (note) values ('refused')")
		} else {
			_, err = c.Exec(ctx, "insert into side_effects (note) values ($1)", "refused")
		}
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Severity != "FATAL" || pe.Code != "58000" || !strings.Contains(pe.Message, "rolled back") {
			t.Fatalf("%s: err = %v, want FATAL 58000 ... rolled back", mode, err)
		}
		e.auth.FailRecords(false)
		if _, err := c.Exec(ctx, "commit"); err == nil {
			t.Fatalf("%s: COMMIT succeeded on the closed session", mode)
		}
	}
	var n int
	if err := e.admin().QueryRow(ctx, "select count(*) from side_effects").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Fatalf("%d rows committed from transactions whose statement was refused", n)
	}
}

// TestRecordRefusedForEndedGrantEndsSession: among replicas, the control
// plane refuses a record of a grant another replica has ended
// (gateway.ErrNoGrant) before this gateway hears of the end. The statement
// was refused as if the store had failed ("could not record the
// statement", 58000, which a client may retry), for writes and for reads
// whose answer was held; the session now ends as at any grant's end
// (FATAL 57P01, "grant … has ended"), and nothing runs.
func TestRecordRefusedForEndedGrantEndsSession(t *testing.T) {
	e := newEnv(t, nil)
	ctx := ctxT(t, 20*time.Second)
	for _, tc := range []struct{ name, scope, sql string }{
		{"write", "pg:insert,pg:select %s.public.side_effects", "insert into side_effects (note) values ('refused')"},
		{"read held", "pg:select %s.public.customers", "select count(*) from customers"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := e.grant(time.Hour, tc.scope)
			c := e.connect(g, "")
			e.auth.FailRecordsWith(gateway.ErrNoGrant)
			defer e.auth.FailRecordsWith(nil)
			_, err := c.Exec(ctx, tc.sql)
			var pe *pgconn.PgError
			if !errors.As(err, &pe) || pe.Severity != "FATAL" || pe.Code != codeAdminShutdown || !strings.Contains(pe.Message, "grant "+g.ID+" has") {
				t.Fatalf("err = %v, want FATAL %s naming the grant's end", err, codeAdminShutdown)
			}
		})
	}
	var n int
	if err := e.admin().QueryRow(ctx, "select count(*) from side_effects").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Fatalf("%d rows inserted while the grant's records were refused", n)
	}
}

// A statement that cannot be recorded is refused, nothing runs, and the
// session goes on once the log works again.
func TestRecordFailureRefusesStatement(t *testing.T) {
	e := newEnv(t, nil)
	g := e.grant(time.Hour, "pg:insert,pg:select %s.public.side_effects")
	c := e.connect(g, "")
	ctx := ctxT(t, 20*time.Second)
	e.auth.FailRecords(true)
	for _, mode := range []string{"simple", "extended"} {
		var err error
		if mode == "simple" {
			_, err = c.Exec(ctx, "insert into side_effects (note) values ('simple')")
		} else {
			_, err = c.Exec(ctx, "insert into side_effects (note) values ($1)", "extended")
		}
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != "58000" || !strings.Contains(pe.Message, "not run") {
			t.Fatalf("%s: err = %v, want 58000 ... not run", mode, err)
		}
	}
	e.auth.FailRecords(false)
	var n int
	if err := e.admin().QueryRow(ctx, "select count(*) from side_effects").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Fatalf("%d rows inserted while recording failed", n)
	}
	// The same connection works again, in both protocols.
	if _, err := c.Exec(ctx, "insert into side_effects (note) values ('after')"); err != nil {
		t.Fatalf("after recovery: %v", err)
	}
	if _, err := c.Exec(ctx, "insert into side_effects (note) values ($1)", "after2"); err != nil {
		t.Fatalf("after recovery (extended): %v", err)
	}
	_ = e.admin().QueryRow(ctx, "select count(*) from side_effects").Scan(&n)
	if n != 2 {
		t.Fatalf("%d rows, want 2", n)
	}
}

func TestCancelRequest(t *testing.T) {
	e := newEnv(t, nil)
	g := e.grant(time.Hour, "pg:select %s.public.customers")
	ctx := ctxT(t, 20*time.Second)
	pc, err := pgconn.Connect(ctx, e.url(g, ""))
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close(context.Background())
	if pc.PID() == 0 {
		t.Fatal("no backend key")
	}
	var upstreamPID int
	if err := e.admin().QueryRow(ctx, "select pid from pg_stat_activity where usename = $1", "airlock_"+g.ID).Scan(&upstreamPID); err != nil {
		t.Fatal(err)
	}
	if uint32(upstreamPID) == pc.PID() {
		t.Fatal("the client sees the upstream's pid")
	}
	errc := make(chan error, 1)
	go func() {
		_, err := pc.Exec(ctx, "select pg_sleep(20)").ReadAll()
		errc <- err
	}()
	time.Sleep(300 * time.Millisecond)
	if err := pc.CancelRequest(ctx); err != nil {
		t.Fatalf("CancelRequest: %v", err)
	}
	select {
	case err := <-errc:
		if pgCode(err) != "57014" {
			t.Fatalf("err = %v, want 57014 query_canceled", err)
		}
	case <-time.After(15 * time.Second): // pg_sleep(20) would still be running
		t.Fatal("not cancelled")
	}
	e.settle(g)
	var recorded bool
	for _, call := range e.auth.Calls(g.ID) {
		recorded = recorded || call.Action == "pg:cancel"
	}
	if !recorded {
		t.Fatal("the cancel was not recorded")
	}
	// The connection is still usable.
	if _, err := pc.Exec(ctx, "select 1").ReadAll(); err != nil {
		t.Fatalf("after cancel: %v", err)
	}
}

func TestCopyBothWays(t *testing.T) {
	e := newEnv(t, nil)
	g := e.grant(time.Hour, "pg:insert,pg:select %s.public.events")
	ctx := ctxT(t, 20*time.Second)
	pc, err := pgconn.Connect(ctx, e.url(g, ""))
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close(context.Background())
	var in bytes.Buffer
	for i := 0; i < 1000; i++ {
		in.WriteString("note number ")
		in.WriteString(strings.Repeat("x", i%50))
		in.WriteString("\n")
	}
	inLen := int64(in.Len())
	tag, err := pc.CopyFrom(ctx, &in, "copy events (note) from stdin")
	if err != nil {
		t.Fatalf("copy in: %v", err)
	}
	if tag.RowsAffected() != 1000 {
		t.Fatalf("copied %d rows", tag.RowsAffected())
	}
	var out bytes.Buffer
	tag, err = pc.CopyTo(ctx, &out, "copy (select note from events order by id) to stdout")
	if err != nil {
		t.Fatalf("copy out: %v", err)
	}
	if tag.RowsAffected() != 1000 || int64(out.Len()) != inLen {
		t.Fatalf("copied out %d rows, %d bytes; want 1000, %d", tag.RowsAffected(), out.Len(), inLen)
	}
	pc.Close(ctx)
	e.settle(g)
	var sawIn, sawOut bool
	for _, call := range e.auth.Calls(g.ID) {
		if call.Kind == "result" && call.Action == "pg:copy" && call.Rows == 1000 {
			if call.BytesIn == inLen {
				sawIn = true
			}
			if call.BytesOut == inLen {
				sawOut = true
			}
		}
	}
	if !sawIn || !sawOut {
		t.Fatalf("copy results not recorded with rows and bytes (in %v, out %v): %+v", sawIn, sawOut, e.auth.Calls(g.ID))
	}
}

var _ = gatewaytest.ErrRecordFailed
