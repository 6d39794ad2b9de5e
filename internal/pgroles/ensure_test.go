package pgroles

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/scope"
)

// TestRoleHasOnlyTheScope connects as the grant role and lets PostgreSQL
// itself answer each statement.
func TestRoleHasOnlyTheScope(t *testing.T) {
	m := newManager(t)
	g := newGrant(t, "scope", time.Hour, "pg:select %s.public.customers", "pg:insert %s.public.events")
	r, err := m.Ensure(testCtx(t), g)
	if err != nil {
		t.Fatal(err)
	}
	if r.Name != RoleName(g.ID) || r.Password == "" || len(r.Notes) != 0 {
		t.Fatalf("role %v, notes %q", r, r.Notes)
	}
	if r.MayDefine {
		t.Error("MayDefine where PUBLIC may CREATE in no schema")
	}
	if r.RowFunctions {
		t.Error("RowFunctions where no function outside pg_catalog takes a row")
	}
	if r.ShadowsBuiltins {
		t.Error("ShadowsBuiltins where no function outside pg_catalog is named like a built-in")
	}
	c := connectAs(t, r)
	for _, tc := range []struct{ sql, want string }{
		{"SELECT * FROM customers", ""},
		{"SELECT * FROM public.customers WHERE id = 1", ""},
		{"INSERT INTO events (kind) VALUES ('login')", ""}, // serial default: needs the sequence
		{"SELECT * FROM orders", denied},
		{"SELECT * FROM events", denied},
		{"SELECT * FROM evview", denied},
		{"INSERT INTO customers VALUES (3, 'eve')", denied},
		{"UPDATE customers SET name = 'x'", denied},
		{"DELETE FROM customers", denied},
		{"TRUNCATE customers", denied},
		{"SELECT * FROM other.secret", denied},
		{"CREATE TABLE mine (x int)", denied}, // PostgreSQL 15: PUBLIC has no CREATE on public
		{"SET ROLE " + env.admin, denied},
		{"SELECT * FROM locked.root_only", denied},
	} {
		check(t, c, tc.sql, tc.want)
	}
}

func TestUpdateDeleteScope(t *testing.T) {
	m := newManager(t)
	g := newGrant(t, "upd", time.Hour, "pg:select,pg:update %s.public.orders", "pg:delete %s.public.cust_a")
	r, err := m.Ensure(testCtx(t), g)
	if err != nil {
		t.Fatal(err)
	}
	c := connectAs(t, r)
	check(t, c, "UPDATE orders SET customer_id = 2 WHERE id = 1", "")
	check(t, c, "DELETE FROM orders", denied)
	check(t, c, "INSERT INTO orders VALUES (9, 9)", denied)
	check(t, c, "DELETE FROM cust_a", "")
	// DELETE … WHERE reads the column: PostgreSQL wants SELECT as well, and
	// a pg:delete scope does not imply it.
	check(t, c, "DELETE FROM cust_a WHERE id = 1", denied)
}

func TestRoleAttributesAndVerifier(t *testing.T) {
	m := newManager(t)
	g := newGrant(t, "attrs", 10*time.Minute, "pg:select %s.public.customers")
	r, err := m.Ensure(testCtx(t), g)
	if err != nil {
		t.Fatal(err)
	}
	su := superConn(t, "")
	var login, inherit, super, createdb, createrole, repl, bypass bool
	var until *time.Time
	var verifier, comment string
	err = su.QueryRow(testCtx(t), `SELECT rolcanlogin, rolinherit, rolsuper, rolcreatedb, rolcreaterole,
			rolreplication, rolbypassrls, rolvaliduntil, coalesce(rolpassword, ''), shobj_description(oid, 'pg_authid')
		FROM pg_authid WHERE rolname = $1`, r.Name).
		Scan(&login, &inherit, &super, &createdb, &createrole, &repl, &bypass, &until, &verifier, &comment)
	if err != nil {
		t.Fatal(err)
	}
	if !login || inherit || super || createdb || createrole || repl || bypass {
		t.Errorf("attributes login=%v inherit=%v super=%v createdb=%v createrole=%v replication=%v bypassrls=%v",
			login, inherit, super, createdb, createrole, repl, bypass)
	}
	if until == nil || !until.Equal(g.ExpiresAt) || !r.ValidUntil.Equal(g.ExpiresAt) {
		t.Errorf("rolvaliduntil %v, Role.ValidUntil %v, want %v", until, r.ValidUntil, g.ExpiresAt)
	}
	if comment != marker(env.db, "") {
		t.Errorf("comment %q, want %q", comment, marker(env.db, ""))
	}
	// PostgreSQL stores what it cannot parse as a verifier as a plaintext
	// password; so the stored value must be a verifier for our password.
	pv := parseVerifier(t, verifier)
	if want, _ := scramVerifier(r.Password, pv.salt, pv.iterations); want != verifier {
		t.Errorf("stored verifier %q is not the password's", verifier)
	}
}

