package pgroles

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"github.com/airlock-dev/airlock/internal/testenv"
	"io"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/airlock-dev/airlock/internal/gateway"
	"github.com/airlock-dev/airlock/internal/scope"
)

// The tests below run against a real PostgreSQL named by this variable, as
// a superuser (to set up and to read pg_authid). Each run makes its own
// database and a non-superuser admin role like the quickstart's
// airlock_admin (CREATEROLE, owning the tables), and drops both at the end.
const dsnEnv = "AIRLOCK_TEST_PG_DSN"

// env is the per-run fixture; nil when dsnEnv is unset.
var env *pgEnv

type pgEnv struct {
	superDSN string
	adminDSN string
	db       string
	admin    string
	run      string // random, in every role and grant id of this run
}

func TestMain(m *testing.M) {
	dsn := os.Getenv(dsnEnv)
	if dsn == "" {
		os.Exit(m.Run())
	}
	e, err := setupEnv(dsn)
	if err != nil {
		fmt.Fprintln(os.Stderr, "pgroles tests: set-up:", err)
		os.Exit(1)
	}
	env = e
	code := m.Run()
	if err := e.teardown(); err != nil {
		fmt.Fprintln(os.Stderr, "pgroles tests: tear-down:", err)
		code = 1
	}
	os.Exit(code)
}

func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func withUserDB(dsn, user, db string) (string, error) {
	u, err := url.Parse(dsn)
	if err != nil {
		return "", err
	}
	u.User = url.User(user)
	u.Path = "/" + db
	return u.String(), nil
}

func setupEnv(dsn string) (*pgEnv, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	run := randHex(4)
	e := &pgEnv{superDSN: dsn, db: "airlock_pgroles_test_" + run, admin: "airlock_pgroles_admin_" + run, run: run}
	var err error
	if e.adminDSN, err = withUserDB(dsn, e.admin, e.db); err != nil {
		return nil, err
	}
	su, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return nil, err
	}
	defer su.Close(ctx)
	for _, s := range []string{
		"CREATE ROLE " + e.admin + " LOGIN CREATEROLE",
		"CREATE DATABASE " + e.db + " OWNER " + e.admin,
	} {
		if _, err := su.Exec(ctx, s); err != nil {
			return nil, fmt.Errorf("%s: %w", s, err)
		}
	}
	// Objects the admin must not be able to grant: a schema it owns (so
	// USAGE is grantable) holding a table owned by the superuser.
	superInDB, _ := withUserDB(dsn, su.Config().User, e.db)
	sdb, err := pgx.Connect(ctx, superInDB)
	if err != nil {
		return nil, err
	}
	defer sdb.Close(ctx)
	if _, err := sdb.Exec(ctx, `CREATE SCHEMA locked AUTHORIZATION `+e.admin+`;
		CREATE TABLE locked.root_only (x int);`); err != nil {
		return nil, err
	}
	adm, err := pgx.Connect(ctx, e.adminDSN)
	if err != nil {
		return nil, err
	}
	defer adm.Close(ctx)
	_, err = adm.Exec(ctx, `
		CREATE TABLE customers (id int PRIMARY KEY, name text);
		CREATE TABLE orders (id int PRIMARY KEY, customer_id int);
		CREATE TABLE events (id serial PRIMARY KEY, kind text);
		CREATE TABLE events_archive (id int);
		CREATE TABLE cust_a (id int);
		CREATE TABLE "custXb" (id int);
		CREATE TABLE "we""ird" (x int);
		CREATE TABLE "x""; DROP TABLE customers; --" (x int);
		CREATE VIEW evview AS SELECT id FROM events;
		CREATE SCHEMA other;
		CREATE TABLE other.secret (x int);
		INSERT INTO customers VALUES (1, 'ada'), (2, 'bob');
		INSERT INTO orders VALUES (1, 1);`)
	if err != nil {
		return nil, err
	}
	return e, nil
}

func (e *pgEnv) teardown() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	su, err := pgx.Connect(ctx, e.superDSN)
	if err != nil {
		return err
	}
	defer su.Close(ctx)
	if _, err := su.Exec(ctx, "DROP DATABASE IF EXISTS "+e.db+" WITH (FORCE)"); err != nil {
		return err
	}
	// Every role this run made has the run id in its name.
	rows, err := su.Query(ctx, `SELECT rolname FROM pg_roles WHERE strpos(rolname, $1) > 0`, e.run)
	if err != nil {
		return err
	}
	roles, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return err
	}
	var errs []error
	for _, r := range roles {
		if r == e.admin {
			continue
		}
		_, err := su.Exec(ctx, "DROP ROLE "+pgx.Identifier{r}.Sanitize())
		errs = append(errs, err)
	}
	_, err = su.Exec(ctx, "DROP ROLE "+e.admin)
	return errors.Join(append(errs, err)...)
}

