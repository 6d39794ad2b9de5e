package pggw

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// TestNotReadyIsCannotConnectNow: while the control plane cannot vouch for
// credentials (a replica whose store is down), a live grant's login is
// told to retry (57P03), not that its password failed (28P01).
func TestNotReadyIsCannotConnectNow(t *testing.T) {
	e := newEnv(t, nil)
	g := e.grant(time.Hour, "pg:select %s.public.customers")
	e.auth.SetReady(false)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	_, err := pgx.Connect(ctx, e.url(g, ""))
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != codeCannotConnectNow {
		t.Fatalf("login while not ready: %v, want SQLSTATE %s", err, codeCannotConnectNow)
	}
	e.auth.SetReady(true)
	c := e.connect(g, "")
	var n int
	if err := c.QueryRow(ctx, "select count(*) from customers").Scan(&n); err != nil || n != 50 {
		t.Fatalf("ready again: count %d, err %v", n, err)
	}
}
