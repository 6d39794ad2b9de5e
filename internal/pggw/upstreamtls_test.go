package pggw

import (
	"context"
	"log/slog"
	"testing"

	"github.com/airlock-dev/airlock/internal/gateway/gatewaytest"
	"github.com/airlock-dev/airlock/internal/pgtls/pgtlstest"
)

// New refuses a target whose upstream is a host off this machine reached
// without TLS that verifies the server, as airlock.yaml's check at load
// does (internal/config): the grant roles' SCRAM logins and every
// statement and result cross it. A caller that did not come through the
// configuration could give it any DSN. Loopback stays free (every test
// against the real server here runs so, and the first New below).
func TestNewRefusesUnverifiedUpstream(t *testing.T) {
	newGW := func(_ context.Context, dsn string) error {
		g, err := New(Options{
			Authority: gatewaytest.New(),
			Targets:   []Target{{Name: "db", Upstream: dsn, Roles: failingRoles{}}},
			Logger:    slog.New(slog.DiscardHandler),
		})
		if err == nil {
			g.Close()
		}
		return err
	}
	dsn := adminDSN(t)
	ctx := context.Background()
	if err := newGW(ctx, dsn); err != nil {
		t.Fatalf("loopback upstream: %v", err)
	}
	// A host list reached in plaintext past its first, loopback, host.
	if err := newGW(ctx, "postgres://admin@127.0.0.1,db.internal/orders?sslmode=prefer"); err == nil {
		t.Error("a second host in plaintext was accepted")
	}
	if err := newGW(ctx, "postgres://admin@db.internal/orders?sslmode=verify-full"); err != nil {
		t.Errorf("verify-full: %v", err)
	}
	pgtlstest.Refused(t, dsn, newGW)
}
