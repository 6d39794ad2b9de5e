package pggw

import (
	"fmt"
	"github.com/airlock-dev/airlock/internal/testenv"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/gateway"
	"github.com/airlock-dev/airlock/internal/tlscert"
)

func needBinary(t *testing.T, name string) string {
	t.Helper()
	return testenv.Tool(t, name, "install it with: apt-get install postgresql-client")
}

// clientEnv is what `airlock credentials --format env` gives a client.
func (e *env) clientEnv(g *gateway.Grant, sslmode string, extra ...string) []string {
	env := append(os.Environ(),
		"PGHOST=127.0.0.1", "PGPORT="+strconv.Itoa(e.addr.Port), "PGUSER="+g.CredentialID,
		"PGPASSWORD="+g.Secret, "PGDATABASE="+e.db, "PGSSLMODE="+sslmode, "PGCONNECT_TIMEOUT=10")
	return append(env, extra...)
}

func TestPsql(t *testing.T) {
	psql := needBinary(t, "psql")
	tlsDir := t.TempDir()
	cfg, caPath, err := tlscert.Ensure(tlsDir, nil)
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, func(o *Options) { o.TLS = cfg })
	g := e.grant(time.Hour, "pg:select %s.public.customers")
	modes := []struct {
		name  string
		mode  string
		extra []string
		tls   bool
	}{
		{"plaintext", "disable", nil, false},
		{"require", "require", nil, true},
		{"verify-full", "verify-full", []string{"PGSSLROOTCERT=" + caPath}, true},
	}
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			cmd := exec.Command(psql, "-X", "-At", "-v", "ON_ERROR_STOP=1",
				"-c", "select count(*) from customers")
			cmd.Env = e.clientEnv(g, m.mode, m.extra...)
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("psql: %v\n%s", err, out)
			}
			lines := strings.Fields(string(out))
			if len(lines) < 1 || lines[0] != "50" {
				t.Fatalf("psql output %q, want 50", out)
			}
			// A statement outside the scope fails with PostgreSQL's own error.
			cmd = exec.Command(psql, "-X", "-At", "-v", "ON_ERROR_STOP=1", "-c", "select * from secrets")
			cmd.Env = e.clientEnv(g, m.mode, m.extra...)
			out, err = cmd.CombinedOutput()
			if err == nil || !strings.Contains(string(out), "permission denied for table secrets") {
				t.Fatalf("psql outside scope: err %v, output %q", err, out)
			}
		})
	}
	// libpq refuses a plaintext answer under require and verify-full, so
	// those two ran over the gateway's TLS.
	if n := len(e.auth.Sessions()); n != 6 {
		t.Fatalf("%d sessions, want 6", n)
	}
	// psql's wrong password: the same message PostgreSQL gives.
	cmd := exec.Command(psql, "-X", "-At", "-c", "select 1")
	cmd.Env = append(e.clientEnv(g, "require"), "PGPASSWORD=not-the-secret")
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), fmt.Sprintf("password authentication failed for user %q", g.CredentialID)) {
		t.Fatalf("psql with a wrong password: %v %q", err, out)
	}
}

var tpsRe = regexp.MustCompile(`number of transactions actually processed: (\d+)`)

func TestPgbench(t *testing.T) {
	pgbench := needBinary(t, "pgbench")
	e := newEnv(t, nil)
	// pgbench -i needs CREATE on the database: initialise as admin.
	init := exec.Command(pgbench, "-i", "-q", "-s", "1", e.dbDSN)
	if out, err := init.CombinedOutput(); err != nil {
		t.Fatalf("pgbench -i: %v\n%s", err, out)
	}
	for _, mode := range []string{"simple", "prepared"} {
		t.Run(mode, func(t *testing.T) {
			g := e.grant(time.Hour, "pg:select %s.public.pgbench_*")
			cmd := exec.Command(pgbench, "-S", "-n", "-T", "3", "-c", "4", "-j", "2", "-M", mode)
			cmd.Env = e.clientEnv(g, "disable")
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("pgbench: %v\n%s", err, out)
			}
			m := tpsRe.FindSubmatch(out)
			if m == nil {
				t.Fatalf("no transaction count in pgbench output:\n%s", out)
			}
			ran, _ := strconv.Atoi(string(m[1]))
			if ran < 100 {
				t.Fatalf("only %d transactions:\n%s", ran, out)
			}
			e.settle(g)
			var selects, results int
			for _, c := range e.auth.Calls(g.ID) {
				if c.Kind == "request" && strings.Contains(c.Params["statement"], "FROM pgbench_accounts WHERE aid =") {
					selects++
					if c.Action != "pg:select" || (mode == "prepared" && !strings.HasPrefix(c.Params["parameters"], "$1='")) {
						t.Fatalf("bad record %+v", c)
					}
				}
				if c.Kind == "result" && c.Rows == 1 && c.Error == "" && c.Status == "SELECT 1" {
					results++
				}
			}
			// Every transaction pgbench counts was recorded; a client's last
			// one may be cut by -T and not counted.
			if selects < ran || selects > ran+4 {
				t.Fatalf("pgbench ran %d transactions, the recording holds %d selects", ran, selects)
			}
			if results < ran {
				t.Fatalf("%d results recorded for %d transactions", results, ran)
			}
			t.Logf("pgbench -M %s through the gateway: %d transactions in 3s, all recorded", mode, ran)
		})
	}
}

// TestStartupOptionsDroppedWithWarning: the startup parameter options
// (PGOPTIONS, "-c name=value") is not passed upstream, so that settings go
// through SQL and its record; a client that asked for some is told so,
// rather than left to believe a statement_timeout or
// default_transaction_read_only is in force.
func TestStartupOptionsDroppedWithWarning(t *testing.T) {
	psql := needBinary(t, "psql")
	e := newEnv(t, nil)
	g := e.grant(time.Hour, "pg:select %s.public.customers")
	cmd := exec.Command(psql, "-X", "-At", "-c", "show statement_timeout")
	cmd.Env = e.clientEnv(g, "disable", "PGOPTIONS=-c statement_timeout=1234")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("psql: %v %q", err, out)
	}
	if s := string(out); !strings.Contains(s, "WARNING:  "+optionsIgnored) || !strings.HasSuffix(s, "\n0\n") {
		t.Fatalf("psql with PGOPTIONS printed %q, want the warning and the server's own timeout", s)
	}
	// Without options, no warning.
	cmd = exec.Command(psql, "-X", "-At", "-c", "select 1")
	cmd.Env = e.clientEnv(g, "disable")
	if out, err := cmd.CombinedOutput(); err != nil || string(out) != "1\n" {
		t.Fatalf("psql without PGOPTIONS: %v %q", err, out)
	}
}
