package pggw

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
)

// rawBatch sends msgs on pc (and a Sync, unless the last is a Query) and
// returns what came back up to ReadyForQuery, one line per message.
func rawBatch(t *testing.T, pc *pgconn.PgConn, msgs ...pgproto3.FrontendMessage) []string {
	t.Helper()
	fe := pc.Frontend()
	for _, m := range msgs {
		fe.Send(m)
	}
	if _, ok := msgs[len(msgs)-1].(*pgproto3.Query); !ok {
		fe.Send(&pgproto3.Sync{})
	}
	if err := fe.Flush(); err != nil {
		t.Fatal(err)
	}
	var out []string
	for range 1000 {
		m, err := fe.Receive()
		if err != nil {
			t.Fatal(err)
		}
		switch m := m.(type) {
		case *pgproto3.DataRow:
			var vals []string
			for _, v := range m.Values {
				vals = append(vals, string(v))
			}
			out = append(out, "row "+strings.Join(vals, ","))
		case *pgproto3.CommandComplete:
			out = append(out, "complete "+string(m.CommandTag))
		case *pgproto3.ErrorResponse:
			out = append(out, "error "+m.Code+" "+m.Message)
		case *pgproto3.PortalSuspended:
			out = append(out, "suspended")
		case *pgproto3.ReadyForQuery:
			return append(out, "ready "+string(m.TxStatus))
		}
	}
	t.Fatal("no ReadyForQuery")
	return nil
}

