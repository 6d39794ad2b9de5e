package pggw

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
)

// A Parse after an error in its batch is skipped by the server, with
// everything else up to Sync (the gateway's own Close of the name too):
// the name keeps the statement it held. A later Bind of it runs what the
// server holds, which must be what is recorded, or nothing. The same for
// the unnamed statement, on a grant that can write (a DELETE held) and on
// one that can only read (a SELECT that makes a large object held, which
// the gateway would otherwise forward as a pure read before its record).
func TestSkippedParseRecordedAsRun(t *testing.T) {
	for _, tc := range []struct {
		name, scope, held string
	}{
		{"read-write", "pg:select,pg:delete %s.public.customers", "DELETE FROM customers WHERE id <= 2 RETURNING 1"},
		{"select-only", "pg:select %s.public.customers", "SELECT lo_from_bytea(0, 'x')::int"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, nil)
			g := e.grant(time.Hour, tc.scope)
			ctx := ctxT(t, 60*time.Second)
			admin := e.admin()
			harmless := func(t *testing.T, step string) {
				t.Helper()
				var del, lo int
				if err := admin.QueryRow(ctx, "select 50 - count(*) from customers").Scan(&del); err != nil {
					t.Fatal(err)
				}
				if err := admin.QueryRow(ctx, "select count(*) from pg_largeobject_metadata").Scan(&lo); err != nil {
					t.Fatal(err)
				}
				if del != 0 || lo != 0 {
					t.Fatalf("%s: %d customers deleted, %d large objects made: the held statement ran", step, del, lo)
				}
			}
			for _, name := range []string{"s1", ""} {
				t.Run(fmt.Sprintf("%q", name), func(t *testing.T) {
					pc := e.connect(g, "").PgConn()
					step := fmt.Sprintf("statement %q", name)
					// A named statement is checked on the server and refused
					// (it is not the one recorded); the unnamed one, which
					// code cannot replace, is given to the server again.
					want := "[row 1 complete SELECT 1 ready I]"
					if name != "" {
						want = "[error 26000 airlock: prepared statement \"s1\" is not the one last prepared through the protocol " +
							"(statements that may run code can replace it, and a Parse after an error of its batch does not run); it was not run: prepare it again ready I]"
					}
					checkBind := func(t *testing.T, step string, got []string) {
						t.Helper()
						if fmt.Sprint(got) != want {
							t.Fatalf("%s: %q, want %s", step, got, want)
						}
					}
					if got := rawBatch(t, pc, &pgproto3.Parse{Name: name, Query: tc.held}); fmt.Sprint(got) != "[ready I]" {
						t.Fatalf("%s: prepare: %q", step, got)
					}
					// The error first, then (skipped) a Close and a Parse of the name.
					got := rawBatch(t, pc,
						&pgproto3.Parse{Name: "e", Query: "SELECT 1/0"}, &pgproto3.Bind{PreparedStatement: "e"}, &pgproto3.Execute{},
						&pgproto3.Close{ObjectType: 'S', Name: name}, &pgproto3.Parse{Name: name, Query: "SELECT 1"})
					if len(got) != 2 || !strings.HasPrefix(got[0], "error 22012") {
						t.Fatalf("%s: the failing batch: %q", step, got)
					}
					got = rawBatch(t, pc, &pgproto3.Bind{PreparedStatement: name}, &pgproto3.Execute{})
					harmless(t, step)
					checkBind(t, step+": Bind after the skipped Parse", got)
					// Through a Flush: the Bind in the same batch as the
					// skipped Parse is skipped too; the one after Sync is not.
					if got := rawBatch(t, pc, &pgproto3.Close{ObjectType: 'S', Name: name}, &pgproto3.Parse{Name: name, Query: tc.held}); fmt.Sprint(got) != "[ready I]" {
						t.Fatalf("%s: prepare again: %q", step, got)
					}
					fe := pc.Frontend()
					fe.Send(&pgproto3.Bind{PreparedStatement: "e"})
					fe.Send(&pgproto3.Execute{})
					fe.Send(&pgproto3.Flush{})
					fe.Send(&pgproto3.Parse{Name: name, Query: "SELECT 1"})
					fe.Send(&pgproto3.Flush{})
					got = rawBatch(t, pc, &pgproto3.Bind{PreparedStatement: name}, &pgproto3.Execute{})
					if len(got) != 2 || !strings.HasPrefix(got[0], "error 22012") {
						t.Fatalf("%s: the failing pipeline: %q", step, got)
					}
					got = rawBatch(t, pc, &pgproto3.Bind{PreparedStatement: name}, &pgproto3.Execute{})
					harmless(t, step+" after Flush")
					checkBind(t, step+": Bind after the skipped Parse (Flush)", got)
				})
			}
			e.settle(g)
			results := map[string]string{}
			for _, call := range e.auth.Calls(g.ID) {
				if call.Kind == "result" {
					results[call.Params["n"]] = call.Status + "|" + call.Error
				}
			}
			for _, call := range e.requests(g) {
				if call.Params["protocol"] != "extended" {
					continue
				}
				res := results[call.Params["n"]]
				status, errText, _ := strings.Cut(res, "|")
				if errText == "" && !strings.HasPrefix(status, strings.ToUpper(strings.TrimPrefix(call.Action, "pg:"))) {
					t.Errorf("recorded %s %q, the server answered %q", call.Action, call.Params["statement"], res)
				}
			}
		})
	}
}

