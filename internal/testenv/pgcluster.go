package testenv

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"testing"
)

// PrivatePostgres is a PostgreSQL cluster of a test's own (initdb in a
// temporary directory, its own loopback port), for tests that stop or
// restart the database: the machine's shared PostgreSQL is never touched.
type PrivatePostgres struct {
	// DSN is the superuser's (postgres, trust auth) DSN.
	DSN  string
	bin  string
	dir  string
	port int
}

// StartPrivatePostgres creates and starts a private cluster, stopped and
// removed when t ends. It needs initdb and pg_ctl (Debian's
// postgresql package); as root it runs them as the postgres user (runuser).
// A missing tool skips the test, or fails it with CI set.
func StartPrivatePostgres(t testing.TB) *PrivatePostgres {
	t.Helper()
	bins, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	sort.Strings(bins)
	if len(bins) == 0 {
		missing(t, "initdb is not installed (apt-get install postgresql)")
	}
	p := &PrivatePostgres{bin: filepath.Dir(bins[len(bins)-1])}
	dir, err := os.MkdirTemp("", "airlock-pgcluster-")
	if err != nil {
		t.Fatal(err)
	}
	p.dir = dir
	t.Cleanup(func() {
		_ = p.run("pg_ctl", "-D", p.data(), "-m", "immediate", "-w", "stop")
		os.RemoveAll(dir)
	})
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			missing(t, "running as root without a postgres user to run the cluster as")
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p.port = ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	if err := p.run("initdb", "-D", p.data(), "-A", "trust", "-U", "postgres", "--no-sync"); err != nil {
		t.Fatalf("initdb: %v", err)
	}
	p.DSN = fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", p.port)
	p.Start(t)
	return p
}

func (p *PrivatePostgres) data() string { return filepath.Join(p.dir, "data") }

// run runs a PostgreSQL program, as the postgres user when root.
func (p *PrivatePostgres) run(prog string, args ...string) error {
	path := filepath.Join(p.bin, prog)
	var cmd *exec.Cmd
	if os.Geteuid() == 0 {
		cmd = exec.Command("runuser", append([]string{"-u", "postgres", "--", path}, args...)...)
	} else {
		cmd = exec.Command(path, args...)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %w: %s", prog, err, out)
	}
	return nil
}

// Start starts the cluster and waits until it accepts connections.
func (p *PrivatePostgres) Start(t testing.TB) {
	t.Helper()
	opts := fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1", p.port, p.dir)
	if err := p.run("pg_ctl", "-D", p.data(), "-o", opts, "-l", filepath.Join(p.dir, "log"), "-w", "-t", "30", "start"); err != nil {
		t.Fatalf("starting the private PostgreSQL: %v", err)
	}
}

// Stop stops the cluster: mode "fast" (roll back open transactions, end
// sessions, clean shutdown) or "immediate" (like a crash).
func (p *PrivatePostgres) Stop(t testing.TB, mode string) {
	t.Helper()
	if err := p.run("pg_ctl", "-D", p.data(), "-m", mode, "-w", "-t", "30", "stop"); err != nil {
		t.Fatalf("stopping the private PostgreSQL: %v", err)
	}
}

// RequirePasswords makes every role but the superuser (postgres) and the
// trusted ones log in over TCP with SCRAM-SHA-256, as a production server's
// pg_hba.conf does, where the cluster starts with trust for everyone. The
// superuser and the trusted roles (a test's passwordless admin) keep
// trust, for the tests' own set-up.
func (p *PrivatePostgres) RequirePasswords(t testing.TB, trusted ...string) {
	t.Helper()
	hba := "local all all trust\n"
	for _, r := range append([]string{"postgres"}, trusted...) {
		hba += "host all " + r + " 127.0.0.1/32 trust\n"
	}
	hba += "host all all 127.0.0.1/32 scram-sha-256\n"
	path := filepath.Join(p.data(), "pg_hba.conf")
	if err := os.WriteFile(path, []byte(hba), 0o600); err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Fatal(err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(path, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.run("pg_ctl", "-D", p.data(), "reload"); err != nil {
		t.Fatalf("reloading the private PostgreSQL: %v", err)
	}
}
