package pggw

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"github.com/airlock-dev/airlock/internal/testenv"
	"io"
	"log/slog"
	"net"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/gateway"
	"github.com/airlock-dev/airlock/internal/gateway/gatewaytest"
	"github.com/airlock-dev/airlock/internal/pgroles"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// env names the test database server.
const envDSN = "AIRLOCK_TEST_PG_DSN"

func adminDSN(t testing.TB) string {
	t.Helper()
	// Unset: skip locally, fail under CI (which sets it).
	return testenv.PostgresDSN(t)
}

// withDB returns dsn with its database replaced.
func withDB(t testing.TB, dsn, db string) string {
	t.Helper()
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatalf("parse %s: %v", envDSN, err)
	}
	u.Path = "/" + db
	return u.String()
}

// testDB creates a fresh database with a few tables and returns its name
// and an admin DSN for it. It is dropped (with its grant roles) at cleanup.
func testDB(t testing.TB) (string, string) {
	t.Helper()
	return testDBOn(t, adminDSN(t))
}

// testDBOn is testDB on the server a superuser's dsn names.
func testDBOn(t testing.TB, dsn string) (string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	db := "pggw_test_" + hex.EncodeToString(b)
	admin, err := pgconn.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("connect %s: %v", envDSN, err)
	}
	defer admin.Close(context.Background())
	if err := admin.Exec(ctx, "CREATE DATABASE "+db).Close(); err != nil {
		t.Fatalf("create database: %v", err)
	}
	dbDSN := withDB(t, dsn, db)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if m, err := pgroles.New(ctx, dbDSN, slog.New(slog.DiscardHandler)); err == nil {
			_ = m.Reconcile(ctx, nil)
			m.Close()
		}
		c, err := pgconn.Connect(ctx, dsn)
		if err != nil {
			t.Errorf("cleanup connect: %v", err)
			return
		}
		defer c.Close(context.Background())
		if err := c.Exec(ctx, "DROP DATABASE "+db+" WITH (FORCE)").Close(); err != nil {
			t.Errorf("drop database: %v", err)
		}
	})
	c, err := pgconn.Connect(ctx, dbDSN)
	if err != nil {
		t.Fatalf("connect test db: %v", err)
	}
	defer c.Close(context.Background())
	_, err = c.Exec(ctx, `
		CREATE TABLE customers (id int PRIMARY KEY, name text NOT NULL);
		INSERT INTO customers SELECT i, 'customer ' || i FROM generate_series(1, 50) i;
		CREATE TABLE secrets (id int PRIMARY KEY, v text);
		INSERT INTO secrets VALUES (1, 'the crown jewels');
		CREATE TABLE events (id serial PRIMARY KEY, note text);
		CREATE TABLE side_effects (id serial PRIMARY KEY, note text);
	`).ReadAll()
	if err != nil {
		t.Fatalf("create tables: %v", err)
	}
	return db, dbDSN
}

// roles wraps the real role manager so tests can make it fail and count
// its calls.
type roles struct {
	m         *pgroles.Manager
	mu        sync.Mutex
	ensureErr error
	ensures   int
	drops     []string
	// stall, if set, is signalled by each Ensure, which then waits for
	// its context to end (an admin side that never answers).
	stall chan struct{}
	// forgePID, if set, is the pid TerminateBackend is asked for instead
	// of the one it is given (a pid the server has given to another
	// backend); terminated lists what its calls reported.
	forgePID   uint32
	terminated []bool
}

func (r *roles) Ensure(ctx context.Context, g *gateway.Grant) (Role, error) {
	r.mu.Lock()
	r.ensures++
	err, stall := r.ensureErr, r.stall
	r.mu.Unlock()
	if err != nil {
		return Role{}, err
	}
	if stall != nil {
		stall <- struct{}{}
		<-ctx.Done()
		return Role{}, ctx.Err()
	}
	return r.m.Ensure(ctx, g)
}

func (r *roles) Drop(ctx context.Context, grantID string) error {
	err := r.m.Drop(ctx, grantID)
	if err == nil {
		r.mu.Lock()
		r.drops = append(r.drops, grantID)
		r.mu.Unlock()
	}
	return err
}

func (r *roles) Reconcile(ctx context.Context, keep []string) error { return r.m.Reconcile(ctx, keep) }

func (r *roles) TerminateBackend(ctx context.Context, grantID string, pid uint32, since time.Time) (bool, error) {
	r.mu.Lock()
	forged := r.forgePID
	r.mu.Unlock()
	if forged != 0 {
		pid = forged
	}
	ended, err := r.m.TerminateBackend(ctx, grantID, pid, since)
	r.mu.Lock()
	r.terminated = append(r.terminated, ended)
	r.mu.Unlock()
	return ended, err
}

