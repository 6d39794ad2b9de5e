// Command pglogins measures what a PostgreSQL login through the gateway
// costs on the shared-store path (`store: postgres://…`, where a grant's
// sessions are bounded across replicas by a slot in the store): one
// `airlock serve` on a PostgreSQL store, and n logins one after another
// through its gateway under one grant (connect, select 1, close), first
// ending each session cleanly (the next login reuses the kept upstream
// connection: the gateway's part is most of the login), then dropping each
// connection (every login logs in upstream afresh). It prints each
// series' median and 90th-percentile latency as the client sees it, and
// the airlock process's CPU (user+system) per login.
//
//	go run ./bench/pglogins [-logins 300] [-airlock BIN] [-prefix pglogins_]
//
// Run it with -airlock built from two commits to compare them. Needs
// PostgreSQL (AIRLOCK_TEST_PG_DSN, default
// postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable), where it
// creates a store database, an upstream database and its admin role, all
// named with -prefix, and drops them at the end.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"os"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/airlock-dev/airlock/bench/internal/benchkit"
)

func main() {
	n := flag.Int("logins", 300, "logins per series")
	bin := flag.String("airlock", "", "a built airlock binary (default: build ./cmd/airlock)")
	prefix := flag.String("prefix", "pglogins_", "prefix of the databases and role made for the run")
	flag.Parse()
	os.Exit(benchkit.Main("pglogins", func(ctx context.Context, r *benchkit.Runner) { bench(ctx, r, *n, *bin, *prefix) }))
}

func bench(ctx context.Context, r *benchkit.Runner, n int, bin, prefix string) {
	bin = benchkit.BuildAirlock(r, bin, r.TempDir())
	dbs := benchkit.NewPGDatabases(ctx, r, prefix)
	s := benchkit.NewServer(r, bin)
	s.WritePolicy(r, "bench.cedar", `@id("bench-pg")
@approval("auto")
permit (principal in Group::"bench-team", action == Action::"pg:select", resource == Target::"pg-bench");
`)
	pgAddr := benchkit.FreeAddr(r)
	storeDSN, upstream, pgDB := dbs.StoreDSN(), dbs.UpstreamDSN(), dbs.Upstream
	s.Start(r, fmt.Sprintf(`data_dir: ./data
store: %s
listen:
  api: %s
  postgres: %s
identities:
  - name: bench-bot
    kind: agent
    owner: bench-team
    key_sha256: "%s"
targets:
  - name: pg-bench
    kind: postgres
    account: "111122223333"
    upstream: %s
policies: ./policies
`, storeDSN, s.API, pgAddr, s.BotSHA, upstream), nil)
	id := s.Request(r, "pg-bench", "pg:select "+pgDB+".public.*", "1h", "bench/pglogins")
	var cr struct {
		AccessKeyID     string `json:"access_key_id"`
		SecretAccessKey string `json:"secret_access_key"`
	}
	if err := json.Unmarshal([]byte(s.CLI(r, "credentials", id, "--format", "json")), &cr); err != nil {
		r.Fatal(err)
	}
	host, port, _ := net.SplitHostPort(pgAddr)
	cfg, err := pgx.ParseConfig(fmt.Sprintf("host=%s port=%s user=%s dbname=%s sslmode=disable", host, port, cr.AccessKeyID, pgDB))
	if err != nil {
		r.Fatal(err)
	}
	cfg.Password = cr.SecretAccessKey
	login := func(clean bool) {
		c, err := pgx.ConnectConfig(ctx, cfg)
		if err != nil {
			r.Fatalf("login: %v", err)
		}
		var one int
		if err := c.QueryRow(ctx, "select 1").Scan(&one); err != nil {
			r.Fatalf("select 1: %v", err)
		}
		if clean {
			c.Close(ctx)
		} else {
			c.PgConn().Conn().Close()
		}
	}
	for _, clean := range []bool{true, false} {
		name := "kept upstream reused (clean close)"
		if !clean {
			name = "fresh upstream login (dropped)"
		}
		for range 10 {
			login(clean) // warm up
		}
		time.Sleep(200 * time.Millisecond) // the last session's end is the server's
		lat := make([]float64, 0, n)
		cpu0, err := benchkit.CPUTime(s.PID())
		if err != nil {
			r.Fatal(err)
		}
		for range n {
			t0 := time.Now()
			login(clean)
			lat = append(lat, float64(time.Since(t0).Microseconds()))
		}
		time.Sleep(200 * time.Millisecond)
		cpu1, err := benchkit.CPUTime(s.PID())
		if err != nil {
			r.Fatal(err)
		}
		slices.Sort(lat)
		fmt.Printf("%-36s %d logins: latency median %6.0f µs, p90 %6.0f µs; airlock CPU %5.0f µs/login\n",
			name, n, benchkit.Median(lat), lat[len(lat)*9/10], float64((cpu1-cpu0).Microseconds())/float64(n))
	}
	load, _ := os.ReadFile("/proc/loadavg")
	fmt.Printf("load average %s", load)
}
