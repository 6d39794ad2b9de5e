package e2e

import (
	"context"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/airlock-dev/airlock/internal/testenv"
)

// TestForbidReloadCutsOpenPostgresSession: a forbid added during an
// incident and loaded with SIGHUP stops access already granted. Through
// the real airlock binary, the PostgreSQL gateway and the real psql: a
// session open under an active grant (a query running) is cut with FATAL
// once the forbid is loaded, and `airlock grant show` says the policy set
// revoked it, naming the forbid. Before, the grant and its session ran on
// until the grant expired.
func TestForbidReloadCutsOpenPostgresSession(t *testing.T) {
	psql := testenv.Tool(t, "psql", "install it with: apt-get install postgresql-client")
	f := newPGFixture(t)
	e := writeSetupWith(t, setup{pgListen: testenv.FreeAddr(t), pgUpstream: f.upstream, policies: `
@id("agents-read-customers")
@approval("auto")
permit (principal in Group::"sre-team", action == Action::"pg:select", resource == Target::"orders-db");
`})
	e.start(t)

	id := grantID(t, mustOK(t, airlock(t, e.addr, e.bot.Key, "request", "orders-db", "--allow", "pg:select "+f.db+".public.customers",
		"--for", "10m", "--reason", "count customers"), "request"))
	*f.grants = append(*f.grants, id)
	creds := credsEnv(t, mustOK(t, airlock(t, e.addr, e.bot.Key, "credentials", id), "credentials"))
	done := make(chan result, 1)
	go func() { done <- psqlRun(t, psql, creds, "-c", "select pg_sleep(60)") }()

	// Wait until the query runs upstream: the session is open.
	ctx := context.Background()
	su, err := pgx.Connect(ctx, testenv.PostgresDSN(t))
	if err != nil {
		t.Fatal(err)
	}
	defer su.Close(ctx)
	for i := 0; ; i++ {
		var n int
		if err := su.QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND query LIKE 'select pg_sleep(60)%'", f.db).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			break
		}
		if i == 200 {
			t.Fatalf("the session's query never ran upstream; server log:\n%s", e.stderr)
		}
		time.Sleep(50 * time.Millisecond)
	}

	write(t, filepath.Join(e.dir, "policies", "incident.cedar"), `@id("incident-freeze-orders")
forbid (principal, action, resource == Target::"orders-db");
`)
	start := time.Now()
	if err := e.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	var cut result
	select {
	case cut = <-done:
	case <-time.After(30 * time.Second):
		t.Fatalf("the open session was not cut within 30s of the forbid's reload; server log:\n%s", e.stderr)
	}
	if cut.code == 0 || !strings.Contains(cut.stderr, "FATAL") {
		t.Fatalf("psql after the forbid: exit %d after %s, stderr %s", cut.code, time.Since(start), cut.stderr)
	}
	t.Logf("session cut %s after SIGHUP: %s", time.Since(start).Round(time.Millisecond), strings.TrimSpace(cut.stderr))

	show := mustOK(t, airlock(t, e.addr, e.alice.Key, "grant", "show", id), "grant show")
	if !strings.Contains(show, "revoked") || !strings.Contains(show, "by policy") || !strings.Contains(show, `"incident-freeze-orders"`) {
		t.Fatalf("grant show does not say the policy set revoked it:\n%s", show)
	}
	if again := psqlRun(t, psql, creds, "-c", "select count(*) from customers"); again.code == 0 {
		t.Fatalf("the revoked grant's credentials still work: %s", again.stdout)
	}
	if r := airlock(t, e.addr, e.alice.Key, "audit", "verify"); r.code != 0 {
		t.Fatalf("audit verify: %s %s", r.stdout, r.stderr)
	}
}