// TestEnsureConcurrentAndIdempotent: many callers, one role, one password;
// a second Manager (an Airlock restart) resets the password and brings the
// role back to exactly the scope.
func TestEnsureConcurrentAndIdempotent(t *testing.T) {
	m := newManager(t)
	g := newGrant(t, "conc", time.Hour, "pg:select %s.public.customers")
	var wg sync.WaitGroup
	roles := make([]Role, 8)
	errs := make([]error, 8)
	for i := range roles {
		wg.Go(func() { roles[i], errs[i] = m.Ensure(testCtx(t), g) })
	}
	wg.Wait()
	for i := range roles {
		if errs[i] != nil {
			t.Fatalf("Ensure %d: %v", i, errs[i])
		}
		if roles[i].Password != roles[0].Password || roles[i].Name != roles[0].Name {
			t.Fatalf("Ensure %d returned another role or password", i)
		}
	}
	again, err := m.Ensure(testCtx(t), g)
	if err != nil || again.Password != roles[0].Password {
		t.Fatalf("Ensure again: %v (same password: %v)", err, again.Password == roles[0].Password)
	}
	connectAs(t, again)

	// Somebody widens the role behind Airlock's back; the restart's Ensure
	// must take that away again.
	if _, err := superConn(t, env.db).Exec(testCtx(t), "GRANT SELECT ON orders TO "+again.Name); err != nil {
		t.Fatal(err)
	}
	m2 := newManager(t)
	// Two Managers at once (old and new process) are serialised by the
	// advisory lock.
	var r2, r3 Role
	var e2, e3 error
	wg.Go(func() { r2, e2 = m2.Ensure(testCtx(t), g) })
	wg.Go(func() { r3, e3 = newManager(t).Ensure(testCtx(t), g) })
	wg.Wait()
	if e2 != nil || e3 != nil {
		t.Fatalf("Ensure after restart: %v, %v", e2, e3)
	}
	if r2.Password == roles[0].Password || r2.Name != roles[0].Name || r3.Name != r2.Name {
		t.Fatal("a restarted Manager must reset the password of the same role")
	}
	c := connectAs(t, r2)
	check(t, c, "SELECT * FROM customers", "")
	check(t, c, "SELECT * FROM orders", denied)
}

func TestOtherDatabaseGrantsNothing(t *testing.T) {
	m := newManager(t)
	g := newGrant(t, "otherdb", time.Hour, "pg:select otherdb.public.customers", "pg:select %s.nosuch.*", "pg:select %s.public.nosuch")
	r, err := m.Ensure(testCtx(t), g)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Notes) != 3 || !strings.Contains(r.Notes[0], `names database "otherdb"`) {
		t.Fatalf("notes %q: want one per statement, the first naming otherdb", r.Notes)
	}
	if got := privStrings(r.Privileges); !slices.Equal(got, []string{"CONNECT ON DATABASE " + env.db}) {
		t.Fatalf("privileges %q, want only CONNECT", got)
	}
	check(t, connectAs(t, r), "SELECT * FROM customers", denied)
}

func privStrings(ps []Privilege) []string {
	var out []string
	for _, p := range ps {
		out = append(out, p.String())
	}
	return out
}