// An Execute of a named portal is recorded with the query the server runs.
// Code (a DO block, a function, a trigger) can close a portal and open a
// cursor of the same name with dynamic SQL the gateway cannot read, a
// DELETE … RETURNING included: an Execute of a named portal bound before
// such code is refused (the gateway closes the portal first, and the
// client gets 34000), where it would run the new query recorded as the
// one the client bound.
func TestNamedPortalRecordedAsRun(t *testing.T) {
	e := newEnv(t, nil)
	g := e.grant(time.Hour, "pg:select,pg:delete %s.public.customers")
	c := e.connect(g, "")
	ctx := ctxT(t, 30*time.Second)
	pc := c.PgConn()
	admin := e.admin()
	left := func(upTo int) int {
		t.Helper()
		var n int
		if err := admin.QueryRow(ctx, "select count(*) from customers where id <= $1", upTo).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	swap := func(name string, upTo int) string {
		return fmt.Sprintf(`DO $$ DECLARE c refcursor := '%s'; BEGIN EXECUTE 'clo' || 'se %s'; `+
			`OPEN c FOR EXECUTE 'delete from customers where id <= %d returning name'; END $$`, name, name, upTo)
	}
	refused := func(step string, got []string) {
		t.Helper()
		for _, l := range got {
			if strings.HasPrefix(l, "row ") || strings.HasPrefix(l, "complete DELETE") {
				t.Fatalf("%s: %q; the swapped-in cursor ran", step, got)
			}
		}
		if !contains(got, "error 34000 airlock: the portal was closed: statements that may run code (and so replace a portal by name) ran since its Bind; bind it again") {
			t.Fatalf("%s: %q, want the gateway's 34000", step, got)
		}
	}

	// Bound in a transaction block, swapped by a DO block, executed.
	rawBatch(t, pc, &pgproto3.Query{String: "BEGIN"})
	rawBatch(t, pc, &pgproto3.Parse{Query: "SELECT 'original' AS c"}, &pgproto3.Bind{DestinationPortal: "p1"})
	if got := rawBatch(t, pc, &pgproto3.Query{String: swap("p1", 3)}); !contains(got, "complete DO") {
		t.Fatalf("swap: %q", got)
	}
	refused("DO block", rawBatch(t, pc, &pgproto3.Execute{Portal: "p1"}))
	rawBatch(t, pc, &pgproto3.Query{String: "ROLLBACK"})

	// The same in one batch (one implicit transaction).
	refused("one batch", rawBatch(t, pc,
		&pgproto3.Parse{Query: "SELECT 'original' AS c"}, &pgproto3.Bind{DestinationPortal: "p2"},
		&pgproto3.Parse{Query: swap("p2", 3)}, &pgproto3.Bind{}, &pgproto3.Execute{},
		&pgproto3.Execute{Portal: "p2"}))
	if n := left(3); n != 3 {
		t.Fatalf("customers 1-3: %d left; the swapped-in DELETE ran", n)
	}
	e.settle(g)
	for _, call := range e.requests(g) {
		// A Bind's own record (bind) says it was planned, not run.
		if call.Params["protocol"] == "extended" && call.Action == "pg:select" && call.Params["bind"] == "" {
			t.Fatalf("recorded %q as run", call.Params["statement"])
		}
	}

	// A named portal read in parts (JDBC with a fetch size) still works,
	// its query calling a function (so its own run counts as code), with
	// reads in between, on a session that has not run code of its own.
	pc = e.connect(g, "").PgConn()
	// pgjdbc sends its BEGIN in the batch of the transaction's first query.
	got := rawBatch(t, pc, &pgproto3.Parse{Query: "BEGIN"}, &pgproto3.Bind{}, &pgproto3.Execute{},
		&pgproto3.Parse{Name: "s", Query: "SELECT id FROM customers, pg_sleep(0) WHERE id <= 5 ORDER BY id"},
		&pgproto3.Bind{PreparedStatement: "s", DestinationPortal: "C_1"}, &pgproto3.Execute{Portal: "C_1", MaxRows: 2})
	got = append(got, rawBatch(t, pc, &pgproto3.Execute{Portal: "C_1", MaxRows: 2})...)
	got = append(got, rawBatch(t, pc, &pgproto3.Parse{Query: "SELECT 7"}, &pgproto3.Bind{}, &pgproto3.Execute{})...)
	got = append(got, rawBatch(t, pc, &pgproto3.Execute{Portal: "C_1", MaxRows: 2})...)
	got = append(got, rawBatch(t, pc, &pgproto3.Query{String: "COMMIT"})...)
	want := []string{"complete BEGIN", "row 1", "row 2", "suspended", "ready T", "row 3", "row 4", "suspended", "ready T",
		"row 7", "complete SELECT 1", "ready T", "row 5", "complete SELECT 1", "ready T", "complete COMMIT", "ready I"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("portal read in parts: %q, want %q", got, want)
	}
}

// On a session whose grant can only read, a portal swapped for a cursor
// that changes state (a large object) is refused too.
func TestNamedPortalSwapReadOnly(t *testing.T) {
	e := newEnv(t, nil)
	g := e.grant(time.Hour, "pg:select %s.public.customers")
	c := e.connect(g, "")
	ctx := ctxT(t, 30*time.Second)
	pc := c.PgConn()
	got := rawBatch(t, pc,
		&pgproto3.Parse{Query: "SELECT 'original' AS c"}, &pgproto3.Bind{DestinationPortal: "p1"},
		&pgproto3.Parse{Query: `DO $$ DECLARE c refcursor := 'p1'; BEGIN EXECUTE 'clo' || 'se p1'; ` +
			`OPEN c FOR EXECUTE 'select lo_from_bytea(0, ''x'')'; END $$`}, &pgproto3.Bind{}, &pgproto3.Execute{},
		&pgproto3.Execute{Portal: "p1"})
	if len(got) == 0 || !strings.HasPrefix(got[len(got)-2], "error 34000 airlock:") {
		t.Fatalf("%q, want the gateway's 34000", got)
	}
	var n int
	if err := e.admin().QueryRow(ctx, "select count(*) from pg_largeobject_metadata").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Fatalf("%d large objects: the swapped-in cursor ran", n)
	}
}

