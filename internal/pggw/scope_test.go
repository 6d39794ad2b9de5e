package pggw

import (
	"strings"
	"testing"
	"time"
)

// The database enforces the scope: a table outside it is PostgreSQL's own
// permission error, and no SET ROLE / SESSION AUTHORIZATION trick widens it.
func TestOutsideScopeIsDeniedByPostgres(t *testing.T) {
	e := newEnv(t, nil)
	g := e.grant(time.Hour, "pg:select %s.public.customers")
	c := e.connect(g, "")
	ctx := ctxT(t, 20*time.Second)

	var user string
	if err := c.QueryRow(ctx, "select current_user").Scan(&user); err != nil {
		t.Fatal(err)
	}
	if user != "airlock_"+g.ID {
		t.Fatalf("session runs as %q, want the grant's role airlock_%s", user, g.ID)
	}
	tests := []struct {
		sql  string
		code string // "" = must succeed
	}{
		{"select * from secrets", "42501"},
		{"set role postgres", "42501"},
		{"set session authorization postgres", "42501"},
		{"reset role", ""},
		{"select * from secrets", "42501"},
		{"reset session authorization", ""},
		{"select v from secrets", "42501"},
		{"insert into customers values (1000, 'x')", "42501"},
		{"select count(*) from customers", ""},
	}
	for _, tc := range tests {
		_, err := c.Exec(ctx, tc.sql)
		if got := pgCode(err); got != tc.code {
			t.Errorf("%s: code %q (err %v), want %q", tc.sql, got, err, tc.code)
		}
	}
	// Every one of them was recorded before it ran, and the denial is in
	// the result.
	e.settle(g)
	var denied int
	for _, call := range e.auth.Calls(g.ID) {
		if call.Kind == "result" && strings.HasPrefix(call.Error, "42501 ") {
			denied++
		}
	}
	if denied != 6 {
		t.Errorf("recorded %d permission errors, want 6: %+v", denied, e.auth.Calls(g.ID))
	}
	if n := len(e.requests(g)); n < len(tests)+1 {
		t.Errorf("recorded %d requests, want at least %d", n, len(tests)+1)
	}
}
