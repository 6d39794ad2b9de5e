package e2e

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/airlock-dev/airlock/internal/testenv"
)

// pgFixture is a database owned by a non-superuser admin role, as the
// quickstart's airlock_admin: CREATEROLE, owning the tables it grants on.
type pgFixture struct {
	db, admin, upstream string
	// grants are the grant ids whose roles the cleanup drops, should the
	// gateway have left any (an active grant's role outlives `serve`).
	grants *[]string
}

func newPGFixture(t *testing.T) pgFixture {
	t.Helper()
	dsn := testenv.PostgresDSN(t)
	ctx := context.Background()
	b := make([]byte, 4)
	rand.Read(b)
	suffix := hex.EncodeToString(b)
	f := pgFixture{db: "orders_e2e_" + suffix, admin: "airlock_admin_" + suffix, grants: new([]string)}
	su, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("connecting to %s: %v", dsn, err)
	}
	defer su.Close(ctx)
	for _, q := range []string{
		"CREATE ROLE " + f.admin + " LOGIN CREATEROLE",
		"CREATE DATABASE " + f.db + " OWNER " + f.admin,
	} {
		if _, err := su.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	t.Cleanup(func() {
		ctx := context.Background()
		su, err := pgx.Connect(ctx, dsn)
		if err != nil {
			return
		}
		defer su.Close(ctx)
		su.Exec(ctx, "DROP DATABASE IF EXISTS "+f.db+" WITH (FORCE)")
		// Also the roles of grants the test did not note (a test that
		// failed before noting one): every role made for f.db.
		if err := testenv.DropGrantRolesOfDatabase(ctx, dsn, f.db); err != nil {
			t.Errorf("dropping the grant roles of %s: %v", f.db, err)
		}
		for _, g := range *f.grants {
			su.Exec(ctx, "DROP ROLE IF EXISTS "+pgx.Identifier{"airlock_" + g}.Sanitize())
		}
		su.Exec(ctx, "DROP ROLE IF EXISTS "+f.admin)
	})
	f.upstream = "postgres://" + f.admin + "@127.0.0.1:5432/" + f.db + "?sslmode=disable"
	adm, err := pgx.Connect(ctx, f.upstream)
	if err != nil {
		t.Fatal(err)
	}
	defer adm.Close(ctx)
	for _, q := range []string{
		"CREATE TABLE customers (id int PRIMARY KEY, name text)",
		"INSERT INTO customers VALUES (1, 'ada'), (2, 'grace'), (3, 'edsger')",
		"CREATE TABLE payments (id int PRIMARY KEY, card text)",
		"INSERT INTO payments VALUES (1, '4111-1111')",
	} {
		if _, err := adm.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	return f
}

func psqlRun(t *testing.T, psql string, env []string, args ...string) result {
	t.Helper()
	var clean []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PG") {
			clean = append(clean, kv)
		}
	}
	return runCmd(t, append(clean, env...), psql, append([]string{"-X", "-A", "-t", "-v", "ON_ERROR_STOP=1"}, args...)...)
}

