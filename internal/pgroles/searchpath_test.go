package pgroles

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// TestAdminRunsNoAgentCode: in a database where PUBLIC may still CREATE in
// a schema on the admin's search_path (public, in any database upgraded
// from PostgreSQL 14 or older with pg_upgrade), a grant role can define a
// function or operator that matches an unqualified call in the Manager's
// own SQL more exactly than pg_catalog's (left(name, int) beats
// pg_catalog.left(text, int), which needs a cast). The Manager would then
// run the agent's code as the admin: CREATEROLE and the owner of the
// tables. Here the agent's function grants its role a table outside the
// scope; the Manager must never call it.
func TestAdminRunsNoAgentCode(t *testing.T) {
	need(t)
	ctx := testCtx(t)
	su := superConn(t, env.db)
	// The admin's own settings and its DSN ask for public too: neither
	// may put it back on the admin's path.
	if _, err := su.Exec(ctx, `GRANT CREATE ON SCHEMA public TO PUBLIC;
		ALTER ROLE `+env.admin+` SET search_path = public`); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		su.Exec(context.Background(), `DROP FUNCTION IF EXISTS public.left(name, integer);
			DROP OPERATOR IF EXISTS public.= (oid, regrole);
			REVOKE CREATE ON SCHEMA public FROM PUBLIC;
			ALTER ROLE `+env.admin+` RESET search_path`)
	})
	sep := "?"
	if strings.Contains(env.adminDSN, "?") {
		sep = "&"
	}
	m, err := New(ctx, env.adminDSN+sep+"options=-c%20search_path%3Dpublic", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	r, err := m.Ensure(ctx, newGrant(t, "hijack", time.Hour, "pg:select %s.public.customers"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Drop(context.Background(), grantID("hijack")) })
	if !r.MayDefine {
		t.Error("MayDefine false where PUBLIC may CREATE in public")
	}
	c := connectAs(t, r)
	check(t, c, "SELECT * FROM orders", denied)
	// Both run as whoever calls them: a pg:select grant owns them, the
	// admin would execute them. ReconcileLive calls left(rolname, …);
	// revokeAll (Ensure of a role left by an earlier process) compares
	// grantee = $1::regrole.
	grant := func(table string) string {
		return `EXECUTE pg_catalog.format('GRANT SELECT ON public.` + table + ` TO %I', '` + r.Name + `');`
	}
	check(t, c, `CREATE FUNCTION public.left(name, integer) RETURNS text LANGUAGE plpgsql AS $$
		BEGIN `+grant("orders")+` RETURN pg_catalog.left($1::text, $2); END $$`, "")
	check(t, c, `CREATE FUNCTION public.oid_eq_regrole(oid, regrole) RETURNS boolean LANGUAGE plpgsql AS $$
		BEGIN `+grant("cust_a")+` RETURN $1 OPERATOR(pg_catalog.=) $2::oid; END $$`, "")
	check(t, c, `CREATE OPERATOR public.= (LEFTARG = oid, RIGHTARG = regrole, FUNCTION = public.oid_eq_regrole)`, "")

	if err := m.ReconcileLive(ctx, func(_ context.Context, ids []string) (map[string]bool, error) {
		live := map[string]bool{}
		for _, id := range ids {
			live[id] = true
		}
		return live, nil
	}); err != nil {
		t.Fatal(err)
	}
	check(t, c, "SELECT * FROM orders", denied)
	// A restarted process (a fresh Manager) meets the role and resets it.
	if _, err := newManager(t).Ensure(ctx, newGrant(t, "hijack", time.Hour, "pg:select %s.public.customers")); err != nil {
		t.Fatal(err)
	}
	check(t, c, "SELECT * FROM orders", denied)
	check(t, c, "SELECT * FROM cust_a", denied)
}

// TestPatternSkipsGrantRolesTables: where PUBLIC may CREATE, a grant role
// can make a view whose name another grant's "*" pattern matches, over a
// table only its own grant may read. The admin, a member of every grant
// role, granted it to the other grant, whose role then read, through the
// view, a table its scope does not name. Relations owned by grant roles
// are not part of any plan.
func TestPatternSkipsGrantRolesTables(t *testing.T) {
	need(t)
	ctx := testCtx(t)
	su := superConn(t, env.db)
	if _, err := su.Exec(ctx, `GRANT CREATE ON SCHEMA public TO PUBLIC`); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { su.Exec(context.Background(), `REVOKE CREATE ON SCHEMA public FROM PUBLIC`) })
	m := newManager(t)
	r, err := m.Ensure(ctx, newGrant(t, "squat", time.Hour, "pg:select %s.public.customers"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Drop(context.Background(), grantID("squat")) })
	check(t, connectAs(t, r), "CREATE VIEW public.ev_squat AS SELECT * FROM customers", "")
	other, err := m.Ensure(ctx, newGrant(t, "squat_other", time.Hour, "pg:select %s.public.ev*"))
	if err != nil {
		t.Fatalf("Ensure of a pattern matching a grant role's table: %v", err)
	}
	t.Cleanup(func() { m.Drop(context.Background(), grantID("squat_other")) })
	for _, p := range other.Privileges {
		if p.Name == "ev_squat" {
			t.Errorf("planned %s", p)
		}
	}
	oc := connectAs(t, other)
	check(t, oc, "SELECT * FROM events", "")
	check(t, oc, "SELECT * FROM ev_squat", denied)
}
