package pggw

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/gateway"
	"github.com/airlock-dev/airlock/internal/gateway/gatewaytest"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
)

// rolePassword is the role's stored verifier, read as the superuser.
func (e *env) rolePassword(g *gateway.Grant) string {
	e.t.Helper()
	var pw *string
	err := e.admin().QueryRow(ctxT(e.t, 10*time.Second), "select rolpassword from pg_authid where rolname = $1", "airlock_"+strings.ToLower(g.ID)).Scan(&pw)
	if err != nil {
		e.t.Fatal(err)
	}
	if pw == nil {
		return "<null>"
	}
	return *pw
}

// A grant's role cannot change its own password (or validity, or name)
// through the gateway, in any of the ways a client can send it; each
// attempt is recorded as refused and the stored password is unchanged.
// (The test server trusts loopback logins, so "log in directly with the
// new password" cannot fail there; the stored verifier is what such a
// login would be checked against.)
func TestAlterRolePasswordRefused(t *testing.T) {
	e := newEnv(t, nil)
	g := e.grant(time.Hour, "pg:select %s.public.customers")
	c := e.connect(g, "")
	ctx := ctxT(t, 30*time.Second)
	if _, err := c.Exec(ctx, "select 1"); err != nil {
		t.Fatal(err)
	}
	before := e.rolePassword(g)
	role := "airlock_" + strings.ToLower(g.ID)

	attempts := []struct {
		sql  string
		mode pgx.QueryExecMode
	}{
		{"ALTER ROLE CURRENT_USER PASSWORD 'x'", pgx.QueryExecModeSimpleProtocol},
		{"alter user session_user with encrypted password 'x'", pgx.QueryExecModeSimpleProtocol},
		// psql's \password.
		{fmt.Sprintf(`ALTER USER "%s" PASSWORD 'SCRAM-SHA-256$4096:c2FsdHNhbHRzYWx0$c3RvcmVk:c2VydmVy'`, role), pgx.QueryExecModeSimpleProtocol},
		{fmt.Sprintf("alter role %s valid until 'infinity'", role), pgx.QueryExecModeSimpleProtocol},
		{"select 1; /* ; */ ALTER ROLE current_user PASSWORD 'x'; select 2", pgx.QueryExecModeSimpleProtocol},
		// The extended protocol: Parse, Describe, Sync.
		{"ALTER ROLE CURRENT_USER PASSWORD 'x'", pgx.QueryExecModeDescribeExec},
		{"ALTER ROLE CURRENT_USER PASSWORD 'x'", pgx.QueryExecModeExec},
		{"DO $$BEGIN EXECUTE 'ALTER ROLE ' || current_user || ' PASSWORD ''x'''; END$$", pgx.QueryExecModeSimpleProtocol},
		// A "--" comment ends at a carriage return as well as a newline.
		{"--\rALTER ROLE CURRENT_USER PASSWORD 'x'", pgx.QueryExecModeSimpleProtocol},
		{"--\rALTER ROLE CURRENT_USER PASSWORD 'x'", pgx.QueryExecModeExec},
	}
	for _, a := range attempts {
		_, err := c.Exec(ctx, a.sql, a.mode)
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != "42501" || pe.Severity != "ERROR" {
			t.Fatalf("%s (mode %v): err = %v, want ERROR 42501", a.sql, a.mode, err)
		}
		// The session goes on.
		var one int
		if err := c.QueryRow(ctx, "select 1").Scan(&one); err != nil {
			t.Fatalf("after the refusal of %s: %v", a.sql, err)
		}
	}
	if after := e.rolePassword(g); after != before {
		t.Fatalf("the role's password changed through the gateway")
	}

	// Inside a transaction block the session is closed, so that the
	// transaction is rolled back upstream.
	tx := e.connect(g, "")
	if _, err := tx.Exec(ctx, "begin", pgxSimple); err != nil {
		t.Fatal(err)
	}
	_, err := tx.Exec(ctx, "ALTER ROLE CURRENT_USER PASSWORD 'x'", pgxSimple)
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "42501" || pe.Severity != "FATAL" {
		t.Fatalf("in a transaction: err = %v, want FATAL 42501", err)
	}
	if after := e.rolePassword(g); after != before {
		t.Fatalf("the role's password changed through the gateway")
	}

	// Every attempt is in the recording as refused, its password redacted.
	var refused int
	for _, call := range e.requests(g) {
		if call.Allowed || !strings.HasPrefix(call.Error, "42501 ") {
			continue
		}
		refused++
		if st := call.Params["statement"]; strings.Contains(st, "'x'") || strings.Contains(st, "SCRAM-SHA-256$") {
			t.Errorf("a refused statement's password is in the recording: %q", st)
		}
	}
	if refused != len(attempts)+1 {
		t.Errorf("%d refusals recorded, want %d", refused, len(attempts)+1)
	}
}