// TestPostgresWalkthrough: an agent reads a table through the PostgreSQL
// gateway with the real psql, PostgreSQL itself refuses a table outside
// the scope, every statement is recorded, and expiry cuts an open session.
func TestPostgresWalkthrough(t *testing.T) {
	psql := testenv.Tool(t, "psql", "install it with: apt-get install postgresql-client")
	f := newPGFixture(t)
	pol := `
@id("agents-read-customers")
@approval("auto")
permit (principal in Group::"sre-team", action == Action::"pg:select", resource == Target::"orders-db")
when { context.duration_seconds <= 900 };
`
	e := writeSetupWith(t, setup{pgListen: testenv.FreeAddr(t), pgUpstream: f.upstream, policies: pol})
	e.start(t)

	scopeStmt := "pg:select " + f.db + ".public.customers"
	id := grantID(t, mustOK(t, airlock(t, e.addr, e.bot.Key, "request", "orders-db", "--allow", scopeStmt, "--for", "5m", "--reason", "count customers"), "request"))
	*f.grants = append(*f.grants, id)
	creds := credsEnv(t, mustOK(t, airlock(t, e.addr, e.bot.Key, "credentials", id), "credentials"))
	if envValue(creds, "PGDATABASE") != f.db || envValue(creds, "PGUSER") == f.admin || envValue(creds, "PGPASSWORD") == "" {
		t.Fatalf("credentials env: %v", creds)
	}
	if got := mustOK(t, psqlRun(t, psql, creds, "-c", "select count(*) from customers"), "select inside the scope"); strings.TrimSpace(got) != "3" {
		t.Fatalf("count = %q", got)
	}
	denied := psqlRun(t, psql, creds, "-c", "select card from payments")
	if denied.code == 0 || !strings.Contains(denied.stderr, "permission denied for table payments") {
		t.Fatalf("outside the scope: exit %d, stderr %s", denied.code, denied.stderr)
	}
	escalate := psqlRun(t, psql, creds, "-c", "set role "+f.admin+"; select card from payments")
	if escalate.code == 0 {
		t.Fatalf("SET ROLE to the admin worked: %s", escalate.stdout)
	}
	wrong := psqlRun(t, psql, append(creds, "PGPASSWORD=wrong"), "-c", "select 1")
	if wrong.code == 0 || !strings.Contains(wrong.stderr, "password authentication failed") {
		t.Fatalf("wrong password: exit %d, stderr %s", wrong.code, wrong.stderr)
	}

	rec := mustOK(t, airlock(t, e.addr, e.alice.Key, "session", "show", id), "session show")
	// Each statement's result is printed on the line after it.
	for stmt, result := range map[string]string{"select count(*) from customers": "→ SELECT 1, 1 rows", "select card from payments": "error: 42501"} {
		lines := strings.Split(rec, "\n")
		i := slices.IndexFunc(lines, func(l string) bool { return strings.Contains(l, stmt) })
		if i < 0 || i+1 == len(lines) || !strings.Contains(lines[i+1], result) {
			t.Errorf("the transcript does not show %q under %q:\n%s", result, stmt, rec)
		}
	}
	for _, want := range []string{"select count(*) from customers", "select card from payments"} {
		if !strings.Contains(rec, want) {
			t.Errorf("recording lacks %q:\n%s", want, rec)
		}
	}
	if strings.Contains(rec, envValue(creds, "PGPASSWORD")) {
		t.Fatal("the grant's secret is in the recording")
	}

	// Expiry cuts an open session: a 3-second grant, a query that would run 20 s.
	short := grantID(t, mustOK(t, airlock(t, e.addr, e.bot.Key, "request", "orders-db", "--allow", scopeStmt, "--for", "3s", "--reason", "short"), "request short"))
	*f.grants = append(*f.grants, short)
	screds := credsEnv(t, mustOK(t, airlock(t, e.addr, e.bot.Key, "credentials", short), "credentials short"))
	start := time.Now()
	cut := psqlRun(t, psql, screds, "-c", "select pg_sleep(20)")
	if cut.code == 0 || time.Since(start) > 12*time.Second || !strings.Contains(cut.stderr, short) {
		t.Fatalf("expiry did not cut the session: exit %d after %s, stderr %s", cut.code, time.Since(start), cut.stderr)
	}

	// airlock exec with psql, as in the issue.
	ex := airlock(t, e.addr, e.bot.Key, "exec", "orders-db", "--allow", scopeStmt, "--for", "5m", "--reason", "exec count", "--",
		psql, "-X", "-A", "-t", "-c", "select count(*) from customers")
	if ex.code != 0 || strings.TrimSpace(ex.stdout) != "3" {
		t.Fatalf("exec: exit %d stdout %q stderr %s", ex.code, ex.stdout, ex.stderr)
	}

	// The caller's own libpq variables that would send psql somewhere else
	// with the grant's password (PGHOSTADDR over PGHOST; a service that
	// sets host and port before PGHOST and PGPORT are read) are not passed
	// on: psql still reaches the gateway. Before, it dialled 127.0.0.9.
	svc := filepath.Join(t.TempDir(), "pg_service.conf")
	if err := os.WriteFile(svc, []byte("[elsewhere]\nhost=127.0.0.9\nport=1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, extra := range [][]string{{"PGHOSTADDR=127.0.0.9"}, {"PGSERVICE=elsewhere", "PGSERVICEFILE=" + svc}} {
		env := append(os.Environ(), "AIRLOCK_ADDR="+e.addr, "AIRLOCK_TOKEN="+e.bot.Key)
		ex := runCmd(t, append(env, extra...), airlockBin, "exec", "orders-db", "--allow", scopeStmt, "--for", "5m",
			"--reason", "exec with a rerouting environment", "--", psql, "-X", "-A", "-t", "-c", "select count(*) from customers")
		if ex.code != 0 || strings.TrimSpace(ex.stdout) != "3" {
			t.Fatalf("exec with %v: exit %d stdout %q stderr %s", extra, ex.code, ex.stdout, ex.stderr)
		}
	}

	if r := airlock(t, e.addr, e.alice.Key, "audit", "verify"); r.code != 0 {
		t.Fatalf("audit verify: %s %s", r.stdout, r.stderr)
	}
	if strings.Contains(e.stderr.String(), envValue(creds, "PGPASSWORD")) {
		t.Fatal("the server logged a grant secret")
	}
}