func (r *roles) dropped(id string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, d := range r.drops {
		if d == id {
			return true
		}
	}
	return false
}

// env is a running gateway in front of a fresh test database.
type env struct {
	t     testing.TB
	auth  *gatewaytest.Authority
	gw    *Gateway
	addr  *net.TCPAddr
	db    string
	dbDSN string
	roles *roles
}

const targetName = "orders-db"

func newEnv(t testing.TB, tweak func(*Options)) *env {
	t.Helper()
	return newEnvOn(t, adminDSN(t), tweak)
}

// newEnvOn is newEnv in front of the server a superuser's dsn names.
func newEnvOn(t testing.TB, dsn string, tweak func(*Options)) *env {
	t.Helper()
	db, dbDSN := testDBOn(t, dsn)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	m, err := pgroles.New(ctx, dbDSN, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("pgroles.New: %v", err)
	}
	t.Cleanup(m.Close)
	e := &env{t: t, auth: gatewaytest.New(), db: db, dbDSN: dbDSN, roles: &roles{m: m}}
	// Last, once the gateway has closed: every session's records came
	// before its end.
	t.Cleanup(func() {
		if n := e.auth.LateRecords(); n != 0 {
			t.Errorf("%d records were made after their session's end", n)
		}
	})
	o := Options{
		Authority: e.auth,
		// No bound on a grant's sessions: the tests of memory and load open
		// many on one grant; those of the bound set one (grantcap_test.go).
		Targets: []Target{{Name: targetName, Account: "111122223333", Upstream: dbDSN, Roles: e.roles, MaxSessionsPerGrant: -1}},
		Logger:  slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn})),
	}
	if tweak != nil {
		tweak(&o)
	}
	e.gw, err = New(o)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e.addr = ln.Addr().(*net.TCPAddr)
	done := make(chan error, 1)
	go func() { done <- e.gw.Serve(context.Background(), ln) }()
	t.Cleanup(func() {
		e.gw.Close()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("Serve did not return after Close")
		}
	})
	return e
}

// testWriter sends the gateway's log lines to the test log.
type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}

// grant adds an active grant on the test target with the given scope
// statements (written with the database name as DB).
func (e *env) grant(ttl time.Duration, statements ...string) *gateway.Grant {
	e.t.Helper()
	for i, s := range statements {
		statements[i] = fmt.Sprintf(s, e.db)
	}
	return e.auth.Add(gatewaytest.Spec{Target: targetName, TargetKind: "postgres", Account: "111122223333", Scope: statements, TTL: ttl})
}

// url is a client connection string for g through the gateway.
func (e *env) url(g *gateway.Grant, extra string) string {
	return fmt.Sprintf("postgres://%s:%s@127.0.0.1:%d/%s?sslmode=disable&connect_timeout=10%s", g.CredentialID, g.Secret, e.addr.Port, e.db, extra)
}

func (e *env) connect(g *gateway.Grant, extra string) *pgx.Conn {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, e.url(g, extra))
	if err != nil {
		e.t.Fatalf("connect through the gateway: %v", err)
	}
	e.t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

// admin is a direct superuser connection to the test database.
func (e *env) admin() *pgx.Conn {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, e.dbDSN)
	if err != nil {
		e.t.Fatalf("admin connect: %v", err)
	}
	e.t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

// requests returns the statements recorded for g, in order.
func (e *env) requests(g *gateway.Grant) []gateway.Call {
	var out []gateway.Call
	for _, c := range e.auth.Calls(g.ID) {
		if c.Kind == "request" {
			out = append(out, c)
		}
	}
	return out
}

func pgCode(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}

func ctxT(t testing.TB, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

var _ = io.EOF

// pgxSimple makes pgx use the simple protocol for one query.
var pgxSimple = pgx.QueryExecModeSimpleProtocol

// settle waits until every recorded request of g has its result (results
// are recorded just after the client has its answer).
func (e *env) settle(g *gateway.Grant) {
	e.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		var req, res int
		for _, c := range e.auth.Calls(g.ID) {
			switch {
			case c.Kind == "request" && c.Allowed && c.Action != "pg:cancel" && c.Params["bind"] == "":
				req++
			case c.Kind == "result" && c.Action != "pg:connect":
				res++
			}
		}
		if res >= req {
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("%d requests but %d results recorded", req, res)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
