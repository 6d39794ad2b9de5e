package pggw

import (
	"errors"
	"net/url"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/airlock-dev/airlock/internal/pgroles"
	"github.com/airlock-dev/airlock/internal/testenv"
)

// TestUpstreamThatRequiresSCRAM runs a session through the gateway to a
// PostgreSQL whose pg_hba.conf requires SCRAM-SHA-256 from the grants'
// roles, as a production server's does (the shared test server trusts
// every login, so no other test sees the gateway's upstream login prove
// the role's password): the gateway logs in as the grant's role with the
// password pgroles set, and the session works; the role itself, without
// that password, is refused by the server.
func TestUpstreamThatRequiresSCRAM(t *testing.T) {
	pg := testenv.StartPrivatePostgres(t)
	pg.RequirePasswords(t)
	e := newEnvOn(t, pg.DSN, nil)
	g := e.grant(time.Minute, "pg:select %s.public.customers")

	c := e.connect(g, "")
	ctx := ctxT(t, 15*time.Second)
	var n int
	if err := c.QueryRow(ctx, "SELECT count(*) FROM customers").Scan(&n); err != nil || n != 50 {
		t.Fatalf("SELECT through the gateway: %d, %v", n, err)
	}

	u, err := url.Parse(e.dbDSN)
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.UserPassword(pgroles.RoleName(g.ID), "not-the-password")
	_, err = pgconn.Connect(ctx, u.String())
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "28P01" {
		t.Fatalf("the grant's role with a wrong password, directly: %v, want SQLSTATE 28P01", err)
	}
}
