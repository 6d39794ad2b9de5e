package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/airlock-dev/airlock/internal/auditlog"
	"github.com/airlock-dev/airlock/internal/authn"
	"github.com/airlock-dev/airlock/internal/clock"
	"github.com/airlock-dev/airlock/internal/config"
	"github.com/airlock-dev/airlock/internal/grants"
	"github.com/airlock-dev/airlock/internal/model"
	"github.com/airlock-dev/airlock/internal/store"
	"github.com/airlock-dev/airlock/internal/testenv"
)

// replicaConfigEnv, set in the environment of this test binary, makes it
// run `airlock serve` on that configuration file instead of the tests
// (TestMain): a replica in a process of its own, which a test can kill.
const replicaConfigEnv = "AIRLOCK_TEST_REPLICA_CONFIG"

func TestMain(m *testing.M) {
	if path := os.Getenv(replicaConfigEnv); path != "" {
		logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
		if err := Run(context.Background(), path, config.Overrides{}, logger); err != nil {
			fmt.Fprintln(os.Stderr, "replica:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// sessCapConfig is a replica's configuration: a postgres target whose
// grants hold at most 2 sessions, on a shared PostgreSQL store.
const sessCapConfig = `data_dir: ./data
store: %q
listen:
  api: %s
  postgres: %s
identities:
  - name: log-triage-bot
    kind: agent
    owner: sre-team
    key_sha256: "%s"
targets:
  - name: orders-db
    kind: postgres
    account: "111122223333"
    upstream: %s
    max_sessions_per_grant: 2
policies: ./policies
`

const sessCapPolicy = `@id("sre-reads-orders")
@approval("auto")
permit (principal in Group::"sre-team", action == Action::"pg:select", resource == Target::"orders-db");
`

// writeSessCapConfig writes a replica's configuration and policies into a
// fresh directory and returns the configuration file's path.
func writeSessCapConfig(t *testing.T, storeDSN, api, pg, keySHA string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "policies"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "policies", "p.cedar"), []byte(sessCapPolicy), 0o644); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "airlock.yaml")
	body := fmt.Sprintf(sessCapConfig, storeDSN, api, pg, keySHA, testenv.PostgresDSN(t))
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestSessionsPerGrantAcrossReplicas: max_sessions_per_grant bounds a
// grant's sessions across the replicas sharing a store, not on each. Two
// replicas: A, an `airlock serve` in a process of its own (this binary,
// TestMain), and B in this process on a fake clock; pgx logs in through
// their PostgreSQL gateways to a real upstream. With the bound 2, two
// sessions on A leave none for B (53300, recorded as a refusal); a session
// that ends on A gives its slot to B's next login; a session that ended
// cleanly on A, whose upstream connection A keeps for the grant's next
// session, holds its slot until a login on B takes it over, and A then
// closes that connection; a session of A, killed with SIGKILL, holds its
// slot until its lease has passed by B's clock.
func TestSessionsPerGrantAcrossReplicas(t *testing.T) {
	dsn := pgDatabase(t)
	_, botSHA := authn.NewKey()
	ctx := context.Background()

	// B first: it makes the keys the replicas share. Its clock is a fake
	// one that follows the real one (so that B renews its slots as time
	// passes for A), which the test moves ahead: B's timers due meanwhile
	// (its renewals) run as it moves, and what B reads then is the
	// database's clock that far ahead.
	fake := clock.NewFake(time.Now())
	start := time.Now()
	var ahead atomic.Int64
	follow := func() { fake.Set(start.Add(time.Since(start) + time.Duration(ahead.Load()))) }
	testGrants = func(o *grants.Options) {
		o.Clock = fake
		o.ClockCheck = time.Hour // the offset measured at start stays
	}
	defer func() { testGrants = nil }()
	cfgB, err := config.Load(writeSessCapConfig(t, dsn, "127.0.0.1:0", "127.0.0.1:0", botSHA))
	if err != nil {
		t.Fatal(err)
	}
	srvB := openServer(t, cfgB)
	gwsB, err := srvB.StartGateways(ctx)
	if err != nil {
		srvB.Close()
		t.Fatal(err)
	}
	var grantIDs []string
	testenv.DropGrantRolesAtEnd(t, testenv.PostgresDSN(t), func() []string { return grantIDs })
	t.Cleanup(func() {
		gwsB.Close()
		srvB.Close()
	})
	stopFollow, followed := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(followed)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stopFollow:
				return
			case <-tick.C:
				follow()
			}
		}
	}()
	t.Cleanup(func() { close(stopFollow); <-followed })

	// A: `airlock serve` in a process of its own, with B's keys.
	apiA, pgA := testenv.FreeAddr(t), testenv.FreeAddr(t)
	pathA := writeSessCapConfig(t, dsn, apiA, pgA, botSHA)
	dataA := filepath.Join(filepath.Dir(pathA), "data")
	if err := os.MkdirAll(dataA, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{auditlog.SignerKeyFile, auditlog.VerifierKeyFile, CredentialKeyFile} {
		b, err := os.ReadFile(filepath.Join(cfgB.DataDir, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dataA, f), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	logA, err := os.Create(filepath.Join(t.TempDir(), "replica-a.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Env = append(os.Environ(), replicaConfigEnv+"="+pathA, "AIRLOCK_TEST_PG_DSN="+testenv.PostgresDSN(t))
	cmd.Stdout, cmd.Stderr = logA, logA
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
		if t.Failed() {
			b, _ := os.ReadFile(logA.Name())
			t.Logf("replica A's log:\n%s", b)
		}
	})
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get("http://" + apiA + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		select {
		case <-exited:
			t.Fatalf("replica A exited: %v", cmd.ProcessState)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("replica A not ready: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}

	g, err := srvB.Service.Request(ctx, bot, grants.RequestInput{Target: "orders-db", Scope: []string{"pg:select postgres.public.*"}, Duration: "10m", Reason: "INC-7"})
	if err != nil || g.Status != model.Active {
		t.Fatalf("request: %v, %v", g.Status, err)
	}
	grantIDs = append(grantIDs, g.ID)
	cr, err := srvB.Service.Credentials(ctx, bot, g.ID)
	if err != nil {
		t.Fatal(err)
	}
	connect := func(addr string) (*pgx.Conn, error) {
		host, port, _ := net.SplitHostPort(addr)
		cfg, err := pgx.ParseConfig(fmt.Sprintf("host=%s port=%s user=%s dbname=postgres sslmode=disable", host, port, cr.AccessKeyID))
		if err != nil {
			t.Fatal(err)
		}
		cfg.Password = cr.SecretAccessKey
		ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		c, err := pgx.ConnectConfig(ctx, cfg)
		if err != nil {
			return nil, err
		}
		var one int
		if err := c.QueryRow(ctx, "select 1").Scan(&one); err != nil {
			c.Close(ctx)
			return nil, err
		}
		t.Cleanup(func() { c.Close(context.Background()) })
		return c, nil
	}
	mustConnect := func(addr, what string) *pgx.Conn {
		t.Helper()
		c, err := connect(addr)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		return c
	}
	refused := func(err error, what string) {
		t.Helper()
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != "53300" {
			t.Fatalf("%s: %v, want FATAL 53300", what, err)
		}
		// The bound is the replicas' together: a message saying "through
		// this gateway" had the agent look for sessions on B alone.
		for _, want := range []string{g.ID, "2 sessions", "max_sessions_per_grant", "across the gateways of every replica"} {
			if !strings.Contains(pe.Message, want) {
				t.Errorf("%s: message %q does not say %q", what, pe.Message, want)
			}
		}
	}
	// eventually connects through addr, each attempt before refused for
	// the bound: the slot it waits for is given back once the other
	// replica has seen its session end, after the client has gone.
	eventually := func(addr, what string, within time.Duration) *pgx.Conn {
		t.Helper()
		deadline := time.Now().Add(within)
		for {
			c, err := connect(addr)
			if err == nil {
				return c
			}
			refused(err, what)
			if time.Now().After(deadline) {
				t.Fatalf("%s: still refused: %v", what, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	// dropConn ends a session without a Terminate: its upstream
	// connection is not kept, its slot given back.
	dropConn := func(c *pgx.Conn) { c.PgConn().Conn().Close() }
	pgB := gwsB.Addr("postgres")

	a1 := mustConnect(pgA, "first session on A")
	a2 := mustConnect(pgA, "second session on A")
	_, err = connect(pgB)
	refused(err, "a third session, on B")
	rejected := false
	for _, typ := range []string{"gateway.rejected", "gateway.rejected_summary"} {
		es, err := srvB.store.LogEntries(ctx, store.LogFilter{GrantID: g.ID, Type: typ})
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range es {
			rejected = rejected || strings.Contains(string(e.Data), "max_sessions_per_grant 2")
		}
	}
	if !rejected {
		t.Error("B's refusal is not recorded in the log")
	}

	// A session that ends on A gives its slot back.
	dropConn(a1)
	b1 := eventually(pgB, "a session on B once one of A's has ended", 10*time.Second)

	// One that ends cleanly leaves its upstream connection to A's pool,
	// which holds the slot on; B's next login takes it over, sooner than
	// the connection's idle TTL (15 s) would give it back, and A closes
	// the connection at its next renewal of its slots (every 10 s), also
	// before.
	closed := time.Now()
	if err := a2.Close(ctx); err != nil {
		t.Fatal(err)
	}
	b2 := eventually(pgB, "a session on B taking over the slot of A's kept connection", 10*time.Second)
	admin, err := pgx.Connect(ctx, testenv.PostgresDSN(t))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	role := "airlock_" + strings.ToLower(g.ID)
	backends := func() int {
		var n int
		if err := admin.QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE usename = $1", role).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	for backends() != 2 {
		if time.Since(closed) > 14*time.Second {
			t.Fatalf("the grant has %d upstream backends %v after A kept one; want B's 2, A's kept connection closed as its slot was taken over", backends(), time.Since(closed))
		}
		time.Sleep(100 * time.Millisecond)
	}

	// A replica killed with a session open holds its slot until the lease
	// has passed, by the clock of the replica that looks.
	dropConn(b2)
	eventually(pgA, "a session on A once one of B's has ended", 10*time.Second)
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-exited
	_, err = connect(pgB)
	refused(err, "a session on B while the killed A's session holds its slot")
	ahead.Add(int64(grants.DefaultSlotLease + time.Second))
	follow()
	mustConnect(pgB, "a session on B once the killed A's slot has passed its lease")
	_ = b1
	slots, err := pgxCount(ctx, dsn, "SELECT count(*) FROM session_slots WHERE grant_id = $1 AND replica = $2", g.ID, srvB.Service.ReplicaID())
	if err != nil || slots != 2 {
		t.Errorf("session_slots holds %d rows of B for the grant (%v); want 2", slots, err)
	}
	all, err := pgxCount(ctx, dsn, "SELECT count(*) FROM session_slots WHERE grant_id = $1", g.ID)
	if err != nil || all != 2 {
		t.Errorf("session_slots holds %d rows for the grant (%v); want B's 2", all, err)
	}
}

// pgxCount runs a count query on the database at dsn.
func pgxCount(ctx context.Context, dsn, q string, args ...any) (int, error) {
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return 0, err
	}
	defer c.Close(ctx)
	var n int
	err = c.QueryRow(ctx, q, args...).Scan(&n)
	return n, err
}