func TestPlan(t *testing.T) {
	m := newManager(t)
	db := need(t).db
	for _, tc := range []struct {
		name  string
		stmts []string
		want  []string
	}{
		{"exact with sequence", []string{"pg:select,pg:insert %s.public.events"}, []string{
			"CONNECT ON DATABASE " + db, "USAGE ON SCHEMA " + db + ".public",
			"SELECT ON " + db + ".public.events", "INSERT ON " + db + ".public.events",
			"USAGE ON SEQUENCE " + db + ".public.events_id_seq"}},
		{"prefix takes views too", []string{"pg:select %s.public.ev*"}, []string{
			"CONNECT ON DATABASE " + db, "USAGE ON SCHEMA " + db + ".public",
			"SELECT ON " + db + ".public.events", "SELECT ON " + db + ".public.events_archive",
			"SELECT ON " + db + ".public.evview"}},
		{"underscore is literal", []string{"pg:delete %s.public.cust_*"}, []string{
			"CONNECT ON DATABASE " + db, "USAGE ON SCHEMA " + db + ".public",
			"DELETE ON " + db + ".public.cust_a"}},
		{"two schemas, duplicates merged", []string{"pg:select %s.other.*", "pg:select %s.other.secret", "pg:update %s.public.orders"}, []string{
			"CONNECT ON DATABASE " + db, "USAGE ON SCHEMA " + db + ".other", "USAGE ON SCHEMA " + db + ".public",
			"SELECT ON " + db + ".other.secret", "UPDATE ON " + db + ".public.orders"}},
		{"system schema", []string{"pg:select %s.pg_catalog.*"}, []string{"CONNECT ON DATABASE " + db}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sc, err := scope.Parse(fmtAll(tc.stmts, db))
			if err != nil {
				t.Fatal(err)
			}
			got, err := m.Plan(testCtx(t), sc)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(privStrings(got), tc.want) {
				t.Errorf("plan\n got %q\nwant %q", privStrings(got), tc.want)
			}
		})
	}
}

func fmtAll(stmts []string, db string) []string {
	out := make([]string, len(stmts))
	for i, s := range stmts {
		out[i] = strings.ReplaceAll(s, "%s", db)
	}
	return out
}

// TestPrefixAndQuoting: a "*" pattern reaches tables whose names need
// quoting, including one that reads like an injection; each is granted as
// a name, and nothing in it runs.
func TestPrefixAndQuoting(t *testing.T) {
	m := newManager(t)
	g := newGrant(t, "star", time.Hour, "pg:select %s.public.*")
	r, err := m.Ensure(testCtx(t), g)
	if err != nil {
		t.Fatal(err)
	}
	if ps := privStrings(r.Privileges); !slices.Contains(ps, `SELECT ON `+env.db+`.public.we"ird`) ||
		!slices.Contains(ps, `SELECT ON `+env.db+`.public.x"; DROP TABLE customers; --`) {
		t.Fatalf("privileges %q lack the quoted tables", ps)
	}
	c := connectAs(t, r)
	check(t, c, `SELECT * FROM "we""ird"`, "")
	check(t, c, `SELECT * FROM "x""; DROP TABLE customers; --"`, "")
	check(t, c, `SELECT * FROM customers`, "") // still there
	check(t, c, `SELECT * FROM other.secret`, denied)
	check(t, c, `INSERT INTO "we""ird" VALUES (1)`, denied)

	pg := newGrant(t, "prefix", time.Hour, "pg:select %s.public.ev*")
	pr, err := m.Ensure(testCtx(t), pg)
	if err != nil {
		t.Fatal(err)
	}
	pc := connectAs(t, pr)
	check(t, pc, "SELECT * FROM events", "")
	check(t, pc, "SELECT * FROM events_archive", "")
	check(t, pc, "SELECT * FROM customers", denied)
}

