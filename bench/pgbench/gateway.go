package main

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/airlock-dev/airlock/bench/internal/benchkit"
)

const benchPolicy = `@id("pgbench")
@approval("auto")
permit (principal in Group::"bench-team", action == Action::"pg:select", resource == Target::"pgbench-db");
`

// startGateway starts `airlock serve` with the PostgreSQL gateway on a
// free loopback port and one postgres target, the fixture's database with
// its admin role as the upstream user; keepLog, if set, is where its log
// is copied once it has stopped.
func startGateway(r *benchkit.Runner, bin string, f *fixture, keepLog string) *benchkit.Server {
	s := benchkit.NewServer(r, bin)
	s.KeepLog = keepLog
	s.WritePolicy(r, "bench.cedar", benchPolicy)
	pg := benchkit.FreeAddr(r)
	s.Start(r, fmt.Sprintf(`data_dir: ./data
listen:
  api: %s
  postgres: %s
identities:
  - name: bench-bot
    kind: agent
    owner: bench-team
    key_sha256: "%s"
%stargets:
  - name: pgbench-db
    kind: postgres
    account: bench
    upstream: postgres://%s@%s:%d/%s?sslmode=disable
    max_sessions_per_grant: none   # every client and idle connection is one grant's
policies: ./policies
`, s.API, pg, s.BotSHA, s.OpsIdentity(), f.admin.User, f.admin.Host, f.admin.Port, f.db), nil)
	return s
}

// grant requests pg:select on every table of the database's public schema
// (auto-approved by the policy) and returns the grant's ID and where its
// credentials connect, read from `airlock credentials`' environment.
func grant(r *benchkit.Runner, s *benchkit.Server, f *fixture, sslmode string) (string, pgEnv) {
	id := s.Request(r, "pgbench-db", "pg:select "+f.db+".public.*", "1h", "pgbench: gateway throughput against the same database")
	// The gateway names the grant's role after the grant; remember it at
	// once so that the cleanup drops it whatever happens next.
	f.grantRoles = append(f.grantRoles, "airlock_"+strings.ToLower(id))
	v := parseExports(s.CLI(r, "credentials", id))
	port, err := strconv.Atoi(v["PGPORT"])
	if err != nil || v["PGHOST"] == "" || v["PGUSER"] == "" || v["PGPASSWORD"] == "" || v["PGDATABASE"] != f.db {
		r.Fatalf("credentials do not name the gateway and the database (is listen.postgres on?): PGHOST=%q PGPORT=%q PGDATABASE=%q\n%s",
			v["PGHOST"], v["PGPORT"], v["PGDATABASE"], s.LogTail())
	}
	e := pgEnv{Host: v["PGHOST"], Port: port, User: v["PGUSER"], Password: v["PGPASSWORD"], Database: v["PGDATABASE"], SSLMode: v["PGSSLMODE"]}
	if sslmode != "" {
		e.SSLMode = sslmode
	}
	return id, e
}
