package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/airlock-dev/airlock/bench/internal/benchkit"
	"github.com/airlock-dev/airlock/internal/testenv"
)

// fixture is a pgbench database owned by a non-superuser admin role with
// CREATEROLE, as a real deployment's airlock_admin: the tables the gateway
// grants on belong to the role that grants them.
type fixture struct {
	superDSN string
	db       string
	admin    pgEnv // the admin role, connecting directly
	// grantRoles are the per-grant roles the cleanup drops, should the
	// gateway have left them (an active grant's role outlives `serve`).
	grantRoles []string
}

// newFixture creates the role and database, initialises them with
// `pgbench -i` as the admin, and registers their removal.
func newFixture(ctx context.Context, r *benchkit.Runner, superDSN string, scale int, sslmode string) *fixture {
	cfg, err := pgx.ParseConfig(superDSN)
	if err != nil {
		r.Fatalf("parsing the PostgreSQL DSN: %v", err)
	}
	if cfg.Host != "127.0.0.1" && cfg.Host != "localhost" && cfg.Host != "::1" {
		r.Fatalf("the PostgreSQL DSN names host %q; this benchmark only uses loopback", cfg.Host)
	}
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	suffix := hex.EncodeToString(b)
	f := &fixture{superDSN: superDSN, db: "pgbench_" + suffix}
	f.admin = pgEnv{Host: "127.0.0.1", Port: int(cfg.Port), User: "pgbench_admin_" + suffix, Database: f.db, SSLMode: sslmode}
	su := connect(ctx, r, superDSN)
	defer su.Close(ctx)
	for _, q := range []string{
		"CREATE ROLE " + f.admin.User + " LOGIN CREATEROLE",
		"CREATE DATABASE " + f.db + " OWNER " + f.admin.User,
	} {
		if _, err := su.Exec(ctx, q); err != nil {
			r.Fatalf("%s: %v", q, err)
		}
	}
	r.Cleanup(f.drop)

	cctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	// Server-side generation (G) is the quickest way to 100,000×scale
	// rows; the primary keys (p) are what -S looks rows up by.
	cmd := exec.CommandContext(cctx, "pgbench", "-i", "-q", "-I", "dtGvp", "-s", strconv.Itoa(scale))
	cmd.Env = f.admin.environ()
	if out, err := cmd.CombinedOutput(); err != nil {
		r.Fatalf("pgbench -i as %s: %v\n%s", f.admin.User, err, out)
	}
	return f
}

// drop removes the database (closing any session left on it), the
// grants' roles and the admin role. It runs at the end, also on failure.
func (f *fixture) drop() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	su, err := pgx.Connect(ctx, f.superDSN)
	if err != nil {
		benchkit.Progress("cleanup: cannot connect to drop %s and its roles: %v", f.db, err)
		return
	}
	defer su.Close(ctx)
	qs := []string{"DROP DATABASE IF EXISTS " + f.db + " WITH (FORCE)"}
	for _, role := range f.grantRoles {
		qs = append(qs, "DROP ROLE IF EXISTS "+pgx.Identifier{role}.Sanitize())
	}
	qs = append(qs, "DROP ROLE IF EXISTS "+f.admin.User)
	for _, q := range qs {
		if _, err := su.Exec(ctx, q); err != nil {
			benchkit.Progress("cleanup: %s: %v", q, err)
		}
	}
}

// freeSlots is how many more client connections the server accepts
// before only superusers may connect.
func freeSlots(ctx context.Context, r *benchkit.Runner, superDSN string) int {
	su := connect(ctx, r, superDSN)
	defer su.Close(ctx)
	var n int
	err := su.QueryRow(ctx, `SELECT current_setting('max_connections')::int
		- current_setting('superuser_reserved_connections')::int
		- (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend')`).Scan(&n)
	if err != nil {
		r.Fatalf("counting free connection slots: %v", err)
	}
	return n
}

func connect(ctx context.Context, r *benchkit.Runner, dsn string) *pgx.Conn {
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	c, err := pgx.Connect(cctx, dsn)
	if err != nil {
		r.Fatalf("connecting to PostgreSQL: %v", err)
	}
	return c
}

// superDSN is the superuser DSN the benchmark creates its database and
// roles with.
func superDSN() string {
	if d := strings.TrimSpace(os.Getenv("AIRLOCK_TEST_PG_DSN")); d != "" {
		return d
	}
	return "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
}

// privateCluster starts a PostgreSQL cluster of the benchmark's own (-private)
// with connection slots for every idle connection through both middles
// (each idle gateway session holds a server connection, and PgBouncer's
// pool), the load's clients and a margin, and returns its superuser DSN.
// It is removed when the run ends.
func privateCluster(r *benchkit.Runner, o options) string {
	p, err := testenv.NewPrivatePostgres()
	if err != nil {
		r.Fatalf("private PostgreSQL: %v", err)
	}
	r.Cleanup(p.Remove)
	slots := 2*(o.idle+o.idleMore+o.slopeHeld()) + 4*o.clients + 100
	if err := p.StartWith(fmt.Sprintf("max_connections=%d", slots)); err != nil {
		r.Fatalf("starting the private PostgreSQL: %v", err)
	}
	benchkit.Progress("private PostgreSQL cluster up (max_connections=%d)", slots)
	return p.DSN
}
