package benchkit

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"

	"github.com/jackc/pgx/v5"

	"github.com/airlock-dev/airlock/internal/testenv"
)

// PGDatabases is what NewPGDatabases made on the PostgreSQL server of
// AIRLOCK_TEST_PG_DSN (default postgres://postgres@127.0.0.1:5432/postgres).
type PGDatabases struct {
	// Super is the superuser DSN, Config its parsed form.
	Super  string
	Config *pgx.ConnConfig
	// Store is a database for `store:`; Upstream a database owned by
	// Admin, a CREATEROLE login role: a postgres target's upstream.
	Store, Upstream, Admin string
}

// NewPGDatabases makes a store database, an upstream database and its
// admin role, named prefix and a random suffix, and drops them (and the
// grant roles made for the upstream database) when r ends.
func NewPGDatabases(ctx context.Context, r *Runner, prefix string) *PGDatabases {
	super := os.Getenv("AIRLOCK_TEST_PG_DSN")
	if super == "" {
		super = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
	}
	b := make([]byte, 4)
	rand.Read(b)
	suffix := hex.EncodeToString(b)
	d := &PGDatabases{Super: super, Store: prefix + "store_" + suffix, Upstream: prefix + "pg_" + suffix, Admin: prefix + "admin_" + suffix}
	su, err := pgx.Connect(ctx, super)
	if err != nil {
		r.Fatalf("connecting to PostgreSQL: %v", err)
	}
	for _, q := range []string{"CREATE DATABASE " + d.Store, "CREATE ROLE " + d.Admin + " LOGIN CREATEROLE", "CREATE DATABASE " + d.Upstream + " OWNER " + d.Admin} {
		if _, err := su.Exec(ctx, q); err != nil {
			r.Fatalf("%s: %v", q, err)
		}
	}
	su.Close(ctx)
	d.Config, _ = pgx.ParseConfig(super)
	r.Cleanup(func() {
		ctx := context.Background()
		su, err := pgx.Connect(ctx, super)
		if err != nil {
			return
		}
		defer su.Close(ctx)
		su.Exec(ctx, "DROP DATABASE IF EXISTS "+d.Store+" WITH (FORCE)")
		su.Exec(ctx, "DROP DATABASE IF EXISTS "+d.Upstream+" WITH (FORCE)")
		// Only the grant roles made for this run's database: roles are
		// the cluster's, and other runs' (tests, benchmarks) live there.
		if err := testenv.DropGrantRolesOfDatabase(ctx, super, d.Upstream); err != nil {
			Progress("cleanup: %v", err)
		}
		su.Exec(ctx, "DROP ROLE IF EXISTS "+d.Admin)
	})
	return d
}

// StoreDSN is the store database's DSN, as the superuser.
func (d *PGDatabases) StoreDSN() string {
	c := d.Config
	return fmt.Sprintf("postgres://%s@%s:%d/%s?sslmode=disable", c.User, c.Host, c.Port, d.Store)
}

// UpstreamDSN is the upstream database's DSN, as its admin role.
func (d *PGDatabases) UpstreamDSN() string {
	c := d.Config
	return fmt.Sprintf("postgres://%s@%s:%d/%s?sslmode=disable", d.Admin, c.Host, c.Port, d.Upstream)
}
