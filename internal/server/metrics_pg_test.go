package server

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/airlock-dev/airlock/internal/authn"
	"github.com/airlock-dev/airlock/internal/config"
	"github.com/airlock-dev/airlock/internal/gateway"
	"github.com/airlock-dev/airlock/internal/grants"
	"github.com/airlock-dev/airlock/internal/model"
	"github.com/airlock-dev/airlock/internal/store"
	"github.com/airlock-dev/airlock/internal/testenv"
)

// metricsPGConfig is a server with a PostgreSQL gateway (listen.postgres
// %s) in front of a real upstream (%s, last).
const metricsPGConfig = `data_dir: ./data
listen:
  api: 127.0.0.1:0
  postgres: %s
identities:
  - {name: log-triage-bot, kind: agent, owner: sre-team, key_sha256: "%s"}
  - {name: alice, kind: human, groups: [sre-leads], key_sha256: "%s"}
targets:
  - name: orders-db
    kind: postgres
    account: "111122223333"
    upstream: %s
policies: ./policies
`

// TestMetricsCountCutStatements: a PostgreSQL statement still running when
// its session ends, whatever ends it (the client leaving, the upstream's
// server process ended, the grant's end, the gateway's shutdown), is
// counted by airlock_gateway_calls_total, under "allowed": a statement is
// counted with its result (only the result says whether the upstream
// refused it), and pggw records one for it as the session ends, whose
// error says it was cut. The count is the log's: every allowed request
// once. Through the server's PostgreSQL gateway to a real upstream,
// pg_sleep(30) being the statement cut.
func TestMetricsCountCutStatements(t *testing.T) {
	admin := testenv.PostgresDSN(t)
	for _, tc := range []struct {
		name string
		cut  func(t *testing.T, s *Server, gws *Gateways, c *pgx.Conn, adm *pgx.Conn, g model.Grant)
		why  []string // the cut statement's recorded error, one of these
	}{
		{"client closes", func(t *testing.T, _ *Server, _ *Gateways, c *pgx.Conn, _ *pgx.Conn, _ model.Grant) {
			c.PgConn().Conn().Close()
		}, []string{"airlock: the connection closed before the statement completed"}},
		{"upstream ends", func(t *testing.T, _ *Server, _ *Gateways, _ *pgx.Conn, adm *pgx.Conn, g model.Grant) {
			if _, err := adm.Exec(t.Context(), "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1", grantRole(g)); err != nil {
				t.Fatal(err)
			}
		}, []string{"57P01 terminating connection due to administrator command"}},
		{"grant ends", func(t *testing.T, s *Server, _ *Gateways, _ *pgx.Conn, _ *pgx.Conn, g model.Grant) {
			if _, err := s.Service.End(t.Context(), bot, g.ID, "done"); err != nil {
				t.Fatal(err)
			}
		}, []string{"airlock: cut off: grant %s has ended before the statement completed"}},
		{"gateway shuts down", func(t *testing.T, _ *Server, gws *Gateways, _ *pgx.Conn, _ *pgx.Conn, _ model.Grant) {
			gws.Close()
		}, []string{"airlock: cut off: the gateway shut down before the statement completed"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, gws, aliceKey := metricsPGServer(t, admin)
			ctx := t.Context()
			g, err := s.Service.Request(ctx, bot, grants.RequestInput{Target: "orders-db", Scope: []string{"pg:select postgres.public.*"}, Duration: "10m", Reason: "INC-7"})
			if err != nil || g.Status != model.Active {
				t.Fatalf("request: %v, %v", g.Status, err)
			}
			testenv.DropGrantRolesAtEnd(t, admin, func() []string { return []string{g.ID} })
			c := metricsPGConnect(t, s, gws, g.ID)
			if _, err := c.Exec(ctx, "select 1"); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() {
				_, err := c.Exec(context.Background(), "select pg_sleep(30)")
				done <- err
			}()
			adm, err := pgx.Connect(ctx, admin)
			if err != nil {
				t.Fatal(err)
			}
			defer adm.Close(context.Background())
			testenv.WaitGrantQuery(t, admin, g.ID, "select pg_sleep(30)")
			tc.cut(t, s, gws, c, adm, g)
			select {
			case err := <-done:
				if err == nil {
					t.Fatal("pg_sleep(30) completed")
				}
			case <-time.After(20 * time.Second): // it would still run for 10 s more
				t.Fatal("pg_sleep(30) was not cut")
			}
			// The session's end is written after its last results,
			// which are counted once durable.
			for deadline := time.Now().Add(20 * time.Second); ; {
				ss, err := s.store.Sessions(ctx, g.ID)
				if err != nil {
					t.Fatal(err)
				}
				if len(ss) == 1 && !ss[0].EndedAt.IsZero() {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("the session did not end: %+v", ss)
				}
				time.Sleep(20 * time.Millisecond)
			}
			es, err := s.store.LogEntries(ctx, store.LogFilter{GrantID: g.ID})
			if err != nil {
				t.Fatal(err)
			}
			allowed, cut, errs := 0, false, []string{}
			for _, e := range es {
				var d struct {
					Data gateway.Call `json:"data"`
				}
				switch e.Type {
				case "session.call":
					if err := json.Unmarshal(e.Data, &d); err != nil {
						t.Fatal(err)
					}
					if d.Data.Kind == "request" && d.Data.Allowed {
						allowed++
					}
				case "session.results":
					var r struct {
						Data struct {
							Results []gateway.Call `json:"results"`
						} `json:"data"`
					}
					if err := json.Unmarshal(e.Data, &r); err != nil {
						t.Fatal(err)
					}
					for _, res := range r.Data.Results {
						for _, why := range tc.why {
							cut = cut || (res.Params["n"] == "2" && res.Error == strings.Replace(why, "%s", g.ID, 1))
						}
						errs = append(errs, res.Error)
					}
				}
			}
			if !cut {
				t.Errorf("no result of pg_sleep(30) with an error of %q in the log; the results' errors: %q", tc.why, errs)
			}
			_, body := scrapeMetrics(s, aliceKey)
			want := fmt.Sprintf(`airlock_gateway_calls_total{gateway="postgres",outcome="allowed"} %d`, allowed)
			if allowed < 2 || !strings.Contains(body, want+"\n") {
				t.Errorf("the log has %d allowed requests (want 2 or more: select 1, pg_sleep); the metrics lack %s:\n%s",
					allowed, want, grepLines(body, `airlock_gateway_calls_total{gateway="postgres"`))
			}
		})
	}
}