// TestHostileScopeNames feeds names the scope grammar would refuse (a
// Scope built by hand skips it): they must match nothing and run nothing.
func TestHostileScopeNames(t *testing.T) {
	m := newManager(t)
	db := need(t).db
	for _, res := range []string{
		db + `.public.customers"; DROP TABLE orders; --`,
		db + `.public"; DROP TABLE orders; --.customers`,
		db + `.public.customers' OR '1'='1`,
		db + `.public.%`,
		db + `.public._ustomers`,
	} {
		sc := scope.Scope{{Actions: []string{"pg:select"}, Resource: res}}
		privs, notes, err := m.Explain(testCtx(t), sc)
		if err != nil {
			t.Fatalf("%s: %v", res, err)
		}
		if len(privs) != 1 || len(notes) != 1 {
			t.Errorf("%s: privileges %q notes %q; want only CONNECT and a note", res, privStrings(privs), notes)
		}
	}
	var n int
	if err := superConn(t, db).QueryRow(testCtx(t), "SELECT count(*) FROM orders").Scan(&n); err != nil || n != 1 {
		t.Fatalf("orders: %d rows, %v", n, err)
	}
	g := newGrant(t, "hostile", time.Hour, "pg:select %s.public.customers")
	g.ID = `g_x"; DROP ROLE postgres; --`
	if _, err := m.Ensure(testCtx(t), g); err == nil {
		t.Fatal("Ensure accepted a grant id that is not g_[a-z0-9_]+")
	}
}

// TestAdminCannotGrant: a table the admin neither owns nor holds WITH GRANT
// OPTION fails the whole Ensure with the table named, and leaves no role.
func TestAdminCannotGrant(t *testing.T) {
	m := newManager(t)
	g := newGrant(t, "locked", time.Hour, "pg:select %s.public.customers", "pg:select %s.locked.*")
	_, err := m.Ensure(testCtx(t), g)
	var ge *GrantError
	if !errors.As(err, &ge) || len(ge.Missing) != 1 {
		t.Fatalf("Ensure: %v; want a GrantError with one missing privilege", err)
	}
	msg := err.Error()
	for _, want := range []string{env.admin, "SELECT ON " + env.db + ".locked.root_only", "WITH GRANT OPTION"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not mention %q", msg, want)
		}
	}
	if roleExists(t, RoleName(g.ID)) {
		t.Fatal("a failed Ensure left its role behind")
	}
	// Granting the admin the privilege WITH GRANT OPTION is enough.
	if _, err := superConn(t, env.db).Exec(testCtx(t), "GRANT SELECT ON locked.root_only TO "+env.admin+" WITH GRANT OPTION"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		superConn(t, env.db).Exec(testCtx(t), "REVOKE ALL ON locked.root_only FROM "+env.admin+" CASCADE")
	})
	r, err := m.Ensure(testCtx(t), g)
	if err != nil {
		t.Fatal(err)
	}
	check(t, connectAs(t, r), "SELECT * FROM locked.root_only", "")
}

func TestEnsureRefusesEndedGrant(t *testing.T) {
	m := newManager(t)
	g := newGrant(t, "ended", time.Hour, "pg:select %s.public.customers")
	g.End("revoked")
	if _, err := m.Ensure(testCtx(t), g); err == nil {
		t.Fatal("Ensure made a role for an ended grant")
	}
	exp := newGrant(t, "expired", -time.Second, "pg:select %s.public.customers")
	if _, err := m.Ensure(testCtx(t), exp); err == nil {
		t.Fatal("Ensure made a role for an expired grant")
	}
	if roleExists(t, RoleName(g.ID)) || roleExists(t, RoleName(exp.ID)) {
		t.Fatal("role exists for a grant that is not live")
	}
}

func TestNewRequiresCreateRole(t *testing.T) {
	e := need(t)
	weak := "airlock_pgroles_weak_" + e.run
	su := superConn(t, "")
	if _, err := su.Exec(testCtx(t), "CREATE ROLE "+weak+" LOGIN"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { superConn(t, "").Exec(testCtx(t), "DROP ROLE "+weak) })
	dsn, _ := withUserDB(e.superDSN, weak, e.db)
	m, err := New(testCtx(t), dsn, nil)
	if err == nil {
		m.Close()
		t.Fatal("New accepted an admin without CREATEROLE")
	}
	if !strings.Contains(err.Error(), "CREATEROLE") {
		t.Fatalf("error %q does not say CREATEROLE is missing", err)
	}
	if _, err := New(testCtx(t), "postgres://u:hunter2@[bad", nil); err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("bad DSN: %v", err)
	}
	if m := newManager(t); m.Database() != e.db || m.Admin() != e.admin {
		t.Fatalf("Database %q Admin %q", m.Database(), m.Admin())
	}
}

