package pggw

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/auditlog"
	"github.com/airlock-dev/airlock/internal/gateway"
	"github.com/airlock-dev/airlock/internal/gateway/gatewaytest"
	"github.com/airlock-dev/airlock/internal/store/sqlitestore"
)

// durableAuthority is the fake authority with every session event also
// appended to a real audit log (SQLite, group commit, fsync per batch), so
// that the throughput comparison pays what production pays per statement.
type durableAuthority struct {
	*gatewaytest.Authority
	log *auditlog.Log
}

func (a *durableAuthority) StartSession(ctx context.Context, g *gateway.Grant, client string) (*gateway.Session, error) {
	s, err := a.Authority.StartSession(ctx, g, client)
	if err != nil {
		return nil, err
	}
	if err := a.log.Append(ctx, auditlog.Event{Type: "session.started", GrantID: g.ID, SessionID: s.ID}); err != nil {
		return nil, err
	}
	record := func(ctx context.Context, c gateway.Call) error {
		if err := a.log.Append(ctx, auditlog.Event{Type: "session.call", GrantID: g.ID, SessionID: s.ID, Data: c}); err != nil {
			return err
		}
		return s.Record(ctx, c)
	}
	return gateway.NewSession(s.ID, g, record, s.End), nil
}

var tpsLine = regexp.MustCompile(`tps = ([0-9.]+) \(without initial connection time\)`)

func runPgbench(t *testing.T, env []string, args ...string) float64 {
	t.Helper()
	cmd := exec.Command("pgbench", args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("pgbench %v: %v\n%s", args, err, out)
	}
	m := tpsLine.FindSubmatch(out)
	if m == nil {
		t.Fatalf("no tps in:\n%s", out)
	}
	tps, _ := strconv.ParseFloat(string(m[1]), 64)
	return tps
}

// TestThroughputVersusPgBouncer is the performance comparison:
// pgbench -S, 8 clients, simple and prepared, directly, through PgBouncer
// (session mode) and through the gateway with every statement durably
// recorded. Set PGGW_BENCH=1 to run it (about a minute).
func TestThroughputVersusPgBouncer(t *testing.T) {
	if os.Getenv("PGGW_BENCH") == "" {
		t.Skip("set PGGW_BENCH=1 to run the throughput comparison")
	}
	needBinary(t, "pgbench")
	bouncer := needBinary(t, "pgbouncer")
	dir := t.TempDir()
	ctx := context.Background()
	st, err := sqlitestore.Open(ctx, filepath.Join(dir, "airlock.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	signer, _, err := auditlog.LoadOrCreateKey(dir, "airlock")
	if err != nil {
		t.Fatal(err)
	}
	log, err := auditlog.Open(ctx, st, signer, auditlog.Options{Origin: "airlock/bench"})
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	var da *durableAuthority
	sync := os.Getenv("PGGW_BENCH_SYNC_RESULTS") != ""
	memory := os.Getenv("PGGW_BENCH_MEMORY_LOG") != "" // the relay alone, recording in memory
	e := newEnv(t, func(o *Options) {
		if !memory {
			da = &durableAuthority{Authority: gatewaytest.New(), log: log}
			o.Authority = da
		}
	})
	if da != nil {
		e.auth = da.Authority
	}
	e.gw.syncResults = sync
	if out, err := exec.Command("pgbench", "-i", "-q", "-s", "10", e.dbDSN).CombinedOutput(); err != nil {
		t.Fatalf("pgbench -i: %v\n%s", err, out)
	}

	// PgBouncer in session mode in front of the same database.
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	bport := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	bdir, _ := os.MkdirTemp("", "pggw-bouncer")
	defer os.RemoveAll(bdir)
	_ = os.Chmod(bdir, 0o755)
	ini := fmt.Sprintf(`[databases]
%s = host=127.0.0.1 port=5432 dbname=%s user=postgres
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = %d
unix_socket_dir =
auth_type = trust
auth_file = %s/users.txt
pool_mode = session
max_client_conn = 100
default_pool_size = 20
`, e.db, e.db, bport, bdir)
	_ = os.WriteFile(filepath.Join(bdir, "users.txt"), []byte(`"postgres" ""`+"\n"), 0o644)
	_ = os.WriteFile(filepath.Join(bdir, "pgbouncer.ini"), []byte(ini), 0o644)
	args := []string{filepath.Join(bdir, "pgbouncer.ini")}
	if os.Geteuid() == 0 {
		args = append([]string{"-u", "nobody"}, args...)
	}
	bcmd := exec.Command(bouncer, args...)
	bcmd.Stderr = os.Stderr
	if err := bcmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = bcmd.Process.Kill(); _ = bcmd.Wait() }()
	time.Sleep(500 * time.Millisecond)

	// The log's own ceiling: 8 writers, each appending one event at a time
	// and waiting for it to be durable, as 8 pgbench clients do.
	{
		const writers, each = 8, 300
		start := time.Now()
		errc := make(chan error, writers)
		for w := 0; w < writers; w++ {
			go func() {
				var err error
				for i := 0; i < each && err == nil; i++ {
					err = log.Append(ctx, auditlog.Event{Type: "session.call", Data: map[string]string{"statement": "SELECT abalance FROM pgbench_accounts WHERE aid = 1;"}})
				}
				errc <- err
			}()
		}
		for w := 0; w < writers; w++ {
			if err := <-errc; err != nil {
				t.Fatal(err)
			}
		}
		d := time.Since(start)
		t.Logf("audit log alone: %d writers waiting on each append: %.0f appends/s, %.2f ms per append",
			writers, float64(writers*each)/d.Seconds(), d.Seconds()*1000/each)
	}

	secs := os.Getenv("PGGW_BENCH_SECONDS")
	if secs == "" {
		secs = "5"
	}
	common := []string{"-S", "-n", "-T", secs, "-c", "8", "-j", "2"}
	g := e.grant(time.Hour, "pg:select %s.public.pgbench_*")
	for _, mode := range []string{"simple", "prepared"} {
		args := append(append([]string{}, common...), "-M", mode)
		direct := runPgbench(t, nil, append(args, e.dbDSN)...)
		viaBouncer := runPgbench(t, nil, append(args, fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", bport, e.db))...)
		viaGateway := runPgbench(t, e.clientEnv(g, "disable")[len(os.Environ()):], args...)
		t.Logf("pgbench -S -c 8 -M %s: direct %.0f tps, pgbouncer %.0f tps (%.2f), gateway %.0f tps (%.2f), results recorded synchronously: %v, durable log: %v",
			mode, direct, viaBouncer, viaBouncer/direct, viaGateway, viaGateway/direct, sync, !memory)
	}
}