// grantRole is the upstream role of grant g's sessions (pgroles.RoleName).
func grantRole(g model.Grant) string { return "airlock_" + strings.ToLower(g.ID) }

// metricsPGServer opens a server with a PostgreSQL gateway to upstream,
// and returns it, its gateways and alice's key (a person's, for
// /metrics).
func metricsPGServer(t *testing.T, upstream string) (*Server, *Gateways, string) {
	t.Helper()
	dir := t.TempDir()
	_, botSHA := authn.NewKey()
	aliceKey, aliceSHA := authn.NewKey()
	if err := os.MkdirAll(filepath.Join(dir, "policies"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "policies", "p.cedar"), []byte(sessCapPolicy), 0o644); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "airlock.yaml")
	if err := os.WriteFile(path, fmt.Appendf(nil, metricsPGConfig, testenv.FreeAddr(t), botSHA, aliceSHA, upstream), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	s := openServer(t, cfg)
	gws, err := s.StartGateways(t.Context())
	if err != nil {
		s.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		gws.Close()
		s.Close()
	})
	return s, gws, aliceKey
}

// metricsPGConnect logs in to gws's PostgreSQL gateway with grant id's
// credentials.
func metricsPGConnect(t *testing.T, s *Server, gws *Gateways, id string) *pgx.Conn {
	t.Helper()
	cr, err := s.Service.Credentials(t.Context(), bot, id)
	if err != nil {
		t.Fatal(err)
	}
	host, port, _ := net.SplitHostPort(gws.Addr("postgres"))
	cfg, err := pgx.ParseConfig(fmt.Sprintf("host=%s port=%s user=%s dbname=postgres sslmode=disable", host, port, cr.AccessKeyID))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Password = cr.SecretAccessKey
	c, err := pgx.ConnectConfig(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

// grepLines returns the lines of s that contain sub.
func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