// Each statement of a multi-statement simple query is recorded with its
// own action, number and result, so scope used shows the delete.
func TestMultiStatementRecording(t *testing.T) {
	e := newEnv(t, nil)
	g := e.grant(time.Hour, "pg:select %s.public.customers", "pg:insert %s.public.events", "pg:select %s.public.events")
	c := e.connect(g, "")
	ctx := ctxT(t, 30*time.Second)

	q := "select count(*) from customers; insert into events(note) values ('a;b'), ($$c;d$$); -- ; \nselect 1"
	if _, err := c.Exec(ctx, q, pgxSimple); err != nil {
		t.Fatal(err)
	}
	// The second statement fails; the third does not run.
	if _, err := c.Exec(ctx, "select 2; delete from events; select 3", pgxSimple); pgCode(err) != "42501" {
		t.Fatalf("delete outside the scope: err = %v, want 42501", err)
	}
	e.settle(g)

	type rec struct{ action, statement, part, tag, err string }
	var got []rec
	results := map[string]gateway.Call{}
	for _, call := range e.auth.Calls(g.ID) {
		if call.Kind == "result" {
			results[call.Params["n"]] = call
		}
	}
	for _, call := range e.requests(g) {
		res := results[call.Params["n"]]
		got = append(got, rec{call.Action, call.Params["statement"], call.Params["part"], res.Status, res.Error})
	}
	want := []rec{
		{"pg:select", "select count(*) from customers", "1/3", "SELECT 1", ""},
		{"pg:insert", "insert into events(note) values ('a;b'), ($$c;d$$)", "2/3", "INSERT 0 2", ""},
		{"pg:select", "-- ; \nselect 1", "3/3", "SELECT 1", ""},
		{"pg:select", "select 2", "1/3", "SELECT 1", ""},
		{"pg:delete", "delete from events", "2/3", "", "42501 permission denied for table events"},
		{"pg:select", "select 3", "3/3", "", "airlock: not run: an earlier statement of its query failed"},
	}
	if len(got) != len(want) {
		t.Fatalf("recorded %d requests, want %d: %+v", len(got), len(want), got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("request %d: %+v, want %+v", i, got[i], want[i])
		}
	}
	// Scope used, as the review counts it: every allowed request's action.
	used := map[string]bool{}
	for _, call := range e.requests(g) {
		if call.Allowed {
			used[call.Action] = true
		}
	}
	if !used["pg:insert"] || !used["pg:delete"] {
		t.Errorf("scope used %v misses the statements after the first", used)
	}
}

// A query with more statements than are recorded one by one: the rest is
// one request listing their actions.
func TestManyStatementsRecording(t *testing.T) {
	e := newEnv(t, nil)
	g := e.grant(time.Hour, "pg:select %s.public.customers", "pg:insert %s.public.events")
	c := e.connect(g, "")
	ctx := ctxT(t, 30*time.Second)
	q := strings.Repeat("select 1;", maxRecordedStatements+10) + "insert into events(note) values ('x')"
	if _, err := c.Exec(ctx, q, pgxSimple); err != nil {
		t.Fatal(err)
	}
	e.settle(g)
	reqs := e.requests(g)
	if len(reqs) != maxRecordedStatements {
		t.Fatalf("%d requests, want %d", len(reqs), maxRecordedStatements)
	}
	last := reqs[len(reqs)-1]
	if last.Params["part"] != fmt.Sprintf("%d-%d/%d", maxRecordedStatements, maxRecordedStatements+11, maxRecordedStatements+11) ||
		len(last.Also) != 1 || last.Also[0] != "pg:insert "+e.db {
		t.Errorf("the last request: part %q, also %q", last.Params["part"], last.Also)
	}
	var n int
	if err := e.admin().QueryRow(ctx, "select count(*) from events").Scan(&n); err != nil || n != 1 {
		t.Errorf("the query did not run whole: %d rows, %v", n, err)
	}
}

// TestExtendedStatementsRecorded checks what an Execute is recorded as,
// now that a prepared statement's action and redacted text are worked out
// at its Parse: the statement as last parsed under its name, passwords
// redacted, and the placeholders for what the gateway never saw.
func TestExtendedStatementsRecorded(t *testing.T) {
	gw, auth := fuzzGateway(t)
	gr := auth.Add(gatewaytest.Spec{Target: "db", TargetKind: "postgres", Scope: []string{"pg:insert orders.public.*"}})
	var in []byte
	for _, m := range []pgproto3.FrontendMessage{
		&pgproto3.Execute{}, &pgproto3.Sync{}, // the unnamed portal, never bound
		&pgproto3.Parse{Name: "s1", Query: "create role u password 'hunter2'"},
		&pgproto3.Bind{PreparedStatement: "s1"}, &pgproto3.Execute{}, &pgproto3.Sync{},
		&pgproto3.Parse{Name: "s1", Query: "select $1::int"},
		&pgproto3.Bind{PreparedStatement: "s1", Parameters: [][]byte{[]byte("7")}}, &pgproto3.Execute{}, &pgproto3.Sync{},
		&pgproto3.Parse{Query: "insert into t values (1)"},
		&pgproto3.Bind{DestinationPortal: "p"}, &pgproto3.Execute{Portal: "p"}, &pgproto3.Execute{Portal: "p"}, &pgproto3.Sync{},
		&pgproto3.Bind{PreparedStatement: "nope"}, &pgproto3.Execute{}, &pgproto3.Sync{},
		&pgproto3.Execute{Portal: "gone"}, &pgproto3.Sync{},
	} {
		in, _ = m.Encode(in)
	}
	c := relayConn(t, gw, auth, gr, bytes.NewReader(in))
	if err := c.clientLoop(); err != nil {
		t.Fatal(err)
	}
	type rec struct{ action, statement, params string }
	want := []rec{
		{"pg:statement", "", ""},
		{"pg:create", "create role u password '<redacted>'", ""},
		{"pg:select", "select $1::int", "$1='7'"},
		{"pg:insert", "insert into t values (1)", ""},
		{"pg:insert", "insert into t values (1)", ""},
		{"pg:statement", `<prepared statement "nope" unknown to the gateway: closed before its Bind>`, ""},
		{"pg:statement", `<portal "gone" closed by the gateway before this Execute: it was not bound through the protocol in this session>`, ""},
	}
	var got []rec
	for _, call := range auth.Calls(gr.ID) {
		if call.Kind == "request" {
			got = append(got, rec{call.Action, call.Params["statement"], call.Params["parameters"]})
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("recorded\n%q\nwant\n%q", got, want)
	}
}