// need skips the test when no PostgreSQL is configured.
func need(t *testing.T) *pgEnv {
	t.Helper()
	if env == nil {
		testenv.PostgresDSN(t) // skips locally, fails under CI
	}
	return env
}

func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func newManager(t *testing.T) *Manager {
	t.Helper()
	m, err := New(testCtx(t), need(t).adminDSN, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	return m
}

// grantID is unique to this run and test.
func grantID(name string) string { return "g_" + env.run + "_" + name }

// newGrant makes a live grant on this run's database; %s in a statement is
// replaced by the database name.
func newGrant(t *testing.T, name string, ttl time.Duration, stmts ...string) *gateway.Grant {
	t.Helper()
	for i, s := range stmts {
		stmts[i] = strings.ReplaceAll(s, "%s", env.db)
	}
	sc, err := scope.Parse(stmts)
	if err != nil {
		t.Fatal(err)
	}
	if err := scope.ValidateFor("postgres", sc); err != nil {
		t.Fatal(err)
	}
	return gateway.NewGrant(gateway.Info{
		ID: grantID(name), Identity: "bot", Target: "orders-db", TargetKind: "postgres",
		Scope: sc, ExpiresAt: time.Now().Add(ttl).Truncate(time.Microsecond),
	})
}

// connectAs opens a session as the grant role with its password, the way
// the gateway will.
func connectAs(t *testing.T, r Role) *pgx.Conn {
	t.Helper()
	ctx := testCtx(t)
	dsn, err := withUserDB(env.superDSN, r.Name, env.db)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Password = r.Password
	c, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatalf("connect as %s: %v", r.Name, err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

func superConn(t *testing.T, db string) *pgx.Conn {
	t.Helper()
	ctx := testCtx(t)
	dsn := env.superDSN
	if db != "" {
		u, _ := url.Parse(dsn)
		var err error
		if dsn, err = withUserDB(dsn, u.User.Username(), db); err != nil {
			t.Fatal(err)
		}
	}
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

func sqlState(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}

// check runs sql on c and wants it to succeed (want "") or fail with the
// SQLSTATE want.
func check(t *testing.T, c *pgx.Conn, sql, want string) {
	t.Helper()
	_, err := c.Exec(testCtx(t), sql)
	if got := sqlState(err); got != want || (want == "" && err != nil) {
		t.Errorf("%s: got SQLSTATE %q (%v), want %q", sql, got, err, want)
	}
}

// dropRolesAtEnd drops the named roles (those that exist) when the test
// ends, after its other clean-ups: roles are the server's, not the run
// database's, so a role a test makes under a fixed name would make the
// same test fail with "already exists" when it runs again in the process
// (go test -count=2). Each role's privileges in the run database go
// first (DROP OWNED), as DROP ROLE refuses a role that holds any.
func dropRolesAtEnd(t *testing.T, names func() []string) {
	t.Helper()
	e := need(t)
	u, err := url.Parse(e.superDSN)
	if err != nil {
		t.Fatal(err)
	}
	inRunDB, err := withUserDB(e.superDSN, u.User.Username(), e.db)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		// In the run database first (its privileges), then the roles.
		for _, step := range []struct{ dsn, stmt string }{{inRunDB, "DROP OWNED BY "}, {e.superDSN, "DROP ROLE "}} {
			c, err := pgx.Connect(ctx, step.dsn)
			if err != nil {
				t.Error(err)
				return
			}
			for _, n := range names() {
				var exists bool
				if err := c.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)`, n).Scan(&exists); err != nil {
					t.Error(err)
					continue
				}
				if !exists {
					continue
				}
				if _, err := c.Exec(ctx, step.stmt+pgx.Identifier{n}.Sanitize()); err != nil {
					t.Errorf("%s%s at the test's end: %v", step.stmt, n, err)
				}
			}
			c.Close(ctx)
		}
	})
}

func roleExists(t *testing.T, name string) bool {
	t.Helper()
	var n int
	if err := superConn(t, "").QueryRow(testCtx(t), `SELECT count(*) FROM pg_roles WHERE rolname = $1`, name).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n == 1
}

const denied = "42501"
