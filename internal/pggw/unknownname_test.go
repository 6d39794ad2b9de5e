package pggw

import (
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
)

// TestUnknownNamesRunNothing: a Bind of a statement name, or an Execute of
// a portal name, that the gateway did not see prepared or bound through
// the protocol in this session (SQL PREPARE and DECLARE make such names)
// runs nothing: the gateway closes the name first, the server refuses,
// and the record says so. Before, the server ran whatever the name held (a
// DELETE) recorded only as "unknown to the gateway". And names changed by
// a PREPARE or DEALLOCATE run through the protocol count from when it
// runs, not from its Parse: a statement bound in between is checked again
// at its next Bind.
func TestUnknownNamesRunNothing(t *testing.T) {
	e := newEnv(t, nil)
	g := e.grant(time.Hour, "pg:select,pg:delete,pg:prepare,pg:deallocate,pg:declare,pg:begin,pg:commit,pg:rollback %s.public.customers")
	ctx := ctxT(t, 30*time.Second)
	pc := e.connect(g, "").PgConn()
	left := func() int {
		t.Helper()
		var n int
		if err := e.admin().QueryRow(ctx, "select count(*) from customers").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	before := left()
	ran := func(step string, got []string) {
		t.Helper()
		for _, l := range got {
			if strings.HasPrefix(l, "complete DELETE") || strings.HasPrefix(l, "row ") {
				t.Fatalf("%s: %q: the name's statement ran", step, got)
			}
		}
		if n := left(); n != before {
			t.Fatalf("%s: %d customers left of %d", step, n, before)
		}
	}

	// A statement prepared with SQL, bound through the protocol.
	if got := rawBatch(t, pc, &pgproto3.Query{String: "PREPARE s9 AS DELETE FROM customers RETURNING id"}); !contains(got, "complete PREPARE") {
		t.Fatalf("prepare: %q", got)
	}
	got := rawBatch(t, pc, &pgproto3.Bind{PreparedStatement: "s9"}, &pgproto3.Execute{})
	ran("SQL PREPARE'd statement", got)
	if !contains(got, `error 26000 prepared statement "s9" does not exist`) {
		t.Fatalf("SQL PREPARE'd statement: %q, want 26000", got)
	}

	// A cursor declared with SQL, executed as a portal.
	rawBatch(t, pc, &pgproto3.Query{String: "BEGIN"})
	if got := rawBatch(t, pc, &pgproto3.Query{String: "DECLARE c9 CURSOR FOR SELECT id FROM customers"}); !contains(got, "complete DECLARE CURSOR") {
		t.Fatalf("declare: %q", got)
	}
	got = rawBatch(t, pc, &pgproto3.Execute{Portal: "c9"})
	ran("SQL cursor", got)
	if len(got) < 2 || !strings.HasPrefix(got[len(got)-2], "error 34000 airlock: the portal was closed: it was not bound through the protocol") {
		t.Fatalf("SQL cursor: %q, want the gateway's 34000", got)
	}
	rawBatch(t, pc, &pgproto3.Query{String: "ROLLBACK"})

	// DEALLOCATE and PREPARE parsed first, run later: s1 bound in between
	// must not keep the gateway's trust once they ran.
	pc = e.connect(g, "").PgConn() // a session that has run nothing else
	rawBatch(t, pc, &pgproto3.Parse{Name: "s1", Query: "SELECT 1 AS one"})
	got = rawBatch(t, pc,
		&pgproto3.Parse{Name: "dealloc", Query: "DEALLOCATE s1"},
		&pgproto3.Parse{Name: "prep", Query: "PREPARE s1 AS DELETE FROM customers RETURNING id"},
		&pgproto3.Bind{PreparedStatement: "s1"}, &pgproto3.Execute{},
		&pgproto3.Bind{PreparedStatement: "dealloc"}, &pgproto3.Execute{},
		&pgproto3.Bind{PreparedStatement: "prep"}, &pgproto3.Execute{})
	if !contains(got, "complete PREPARE") {
		t.Fatalf("set-up: %q", got)
	}
	got = rawBatch(t, pc, &pgproto3.Bind{PreparedStatement: "s1"}, &pgproto3.Execute{})
	ran("statement replaced by a PREPARE run through the protocol", got)

	e.settle(g)
	var notes []string
	for _, call := range e.requests(g) {
		if s := call.Params["statement"]; strings.Contains(s, "unknown to the gateway: closed before its Bind") ||
			strings.Contains(s, "closed by the gateway before this Execute: it was not bound through the protocol") {
			notes = append(notes, s)
		}
	}
	if len(notes) != 2 {
		t.Fatalf("recorded %q, want the unknown statement's and the unknown portal's refusals", notes)
	}
}
