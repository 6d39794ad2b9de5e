package pggw

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/gateway"
	"github.com/jackc/pgx/v5/pgconn"
)

// An Execute of a named statement is recorded with the statement the
// server runs. PostgreSQL keeps an existing statement when a Parse reuses
// its name (42P05), a refused batch is never forwarded, and SQL PREPARE or
// DEALLOCATE change names behind the protocol's back; none of these may
// make the gateway record one statement while another one runs.
func TestNamedStatementRecordedAsRun(t *testing.T) {
	e := newEnv(t, nil)
	g := e.grant(time.Hour, "pg:select,pg:delete %s.public.customers")
	c := e.connect(g, "")
	ctx := ctxT(t, 30*time.Second)
	pc := c.PgConn()
	lastExec := func() (gateway.Call, gateway.Call) {
		e.settle(g)
		var req, res gateway.Call
		for _, call := range e.auth.Calls(g.ID) {
			if call.Params["protocol"] == "extended" && call.Kind == "request" {
				req = call
			}
			if call.Kind == "result" && call.Params["n"] == req.Params["n"] {
				res = call
			}
		}
		return req, res
	}
	// refusedLast: the last Execute did not run, and its result says so.
	refusedLast := func(step string) {
		t.Helper()
		_, res := lastExec()
		if res.Status != "" || !strings.Contains(res.Error, "26000 airlock: prepared statement") {
			t.Fatalf("%s: result recorded %q %q, want the gateway's refusal", step, res.Status, res.Error)
		}
	}
	check := func(step string) {
		t.Helper()
		req, res := lastExec()
		verb := strings.Fields(res.Status)
		if len(verb) == 0 {
			t.Fatalf("%s: no result for %v", step, req.Params)
		}
		ran := "pg:" + strings.ToLower(verb[0])
		if req.Action != ran {
			t.Fatalf("%s: recorded %s %q, but the server ran %s", step, req.Action, req.Params["statement"], res.Status)
		}
	}

	// A Parse reusing a name.
	if _, err := pc.Prepare(ctx, "s", "DELETE FROM customers WHERE id <= 2", nil); err != nil {
		t.Fatal(err)
	}
	_, _ = pc.Prepare(ctx, "s", "SELECT 1", nil)
	if err := pc.ExecPrepared(ctx, "s", nil, nil, nil).Read().Err; err != nil {
		t.Fatal(err)
	}
	check("re-Parse")

	// A batch refused by the gateway (an auth change in it) is not
	// forwarded: its Parse of a name does not replace the name.
	if _, err := pc.Prepare(ctx, "t", "DELETE FROM customers WHERE id <= 4", nil); err != nil {
		t.Fatal(err)
	}
	pl := pc.StartPipeline(ctx)
	pl.SendPrepare("t", "SELECT 1", nil)
	pl.SendPrepare("", "ALTER ROLE CURRENT_USER PASSWORD 'x'", nil)
	if err := pl.Sync(); err != nil {
		t.Fatal(err)
	}
	for {
		res, err := pl.GetResults()
		if _, ok := res.(*pgconn.PipelineSync); ok || (res == nil && err == nil) {
			break
		}
	}
	if err := pl.Close(); err != nil {
		t.Logf("pipeline close: %v", err)
	}
	if err := pc.ExecPrepared(ctx, "t", nil, nil, nil).Read().Err; err != nil {
		t.Fatal(err)
	}
	check("refused batch")

	// SQL DEALLOCATE and PREPARE of a name the protocol prepared.
	if _, err := pc.Prepare(ctx, "u", "SELECT 2", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := pc.Exec(ctx, "DEALLOCATE u; PREPARE u AS DELETE FROM customers WHERE id <= 6").ReadAll(); err != nil {
		t.Fatal(err)
	}
	// The name now holds a statement SQL made, which the gateway cannot
	// record: the Bind is refused (26000) and nothing runs.
	if r := pc.ExecPrepared(ctx, "u", nil, nil, nil).Read(); pgCode(r.Err) != "26000" {
		t.Fatalf("SQL PREPARE: u ran %s, rows %q, err %v; want the gateway's 26000", r.CommandTag, r.Rows, r.Err)
	}
	refusedLast("SQL PREPARE")

	// Dynamic SQL that does not spell DEALLOCATE or PREPARE out, in a DO
	// block and in a function of the session's own: the gateway checks on
	// the server before the next Bind that the name still holds the
	// statement a protocol Parse gave it, and refuses the Bind (26000)
	// when it does not, so the swapped-in statement does not run.
	for i, swap := range []string{
		`DO $$ BEGIN EXECUTE 'deal' || 'locate w'; EXECUTE 'pre' || 'pare w as delete from customers where id <= 8'; END $$`,
		`CREATE FUNCTION pg_temp.swap() RETURNS int LANGUAGE plpgsql AS $$ BEGIN EXECUTE 'deal' || 'locate w'; ` +
			`EXECUTE 'pre' || 'pare w as delete from customers where id <= 8'; RETURN 1; END $$; SELECT pg_temp.swap()`,
	} {
		if _, err := pc.Prepare(ctx, "w", "SELECT 5", nil); err != nil {
			t.Fatal(err)
		}
		if _, err := pc.Exec(ctx, swap).ReadAll(); err != nil {
			t.Fatal(err)
		}
		r := pc.ExecPrepared(ctx, "w", nil, nil, nil).Read()
		if pgCode(r.Err) != "26000" || !strings.Contains(r.Err.Error(), "airlock: prepared statement \"w\" is not the one") {
			t.Fatalf("dynamic SQL %d: w ran %s, rows %q, err %v; want the gateway's 26000", i, r.CommandTag, r.Rows, r.Err)
		}
		refusedLast(fmt.Sprintf("dynamic SQL %d", i))
		if err := pc.Deallocate(ctx, "w"); err != nil {
			t.Fatal(err)
		}
	}
	// The same through the extended protocol, the swap and the Execute in
	// one batch.
	if _, err := pc.Prepare(ctx, "x", "SELECT 6", nil); err != nil {
		t.Fatal(err)
	}
	pl = pc.StartPipeline(ctx)
	pl.SendQueryParams(`DO $$ BEGIN EXECUTE 'deal' || 'locate x'; EXECUTE 'pre' || 'pare x as delete from customers where id <= 9'; END $$`, nil, nil, nil, nil)
	pl.SendQueryPrepared("x", nil, nil, nil)
	if err := pl.Sync(); err != nil {
		t.Fatal(err)
	}
	var got []string
	for range 10 {
		res, err := pl.GetResults()
		if err != nil {
			got = append(got, pgCode(err))
			continue
		}
		if _, ok := res.(*pgconn.PipelineSync); ok || res == nil {
			break
		}
		if rr, ok := res.(*pgconn.ResultReader); ok {
			r := rr.Read()
			if r.Err != nil {
				got = append(got, pgCode(r.Err))
			}
			for _, row := range r.Rows {
				got = append(got, string(row[0]))
			}
		}
	}
	_ = pl.Close()
	if fmt.Sprint(got) != "[26000]" {
		t.Fatalf("x in one batch with the swap: %q, want the gateway's 26000", got)
	}
	refusedLast("dynamic SQL in one batch")
	var n int
	if err := e.admin().QueryRow(ctx, "select count(*) from customers where id <= 9 and id > 6").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 3 {
		t.Fatalf("customers 7-9: %d left; the swapped-in DELETEs ran", n)
	}

	// The session still works as a client expects.
	if _, err := pc.Prepare(ctx, "v", "SELECT 3", nil); err != nil {
		t.Fatal(err)
	}
	if err := pc.Deallocate(ctx, "v"); err != nil {
		t.Fatal(err)
	}
	if _, err := pc.Prepare(ctx, "v", "SELECT 4", nil); err != nil {
		t.Fatal(err)
	}
	r := pc.ExecPrepared(ctx, "v", nil, nil, nil).Read()
	if r.Err != nil || len(r.Rows) != 1 || string(r.Rows[0][0]) != "4" {
		t.Fatalf("v: %v %v", r.Rows, r.Err)
	}
}

// What counts as changing prepared names behind the protocol's back, and
// what does not: a column or literal that merely holds one of the words
// must not make every named statement of the session unknown.
func TestMayChangePrepared(t *testing.T) {
	for _, tc := range []struct {
		sql  string
		want bool
	}{
		{"PREPARE s AS DELETE FROM t", true},
		{"prepare \"S\"(int) as select $1", true},
		{"DEALLOCATE s", true},
		{"deallocate all", true},
		{"DISCARD ALL", true},
		{"DECLARE c CURSOR WITH HOLD FOR SELECT 1", true},
		{"declare c no scroll cursor for select 1", true},
		{"CLOSE c", true},
		{"close all;", true},
		{"DO $$ BEGIN EXECUTE 'PREPARE s AS DELETE FROM t'; END $$", true},
		{"DO $$ BEGIN EXECUTE 'CLOSE c'; END $$", true},
		{"SELECT open, high, low, close FROM prices WHERE day = $1", false},
		{"SELECT close AS c FROM prices", false},
		{"UPDATE t SET note = 'prepare the report' WHERE id = 1", false},
		{"DO $$ DECLARE n int; BEGIN n := 1; END $$", false},
		{"SELECT 1", false},
	} {
		if got := mayChangePrepared(tc.sql); got != tc.want {
			t.Errorf("mayChangePrepared(%q) = %v, want %v", tc.sql, got, tc.want)
		}
	}
}

// A SQL EXECUTE of a statement prepared through the protocol (whose Parse
// is not recorded on its own) is recorded with that statement's text and
// counts its action as used.
func TestSQLExecuteRecordsPreparedText(t *testing.T) {
	e := newEnv(t, nil)
	g := e.grant(time.Hour, "pg:select,pg:delete %s.public.customers")
	c := e.connect(g, "")
	ctx := ctxT(t, 30*time.Second)
	pc := c.PgConn()
	if _, err := pc.Prepare(ctx, "D2", "DELETE FROM customers WHERE id <= 1", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := pc.Exec(ctx, `EXECUTE "D2"`).ReadAll(); err != nil {
		t.Fatal(err)
	}
	e.settle(g)
	var found bool
	for _, call := range e.auth.Calls(g.ID) {
		if call.Kind != "request" || call.Action != "pg:execute" {
			continue
		}
		found = true
		if call.Params["prepared"] != "DELETE FROM customers WHERE id <= 1" {
			t.Errorf("EXECUTE recorded %v, want the prepared statement's text", call.Params)
		}
		if len(call.Also) != 1 || !strings.HasPrefix(call.Also[0], "pg:delete ") {
			t.Errorf("EXECUTE's Also = %v, want pg:delete", call.Also)
		}
	}
	if !found {
		t.Fatal("no EXECUTE recorded")
	}
}