// Code can run at the end of a transaction, after the statement that
// scheduled it: a deferred constraint trigger fires at COMMIT, at SET
// CONSTRAINTS … IMMEDIATE and at the Sync that ends an implicit
// transaction, and a WITH HOLD cursor's query runs to its end at COMMIT.
// Such code can replace a named statement or portal prepared after that
// statement, so those points count as code too when code may be pending.
func TestCommitTimeCodeRecordedAsRun(t *testing.T) {
	e := newEnv(t, nil)
	g := e.grant(time.Hour, "pg:select,pg:delete,pg:insert %s.public.customers")
	c := e.connect(g, "")
	ctx := ctxT(t, 30*time.Second)
	pc := c.PgConn()
	if _, err := pc.Exec(ctx, `CREATE TEMP TABLE tt (x int);
		CREATE FUNCTION pg_temp.swap() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN
			EXECUTE 'deal' || 'locate w'; EXECUTE 'pre' || 'pare w as delete from customers where id <= ' || NEW.x;
			RETURN NULL; END $$;
		CREATE CONSTRAINT TRIGGER tt_swap AFTER INSERT ON tt DEFERRABLE INITIALLY DEFERRED
			FOR EACH ROW EXECUTE FUNCTION pg_temp.swap()`).ReadAll(); err != nil {
		t.Fatal(err)
	}
	admin := e.admin()
	run := func(step string, upTo int) {
		t.Helper()
		r := pc.ExecPrepared(ctx, "w", nil, nil, nil).Read()
		if pgCode(r.Err) != "26000" {
			t.Fatalf("%s: w ran %s, rows %q, err %v; want the gateway's 26000 (w was replaced)", step, r.CommandTag, r.Rows, r.Err)
		}
		var n int
		if err := admin.QueryRow(ctx, "select count(*) from customers where id <= $1", upTo).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != upTo {
			t.Fatalf("%s: %d of customers 1-%d left; the swapped-in DELETE ran", step, n, upTo)
		}
		if err := pc.Deallocate(ctx, "w"); err != nil {
			t.Fatal(err)
		}
	}
	prepare := func() {
		t.Helper()
		if _, err := pc.Prepare(ctx, "w", "SELECT 5", nil); err != nil {
			t.Fatal(err)
		}
	}

	// COMMIT of an explicit transaction (through the extended protocol:
	// a simple Query counts as code once the session has objects of its
	// own, as this one does).
	if _, err := pc.Exec(ctx, "BEGIN; INSERT INTO tt VALUES (2)").ReadAll(); err != nil {
		t.Fatal(err)
	}
	prepare()
	if got := rawBatch(t, pc, &pgproto3.Parse{Query: "COMMIT"}, &pgproto3.Bind{}, &pgproto3.Execute{}); !strings.HasPrefix(got[0], "complete") {
		t.Fatalf("%q", got)
	}
	run("COMMIT", 2)

	// SET CONSTRAINTS ALL IMMEDIATE.
	if _, err := pc.Exec(ctx, "BEGIN; INSERT INTO tt VALUES (4)").ReadAll(); err != nil {
		t.Fatal(err)
	}
	prepare()
	if got := rawBatch(t, pc, &pgproto3.Parse{Query: "SET CONSTRAINTS ALL IMMEDIATE"}, &pgproto3.Bind{}, &pgproto3.Execute{}); !strings.HasPrefix(got[0], "complete") {
		t.Fatalf("%q", got)
	}
	run("SET CONSTRAINTS", 4)
	if _, err := pc.Exec(ctx, "COMMIT").ReadAll(); err != nil {
		t.Fatal(err)
	}

	// The Sync that ends an implicit transaction: the INSERT and the Parse
	// in one batch.
	got := rawBatch(t, pc, &pgproto3.Parse{Query: "INSERT INTO tt VALUES (6)"}, &pgproto3.Bind{}, &pgproto3.Execute{},
		&pgproto3.Parse{Name: "w", Query: "SELECT 5"})
	if fmt.Sprint(got) != "[complete INSERT 0 1 ready I]" {
		t.Fatalf("implicit transaction: %q", got)
	}
	run("Sync", 6)
}
