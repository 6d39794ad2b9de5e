package pggw

import (
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/gateway"
)

// TestRefusedResults: a statement PostgreSQL refuses for lack of privilege
// (42501) before it did anything has its result marked Refused, which the
// review counts as denied, not as scope used; one that may have done
// something stays a plain result with its error: rows reached the client
// before the refusal (a read), the refusal came from inside a DO block
// (its work, or a procedure's COMMIT, may stand), or its request held
// other statements' actions.
func TestRefusedResults(t *testing.T) {
	e := newEnv(t, nil)
	g := e.grant(time.Hour, "pg:select %s.public.customers")
	c := e.connect(g, "")
	ctx := ctxT(t, 30*time.Second)
	// A statement prepared through the protocol: a SQL EXECUTE of it is
	// recorded with its action in Also.
	if _, err := c.Prepare(ctx, "ins", "insert into customers values (3000, 'x')"); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		sql      string
		extended bool
		refused  []bool // per statement of sql, in order
	}{
		{"insert into customers values (1000, 'x')", false, []bool{true}},
		{"insert into customers values (1001, 'x')", true, []bool{true}},
		{"select * from secrets", false, []bool{true}},
		{"select count(*) from customers", false, []bool{false}},
		{"select 1; insert into customers values (1002, 'x')", false, []bool{false, true}},
		{"do $$ begin raise exception using errcode = '42501'; end $$", false, []bool{false}},
		// Rows 1 and 2 reach the client before nextval is refused at row 3.
		{"select id, case when id = 3 then nextval('events_id_seq') end from customers", false, []bool{false}},
		{"select id, case when id = 3 then nextval('events_id_seq') end from customers", true, []bool{false}},
		{"execute ins", false, []bool{false}},
	}
	for _, tc := range tests {
		var err error
		if tc.extended {
			_, err = c.Exec(ctx, tc.sql)
		} else {
			_, err = c.PgConn().Exec(ctx, tc.sql).ReadAll()
		}
		want := "42501"
		if tc.sql == "select count(*) from customers" {
			want = ""
		}
		if code := pgCode(err); code != want {
			t.Fatalf("%s: code %q (%v), want %q", tc.sql, code, err, want)
		}
	}
	e.settle(g)
	// The results by statement number, the requests in order.
	results := map[string]gateway.Call{}
	for _, call := range e.auth.Calls(g.ID) {
		if call.Kind == "result" {
			results[call.Params["n"]] = call
		}
	}
	reqs := e.requests(g)
	for _, tc := range tests {
		for i, want := range tc.refused {
			if len(reqs) == 0 {
				t.Fatalf("fewer requests recorded than statements run")
			}
			// pgx's extended Exec may be preceded by its own statements
			// (none here: a Parse is not recorded on its own).
			req := reqs[0]
			reqs = reqs[1:]
			res, ok := results[req.Params["n"]]
			if !ok {
				t.Errorf("%s (statement %d): no result", tc.sql, i+1)
				continue
			}
			if res.Refused != want {
				t.Errorf("%s (statement %d, %s): result refused %v, want %v (error %q, %d rows, %d bytes out)",
					tc.sql, i+1, req.Action, res.Refused, want, res.Error, res.Rows, res.BytesOut)
			}
			if want && res.Action != req.Action {
				t.Errorf("%s: the refused result names %s, its request %s", tc.sql, res.Action, req.Action)
			}
		}
	}
}

// TestRefusedResultBeforeAnswer: a refused statement's result is recorded
// before its answer reaches the client, so that a review read as soon as
// the client has the error counts the refusal (a denied attempt), not the
// statement as a call and its pair as used. The recorder takes a while
// over each result here: the result was recorded just after the answer
// was flushed, and was missing when the client had the error. A statement
// that ran is answered first and recorded after, as before.
func TestRefusedResultBeforeAnswer(t *testing.T) {
	e := newEnv(t, nil)
	g := e.grant(time.Hour, "pg:select %s.public.customers")
	c := e.connect(g, "")
	ctx := ctxT(t, 30*time.Second)
	const delay = 300 * time.Millisecond
	e.auth.DelayResults(delay)
	refusedResult := func(action string) bool {
		for _, call := range e.auth.Calls(g.ID) {
			if call.Kind == "result" && call.Action == action && call.Refused {
				return true
			}
		}
		return false
	}
	// The common case is unchanged: a statement that ran is answered
	// without waiting for its result's record (which then holds up the
	// statement after it: the recorder is slow here).
	start := time.Now()
	if _, err := c.PgConn().Exec(ctx, "select count(*) from customers").ReadAll(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d >= delay {
		t.Errorf("a select waited %v for its result's record", d)
	}
	for _, tc := range []struct {
		sql      string
		extended bool
	}{{"insert into customers values (1000, 'x')", false}, {"update customers set name = 'y'", true}} {
		var err error
		if tc.extended {
			_, err = c.Exec(ctx, tc.sql)
		} else {
			_, err = c.PgConn().Exec(ctx, tc.sql).ReadAll()
		}
		if code := pgCode(err); code != "42501" {
			t.Fatalf("%s: code %q (%v), want 42501", tc.sql, code, err)
		}
		action := "pg:insert"
		if tc.extended {
			action = "pg:update"
		}
		if !refusedResult(action) {
			t.Errorf("%s: the client has the error and its refused result is not recorded", tc.sql)
		}
	}
	e.settle(g)
}
