package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/airlock-dev/airlock/bench/internal/benchkit"
)

// bouncerBin is Debian's PgBouncer (apt-get install pgbouncer).
const bouncerBin = "/usr/sbin/pgbouncer"

// bouncer is a running PgBouncer in session mode in front of the
// fixture's database.
type bouncer struct {
	cmd     *exec.Cmd
	client  pgEnv
	logPath string
}

// startBouncer writes an ini and a userlist for the admin role (trust
// auth, as the server itself uses), starts PgBouncer on a free loopback
// port and waits until it accepts connections.
//
// In session mode every client that sends a query holds a server
// connection until it disconnects, so the pool takes poolSize of them
// (pgbench's clients and a few more); a smaller pool would leave the
// clients beyond it waiting for ever.
func startBouncer(r *benchkit.Runner, f *fixture, maxClients, poolSize int) *bouncer {
	if _, err := os.Stat(bouncerBin); err != nil {
		r.Skipf("%s not found; install it with: apt-get install pgbouncer", bouncerBin)
	}
	dir := r.TempDir()
	// PgBouncer will not run as root; as nobody it must read its files.
	_ = os.Chmod(dir, 0o755)
	addr := benchkit.FreeAddr(r)
	_, port, _ := net.SplitHostPort(addr)
	ini := fmt.Sprintf(`[databases]
%s = host=%s port=%d dbname=%s user=%s

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = %s
unix_socket_dir =
auth_type = trust
auth_file = %s
pool_mode = session
default_pool_size = %d
max_client_conn = %d
ignore_startup_parameters = extra_float_digits
`, f.db, f.admin.Host, f.admin.Port, f.db, f.admin.User, port, filepath.Join(dir, "userlist.txt"), poolSize, maxClients)
	write := func(name, s string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(s), 0o644); err != nil {
			r.Fatal(err)
		}
	}
	write("userlist.txt", fmt.Sprintf("%q \"\"\n", f.admin.User))
	write("pgbouncer.ini", ini)
	args := []string{filepath.Join(dir, "pgbouncer.ini")}
	if os.Geteuid() == 0 {
		args = append([]string{"-u", "nobody"}, args...)
	}
	b := &bouncer{logPath: filepath.Join(dir, "pgbouncer.log")}
	logf, err := os.Create(b.logPath)
	if err != nil {
		r.Fatal(err)
	}
	b.cmd = exec.Command(bouncerBin, args...)
	b.cmd.Stdout, b.cmd.Stderr = logf, logf
	if err := benchkit.StartPeer(b.cmd); err != nil {
		logf.Close()
		r.Fatalf("starting pgbouncer: %v", err)
	}
	r.Cleanup(func() { b.stop(); logf.Close() })
	p, _ := strconv.Atoi(port)
	b.client = pgEnv{Host: "127.0.0.1", Port: p, User: f.admin.User, Database: f.db, SSLMode: f.admin.SSLMode}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		c, err := pgxConnect(ctx, b.client.dsn())
		cancel()
		if err == nil {
			c.Close(context.Background())
			return b
		}
		time.Sleep(100 * time.Millisecond)
	}
	r.Fatalf("pgbouncer did not come up:\n%s", b.logTail())
	return nil
}

func (b *bouncer) pid() int { return b.cmd.Process.Pid }

// stop ends PgBouncer with SIGTERM (its immediate shutdown: the run is
// over, no client is left to wait for) and kills it if it lingers.
func (b *bouncer) stop() {
	if b.cmd.ProcessState != nil {
		return
	}
	_ = b.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = b.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		_ = b.cmd.Process.Kill()
		<-done
	}
}

func (b *bouncer) logTail() string {
	s, _ := os.ReadFile(b.logPath)
	if len(s) > 4000 {
		s = s[len(s)-4000:]
	}
	return string(s)
}
