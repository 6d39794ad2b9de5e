package pgroles

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/airlock-dev/airlock/internal/gateway"
	"github.com/airlock-dev/airlock/internal/scope"
	"github.com/airlock-dev/airlock/internal/testenv"
)

// scramCluster is a private PostgreSQL whose pg_hba.conf requires
// SCRAM-SHA-256 from every role but the superuser and the run's admin, with
// a run database and admin as setupEnv makes them, and a Manager on it.
type scramCluster struct {
	e *pgEnv
	m *Manager
}

func startSCRAMCluster(tb testing.TB) *scramCluster {
	tb.Helper()
	pg := testenv.StartPrivatePostgres(tb)
	e, err := setupEnv(pg.DSN)
	if err != nil {
		tb.Fatalf("set-up: %v", err)
	}
	tb.Cleanup(func() {
		if err := e.teardown(); err != nil {
			tb.Errorf("tear-down: %v", err)
		}
	})
	pg.RequirePasswords(tb, e.admin)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	m, err := New(ctx, e.adminDSN, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(m.Close)
	return &scramCluster{e: e, m: m}
}

// role ensures the role of a grant (named name) to read customers.
func (c *scramCluster) role(tb testing.TB, name string) Role {
	tb.Helper()
	sc, err := scope.Parse([]string{"pg:select " + c.e.db + ".public.customers"})
	if err != nil {
		tb.Fatal(err)
	}
	g := gateway.NewGrant(gateway.Info{
		ID: "g_" + c.e.run + "_" + name, Identity: "bot", Target: "orders-db", TargetKind: "postgres",
		Scope: sc, ExpiresAt: time.Now().Add(time.Hour).Truncate(time.Microsecond),
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r, err := c.m.Ensure(ctx, g)
	if err != nil {
		tb.Fatal(err)
	}
	return r
}

// config is a pgconn configuration that logs in as r over TCP, as the
// gateway does, with password.
func (c *scramCluster) config(tb testing.TB, r Role, password string) *pgconn.Config {
	tb.Helper()
	dsn, err := withUserDB(c.e.superDSN, r.Name, c.e.db)
	if err != nil {
		tb.Fatal(err)
	}
	cfg, err := pgconn.ParseConfig(dsn)
	if err != nil {
		tb.Fatal(err)
	}
	cfg.Password = password
	return cfg
}

// TestRoleLogsInWithSCRAM logs in as a grant's role against a server that
// requires SCRAM-SHA-256 (as production servers do; the shared test
// server trusts every login), with the verifier the Manager stored: the
// iteration count it chose (scramIterations) must be one that PostgreSQL
// and pgx accept, and the stored verifier must be exactly what a login
// with the role's password proves, not a plaintext password.
func TestRoleLogsInWithSCRAM(t *testing.T) {
	c := startSCRAMCluster(t)
	r := c.role(t, "scram")
	ctx := testCtx(t)

	su, err := pgx.Connect(ctx, c.e.superDSN)
	if err != nil {
		t.Fatal(err)
	}
	defer su.Close(context.Background())
	var stored string
	if err := su.QueryRow(ctx, `SELECT rolpassword FROM pg_authid WHERE rolname = $1`, r.Name).Scan(&stored); err != nil {
		t.Fatal(err)
	}
	if p := parseVerifier(t, stored); p.iterations != 1 {
		t.Fatalf("stored verifier has %d iterations, want 1 (see scramIterations)", p.iterations)
	}

	conn, err := pgconn.ConnectConfig(ctx, c.config(t, r, r.Password))
	if err != nil {
		t.Fatalf("login as %s with its password: %v", r.Name, err)
	}
	res, err := conn.Exec(ctx, "SELECT count(*) FROM customers").ReadAll()
	conn.Close(context.Background())
	if err != nil || len(res) != 1 || len(res[0].Rows) != 1 || string(res[0].Rows[0][0]) != "2" {
		t.Fatalf("SELECT as the role: %v %v", res, err)
	}

	// The server does check: a wrong password is refused, so the login
	// above proved the password against the stored verifier.
	_, err = pgconn.ConnectConfig(ctx, c.config(t, r, r.Password+"x"))
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "28P01" {
		t.Fatalf("login with a wrong password: %v, want SQLSTATE 28P01", err)
	}
}

// BenchmarkRoleLogin is the client's side of a grant role's login, which
// the gateway pays once per PostgreSQL session: pgconn's connect (TCP,
// startup, SCRAM-SHA-256 against a server that requires it) and close, for
// a role whose verifier has PostgreSQL's default 4096 iterations and for
// one with scramIterations. cpu-µs/login is this process's CPU (user and
// system, getrusage) per login; the server's backend is another process.
// Needs initdb (Debian's postgresql package).
//
//	go test -run '^$' -bench BenchmarkRoleLogin -benchtime 300x -count 3 ./internal/pgroles/
func BenchmarkRoleLogin(b *testing.B) {
	c := startSCRAMCluster(b)
	defer func(n int) { scramIterations = n }(scramIterations)
	for _, iters := range []int{4096, scramIterations} {
		b.Run("iterations="+strconv.Itoa(iters), func(b *testing.B) {
			scramIterations = iters
			r := c.role(b, strconv.Itoa(iters)+"_"+randHex(3))
			cfg := c.config(b, r, r.Password)
			ctx := context.Background()
			before := cpuTime()
			b.ResetTimer()
			for b.Loop() {
				conn, err := pgconn.ConnectConfig(ctx, cfg)
				if err != nil {
					b.Fatal(err)
				}
				conn.Close(ctx)
			}
			b.StopTimer()
			b.ReportMetric(float64((cpuTime()-before).Microseconds())/float64(b.N), "cpu-µs/login")
		})
	}
}

// cpuTime is the process's user and system CPU so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
