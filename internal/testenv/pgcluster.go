package testenv

import (
	"fmt"
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
	if _, err := initdbDir(); err != nil {
		missing(t, "%v", err)
	}
	if os.Geteuid() == 0 {
		if _, err := user.Lookup("postgres"); err != nil {
			missing(t, "running as root without a postgres user to run the cluster as")
		}
	}
	p, err := NewPrivatePostgres()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Remove)
	p.Start(t)
	return p
}

// NewPrivatePostgres creates a private cluster (initdb in a temporary
// directory, a free loopback port) without starting it, for programs
// other than tests (bench/pgbench); StartWith starts it and Remove stops
// and deletes it.
func NewPrivatePostgres() (*PrivatePostgres, error) {
	bin, err := initdbDir()
	if err != nil {
		return nil, err
	}
	p := &PrivatePostgres{bin: bin}
	dir, err := os.MkdirTemp("", "airlock-pgcluster-")
	if err != nil {
		return nil, err
	}
	p.dir = dir
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("running as root without a postgres user to run the cluster as: %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
	}
	if p.port, err = FreePort(); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	if err := p.run("initdb", "-D", p.data(), "-A", "trust", "-U", "postgres", "--no-sync"); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("initdb: %w", err)
	}
	p.DSN = fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", p.port)
	return p, nil
}

// initdbDir is the directory of the newest installed PostgreSQL's programs.
func initdbDir() (string, error) {
	bins, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	sort.Strings(bins)
	if len(bins) == 0 {
		return "", fmt.Errorf("initdb is not installed (apt-get install postgresql)")
	}
	return filepath.Dir(bins[len(bins)-1]), nil
}

// Remove stops the cluster (immediately) and deletes its directory.
func (p *PrivatePostgres) Remove() {
	_ = p.run("pg_ctl", "-D", p.data(), "-m", "immediate", "-w", "stop")
	os.RemoveAll(p.dir)
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
	if err := p.StartWith(); err != nil {
		t.Fatalf("starting the private PostgreSQL: %v", err)
	}
}

// StartWith starts the cluster with extra server settings ("name=value",
// each passed as -c) and waits until it accepts connections.
func (p *PrivatePostgres) StartWith(settings ...string) error {
	opts := fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1", p.port, p.dir)
	for _, s := range settings {
		opts += " -c " + s
	}
	return p.run("pg_ctl", "-D", p.data(), "-o", opts, "-l", filepath.Join(p.dir, "log"), "-w", "-t", "30", "start")
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
