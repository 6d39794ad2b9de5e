package pggw

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/testenv"
)

// benchClients is pgbench's -c: the project's benchmark runs 8 clients.
const benchClients = 8

var benchTPSRe = regexp.MustCompile(`tps = ([0-9.]+) \(without initial connection time\)`)

// BenchmarkRelay runs `pgbench -S` (8 clients, simple and prepared
// protocol) directly against PostgreSQL and through the in-process gateway,
// b.N statements in all. pgbench runs in its own process, so this process's
// CPU time (getrusage) is the gateway's: its relay, its recording into the
// in-memory fake authority, its garbage collection. The direct run's CPU is
// the harness's own noise floor. Where /usr/sbin/pgbouncer is installed, the
// same load also runs through PgBouncer in session mode, whose CPU is read
// from /proc, as the reference the gateway is held to. Metrics:
//
//	cpu-us/stmt  this process's user+system CPU per statement (connection
//	             set-up included; it is amortised over b.N)
//	stmts/s      pgbench's tps without its connection time
//	ratio        gateway stmts/s over direct stmts/s, same mode
//
// Wall-clock figures depend on what else the machine runs; compare
// cpu-us/stmt across -count runs. For example:
//
//	AIRLOCK_TEST_PG_DSN=postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable \
//	  go test -run '^$' -bench Relay -benchtime 40000x -count 5 ./internal/pggw/
func BenchmarkRelay(b *testing.B) {
	pgbench := testenv.Tool(b, "pgbench", "install it with: apt-get install postgresql-client")
	e := newEnv(b, nil)
	init := exec.Command(pgbench, "-i", "-q", "-s", "1", e.dbDSN)
	if out, err := init.CombinedOutput(); err != nil {
		b.Fatalf("pgbench -i: %v\n%s", err, out)
	}
	bouncerPID, bouncerDSN := startBouncer(b, e.dbDSN)
	direct := map[string]float64{}
	for _, mode := range []string{"simple", "prepared"} {
		b.Run("direct/"+mode, func(b *testing.B) {
			_, tps, cpu := runPgbench(b, pgbench, mode, []string{e.dbDSN}, nil, nil)
			direct[mode] = tps
			b.ReportMetric(tps, "stmts/s")
			b.ReportMetric(cpu, "cpu-us/stmt")
		})
		b.Run("pgbouncer/"+mode, func(b *testing.B) {
			tps := runBouncer(b, pgbench, mode, bouncerPID, bouncerDSN)
			if d := direct[mode]; d > 0 {
				b.ReportMetric(tps/d, "ratio")
			}
		})
		b.Run("gateway/"+mode, func(b *testing.B) {
			g := e.grant(time.Hour, "pg:select %s.public.pgbench_*")
			before := len(e.auth.Sessions())
			ran, tps, cpu := runPgbench(b, pgbench, mode, nil, e.clientEnv(g, "disable"), func() {
				e.waitEnded(b, before+benchClients)
			})
			b.ReportMetric(tps, "stmts/s")
			b.ReportMetric(cpu, "cpu-us/stmt")
			if d := direct[mode]; d > 0 {
				b.ReportMetric(tps/d, "ratio")
			}
			// Every statement pgbench ran is in the recording, with its result.
			var req, res int
			for _, c := range e.auth.Calls(g.ID) {
				switch c.Kind {
				case "request":
					req++
				case "result":
					if c.Error == "" {
						res++
					}
				}
			}
			if req < ran || res < ran {
				b.Fatalf("pgbench ran %d statements; %d requests and %d results recorded", ran, req, res)
			}
		})
	}
}

// runPgbench runs pgbench -S for about b.N statements and returns how many
// it ran, its tps and this process's CPU microseconds per statement.
// settled, if set, runs before the CPU clock stops: it waits for the
// gateway to finish with the sessions.
func runPgbench(b *testing.B, pgbench, mode string, args, env []string, settled func()) (int, float64, float64) {
	b.Helper()
	perClient := (b.N + benchClients - 1) / benchClients
	cmd := exec.Command(pgbench, append([]string{"-S", "-n", "-c", strconv.Itoa(benchClients), "-j", "2",
		"-M", mode, "-t", strconv.Itoa(perClient)}, args...)...)
	cmd.Env = env
	b.ResetTimer()
	cpu0 := cpuTime(b)
	out, err := cmd.CombinedOutput()
	if err != nil {
		b.Fatalf("pgbench: %v\n%s", err, out)
	}
	if settled != nil {
		settled()
	}
	cpu := cpuTime(b) - cpu0
	b.StopTimer()
	m := tpsRe.FindSubmatch(out)
	t := benchTPSRe.FindSubmatch(out)
	if m == nil || t == nil {
		b.Fatalf("no transaction count or tps in pgbench output:\n%s", out)
	}
	ran, _ := strconv.Atoi(string(m[1]))
	tps, _ := strconv.ParseFloat(string(t[1]), 64)
	if ran != perClient*benchClients || strings.Contains(string(out), "number of failed transactions: ") &&
		!strings.Contains(string(out), "number of failed transactions: 0 ") {
		b.Fatalf("pgbench ran %d of %d transactions:\n%s", ran, perClient*benchClients, out)
	}
	return ran, tps, float64(cpu.Microseconds()) / float64(ran)
}