// PostgreSQL refuses to run a protocol-prepared statement whose result
// type changed since its Parse (0A000 "cached plan must not change result
// type"): a client decodes its rows with the description it got then.
// Statements that may run code do not take that check away.
func TestPreparedResultTypeChecked(t *testing.T) {
	e := newEnv(t, nil)
	ctx := ctxT(t, 30*time.Second)
	admin := e.admin()
	if _, err := admin.Exec(ctx, "CREATE TABLE tw (a int, b int); INSERT INTO tw VALUES (1, 2)"); err != nil {
		t.Fatal(err)
	}
	g := e.grant(time.Hour, "pg:select,pg:insert %s.public.tw")
	pc := e.connect(g, "").PgConn()
	if _, err := pc.Prepare(ctx, "w", "SELECT a, b FROM tw", nil); err != nil {
		t.Fatal(err)
	}
	if r := pc.ExecPrepared(ctx, "w", nil, nil, []int16{1}).Read(); r.Err != nil || len(r.Rows) != 1 {
		t.Fatalf("before: %v %q", r.Err, r.Rows)
	}
	// After a write (which may run code) the statement is checked, and runs.
	if _, err := pc.Exec(ctx, "INSERT INTO tw VALUES (2, 3)").ReadAll(); err != nil {
		t.Fatal(err)
	}
	if r := pc.ExecPrepared(ctx, "w", nil, nil, []int16{1}).Read(); r.Err != nil || len(r.Rows) != 2 {
		t.Fatalf("after a write: %v %q", r.Err, r.Rows)
	}
	if _, err := admin.Exec(ctx, "ALTER TABLE tw ALTER COLUMN b TYPE text USING 'abcd'; DELETE FROM tw WHERE a = 2"); err != nil {
		t.Fatal(err)
	}
	// Something that may run code (a write may fire a trigger).
	if _, err := pc.Exec(ctx, "INSERT INTO tw VALUES (3, 'x')").ReadAll(); err != nil {
		t.Fatal(err)
	}
	r := pc.ExecPrepared(ctx, "w", nil, nil, []int16{1}).Read()
	if pgCode(r.Err) != "0A000" {
		t.Fatalf("after the column's type changed: err %v, rows %q; want 0A000", r.Err, r.Rows)
	}
}

// A simple Query after extended-protocol messages without their Sync is
// refused: after an error the server would skip it without an answer.
func TestQueryInOpenSyncGroup(t *testing.T) {
	e := newEnv(t, nil)
	g := e.grant(time.Hour, "pg:select %s.public.customers")
	pc := e.connect(g, "").PgConn()
	fe := pc.Frontend()
	fe.Send(&pgproto3.Bind{PreparedStatement: "nosuch"})
	fe.Send(&pgproto3.Flush{})
	fe.Send(&pgproto3.Query{String: "SELECT 1"})
	if err := fe.Flush(); err != nil {
		t.Fatal(err)
	}
	var got []string
	for range 10 {
		m, err := fe.Receive()
		if err != nil {
			break
		}
		if er, ok := m.(*pgproto3.ErrorResponse); ok {
			got = append(got, er.Severity+" "+er.Code)
		}
	}
	if len(got) == 0 || got[len(got)-1] != "FATAL 08P01" {
		t.Fatalf("%q", got)
	}
}
