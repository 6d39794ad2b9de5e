package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/airlock-dev/airlock/internal/testenv"
	"github.com/airlock-dev/airlock/internal/tlscert"
)

// TestPostgresGatewayOwnCertificateIsChecked: with the operator's own
// certificate (tls.cert_file) and a public name for the PostgreSQL
// gateway, credentials tell libpq to check the certificate and its name
// against the client machine's trusted roots (PGSSLMODE=verify-full,
// PGSSLROOTCERT the roots' file), as the AWS side's https does. They said
// PGSSLMODE=require, which checks nothing: a relay with any certificate
// (here one from another CA) got the grant's session.
func TestPostgresGatewayOwnCertificateIsChecked(t *testing.T) {
	psql := testenv.Tool(t, "psql", "install it with: apt-get install postgresql-client")
	f := newPGFixture(t)
	issuer, other := t.TempDir(), t.TempDir()
	if _, _, err := tlscert.Ensure(issuer, []string{"pg.airlock.test"}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := tlscert.Ensure(other, []string{"pg.airlock.test"}); err != nil {
		t.Fatal(err)
	}
	pg := testenv.FreeAddr(t)
	_, port, _ := strings.Cut(pg, ":")
	e := writeSetupWith(t, setup{pgListen: pg, pgUpstream: f.upstream, policies: `
@id("agents-read-customers-tls")
@approval("auto")
permit (principal in Group::"sre-team", action == Action::"pg:select", resource == Target::"orders-db")
when { context.duration_seconds <= 900 };
`})
	cfg, err := os.ReadFile(e.cfg)
	if err != nil {
		t.Fatal(err)
	}
	s := strings.Replace(string(cfg), "\n  postgres: "+pg, "\n  postgres: "+pg+"\n  public:\n    postgres: pg.airlock.test:"+port, 1)
	s += "tls:\n  cert_file: " + filepath.Join(issuer, "gateway.pem") + "\n  key_file: " + filepath.Join(issuer, "gateway.key") + "\n"
	write(t, e.cfg, s)
	e.start(t)

	id := grantID(t, mustOK(t, airlock(t, e.addr, e.bot.Key, "request", "orders-db", "--allow", "pg:select "+f.db+".public.customers",
		"--for", "5m", "--reason", "count customers over TLS"), "request"))
	*f.grants = append(*f.grants, id)
	// The agent's machine trusts the issuer (SSL_CERT_FILE stands in for
	// its system store), then only another CA.
	creds := func(roots string) []string {
		env := append(os.Environ(), "AIRLOCK_ADDR="+e.addr, "AIRLOCK_TOKEN="+e.bot.Key, "SSL_CERT_FILE="+roots)
		return credsEnv(t, mustOK(t, runCmd(t, env, airlockBin, "credentials", id), "credentials"))
	}
	trusted := creds(filepath.Join(issuer, tlscert.CAFile))
	if envValue(trusted, "PGSSLMODE") != "verify-full" || envValue(trusted, "PGHOST") != "pg.airlock.test" ||
		envValue(trusted, "PGSSLROOTCERT") != filepath.Join(issuer, tlscert.CAFile) {
		t.Fatalf("credentials: %v", trusted)
	}
	// pg.airlock.test resolves nowhere: PGHOSTADDR dials the listener
	// while libpq checks the certificate against PGHOST.
	if got := mustOK(t, psqlRun(t, psql, append(trusted, "PGHOSTADDR=127.0.0.1"), "-c", "select count(*) from customers"), "psql, certificate trusted"); strings.TrimSpace(got) != "3" {
		t.Fatalf("count = %q", got)
	}
	relayed := psqlRun(t, psql, append(creds(filepath.Join(other, tlscert.CAFile)), "PGHOSTADDR=127.0.0.1"), "-c", "select count(*) from customers")
	if relayed.code == 0 || !strings.Contains(relayed.stderr, "certificate verify failed") {
		t.Fatalf("a certificate from a CA the client does not trust was accepted: exit %d, stderr %s", relayed.code, relayed.stderr)
	}
	wrongName := psqlRun(t, psql, append(trusted, "PGHOST=other.airlock.test", "PGHOSTADDR=127.0.0.1"), "-c", "select 1")
	if wrongName.code == 0 || !strings.Contains(wrongName.stderr, "does not match host name") {
		t.Fatalf("a certificate for another name was accepted: exit %d, stderr %s", wrongName.code, wrongName.stderr)
	}
}