// TestRowFunctionsReported: a function outside pg_catalog whose one
// required argument is a row is reported (Role.RowFunctions), since
// PostgreSQL calls it by attribute notation ("c.f"), with no call in the
// statement's text; one the role may not execute is not.
func TestRowFunctionsReported(t *testing.T) {
	need(t)
	ctx := testCtx(t)
	su := superConn(t, env.db)
	t.Cleanup(func() {
		su.Exec(context.Background(), `DROP FUNCTION IF EXISTS public.touch(customers, int)`)
	})
	if _, err := su.Exec(ctx, `CREATE FUNCTION public.touch(c customers, n int DEFAULT 1) RETURNS int
		LANGUAGE sql AS 'SELECT 1'`); err != nil {
		t.Fatal(err)
	}
	m := newManager(t)
	for i, tc := range []struct {
		setup string
		want  bool
	}{
		{"", true},
		{"REVOKE EXECUTE ON FUNCTION public.touch(customers, int) FROM PUBLIC", false},
	} {
		if tc.setup != "" {
			if _, err := su.Exec(ctx, tc.setup); err != nil {
				t.Fatal(err)
			}
		}
		name := fmt.Sprintf("rowfn%d", i)
		r, err := m.Ensure(ctx, newGrant(t, name, time.Hour, "pg:select %s.public.customers"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { m.Drop(context.Background(), grantID(name)) })
		if r.RowFunctions != tc.want {
			t.Errorf("after %q: RowFunctions %v, want %v", tc.setup, r.RowFunctions, tc.want)
		}
	}
}

// TestShadowsBuiltinsReported: a function outside pg_catalog named like a
// built-in is reported (Role.ShadowsBuiltins), since an unqualified call
// of the built-in may resolve to it: like any of pg_catalog's by default,
// like one of WithBuiltinNames' when given.
func TestShadowsBuiltinsReported(t *testing.T) {
	need(t)
	ctx := testCtx(t)
	su := superConn(t, env.db)
	t.Cleanup(func() {
		su.Exec(context.Background(), `DROP FUNCTION IF EXISTS public.pg_sleep(text); DROP FUNCTION IF EXISTS public.lower(varchar)`)
	})
	if _, err := su.Exec(ctx, `CREATE FUNCTION public.pg_sleep(text) RETURNS int LANGUAGE sql AS 'SELECT 1'`); err != nil {
		t.Fatal(err)
	}
	all := newManager(t)
	named, err := New(ctx, env.adminDSN, slog.New(slog.DiscardHandler), WithBuiltinNames([]string{"lower", "upper"}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(named.Close)
	for i, tc := range []struct {
		setup string
		m     *Manager
		want  bool
	}{
		{"", all, true},
		{"", named, false},
		{"CREATE FUNCTION public.lower(varchar) RETURNS text LANGUAGE sql AS 'SELECT 1'", named, true},
		{"REVOKE EXECUTE ON FUNCTION public.lower(varchar) FROM PUBLIC", named, false},
	} {
		if tc.setup != "" {
			if _, err := su.Exec(ctx, tc.setup); err != nil {
				t.Fatal(err)
			}
		}
		name := fmt.Sprintf("shadow%d", i)
		r, err := tc.m.Ensure(ctx, newGrant(t, name, time.Hour, "pg:select %s.public.customers"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { tc.m.Drop(context.Background(), grantID(name)) })
		if r.ShadowsBuiltins != tc.want {
			t.Errorf("case %d (%q): ShadowsBuiltins %v, want %v", i, tc.setup, r.ShadowsBuiltins, tc.want)
		}
	}
}