// runBouncer runs pgbench through PgBouncer (startBouncer's pid and DSN),
// reports its tps and PgBouncer's CPU per statement, and returns the tps;
// it skips the benchmark if PgBouncer is not installed.
func runBouncer(b *testing.B, pgbench, mode string, pid int, dsn string) float64 {
	if pid == 0 {
		b.Skip("no pgbouncer: install it with: apt-get install pgbouncer")
	}
	cpu0 := procCPU(b, pid)
	ran, tps, _ := runPgbench(b, pgbench, mode, []string{dsn}, nil, nil)
	b.ReportMetric(tps, "stmts/s")
	b.ReportMetric(float64((procCPU(b, pid)-cpu0).Microseconds())/float64(ran), "cpu-us/stmt")
	return tps
}

// startBouncer starts PgBouncer in session mode in front of dsn's database
// (as bench/pgbench does: trust auth, the DSN's user) for a same-machine
// reference, and returns its pid and a DSN through it; 0 if it is not
// installed.
func startBouncer(b *testing.B, dsn string) (int, string) {
	const bin = "/usr/sbin/pgbouncer"
	if _, err := os.Stat(bin); err != nil {
		return 0, ""
	}
	u, err := url.Parse(dsn)
	if err != nil {
		b.Fatal(err)
	}
	// A port below the ephemeral range (testenv.FreePort), not one from a
	// closed ":0" listener, which the kernel may hand to another
	// process's outgoing connection before PgBouncer binds it.
	port, err := testenv.FreePort()
	if err != nil {
		b.Fatal(err)
	}
	dir := b.TempDir()
	_ = os.Chmod(dir, 0o755) // PgBouncer will not run as root; as nobody it reads its files
	db, user := strings.TrimPrefix(u.Path, "/"), u.User.Username()
	ini := fmt.Sprintf("[databases]\n%s = host=%s port=%s dbname=%s user=%s\n\n[pgbouncer]\n"+
		"listen_addr = 127.0.0.1\nlisten_port = %d\nunix_socket_dir =\nauth_type = trust\nauth_file = %s\n"+
		"pool_mode = session\ndefault_pool_size = 20\nmax_client_conn = 100\nignore_startup_parameters = extra_float_digits\n",
		db, u.Hostname(), u.Port(), db, user, port, filepath.Join(dir, "userlist.txt"))
	for name, text := range map[string]string{"userlist.txt": fmt.Sprintf("%q \"\"\n", user), "pgbouncer.ini": ini} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	args := []string{filepath.Join(dir, "pgbouncer.ini")}
	if os.Geteuid() == 0 {
		args = append([]string{"-u", "nobody"}, args...)
	}
	cmd := exec.Command(bin, args...)
	if err := cmd.Start(); err != nil {
		b.Fatalf("starting pgbouncer: %v", err)
	}
	b.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	})
	bdsn := fmt.Sprintf("postgres://%s@127.0.0.1:%d/%s?sslmode=disable", user, port, db)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err == nil {
			c.Close()
			return cmd.Process.Pid, bdsn
		}
		if time.Now().After(deadline) {
			b.Fatalf("pgbouncer did not come up: %v", err)
		}
	}
}

// procCPU is another process's user and system CPU time so far, from
// /proc (in clock ticks of 10ms: long runs only).
func procCPU(b *testing.B, pid int) time.Duration {
	s, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	// Fields after the parenthesised command name: state is field 3,
	// utime and stime are 14 and 15.
	f := strings.Fields(string(s[strings.LastIndexByte(string(s), ')')+1:]))
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * 10 * time.Millisecond
}

// cpuTime is this process's user and system CPU time so far.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatalf("getrusage: %v", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// waitEnded waits until the first n sessions have ended: the gateway has
// relayed, recorded every result and closed them.
func (e *env) waitEnded(b *testing.B, n int) {
	deadline := time.Now().Add(30 * time.Second)
	for {
		ss := e.auth.Sessions()
		done := len(ss) >= n
		for _, s := range ss[:min(n, len(ss))] {
			done = done && s.Ended()
		}
		if done {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("sessions did not end: %d of %d started", len(ss), n)
		}
		time.Sleep(time.Millisecond)
	}
}
