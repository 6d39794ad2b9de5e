package pgstore

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// migrationFiles holds the schema migrations, NNNN_name.sql: migration NNNN
// is schema version NNNN. Never edit a released migration: add a new file,
// and update catalog.txt, what audit verify expects the tables to be (go
// test -run TestCatalogIsTheMigrations -update-catalog).
//
//go:embed migrations/*.sql
var migrationFiles embed.FS

// migrations are the embedded migrations in version order; migrations[i] is
// schema version i+1.
var migrations = mustLoadMigrations()

func mustLoadMigrations() []string {
	names, err := fs.Glob(migrationFiles, "migrations/*.sql")
	if err != nil {
		panic(err)
	}
	slices.Sort(names)
	out := make([]string, 0, len(names))
	for i, name := range names {
		base := strings.TrimPrefix(name, "migrations/")
		num, _, ok := strings.Cut(base, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v != i+1 {
			panic(fmt.Sprintf("pgstore: migration %s is not version %04d", base, i+1))
		}
		b, err := migrationFiles.ReadFile(name)
		if err != nil {
			panic(err)
		}
		out = append(out, string(b))
	}
	return out
}

// SchemaVersion is the schema version this build writes.
func SchemaVersion() int { return len(migrations) }

// ErrNewerSchema is returned by Open for a database written by a newer
// Airlock.
var ErrNewerSchema = errors.New("database schema is newer than this airlock")

// ErrNotAirlock is returned by Open for a schema that holds other tables
// but no Airlock schema version table.
var ErrNotAirlock = errors.New("not an airlock database")

// migrationsTable records the applied versions. Its name is prefixed so that
// it never collides with another tool's schema_migrations.
const migrationsTable = "airlock_schema_migrations"

// migrate applies the pending migrations in one transaction, under a
// transaction-scoped advisory lock on the schema, so that replicas starting
// at the same moment apply each migration once: the others wait for the
// lock, then find the schema up to date.
func migrate(ctx context.Context, pool *pgxpool.Pool, schema string) error {
	tx, err := pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.ReadCommitted})
	if err != nil {
		return fmt.Errorf("pgstore: migrate: %w", err)
	}
	defer tx.Rollback(context.Background())
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", "airlock.migrate/"+schema); err != nil {
		return fmt.Errorf("pgstore: migrate: lock: %w", err)
	}
	// Read committed: every statement from here on sees what a replica
	// that held the lock before us committed.
	var tables, hasMigrations int
	if err := tx.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE c.relname = $2)
		FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = $1 AND c.relkind IN ('r', 'p')`, schema, migrationsTable).Scan(&tables, &hasMigrations); err != nil {
		return fmt.Errorf("pgstore: migrate: %w", err)
	}
	if tables > 0 && hasMigrations == 0 {
		return fmt.Errorf("pgstore: schema %q: %w (it has %d tables but no %s); give Airlock its own database, or its own schema with search_path in the DSN",
			schema, ErrNotAirlock, tables, migrationsTable)
	}
	if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS `+migrationsTable+` (
		version    integer PRIMARY KEY,
		applied_at timestamptz NOT NULL DEFAULT now()
	)`); err != nil {
		return fmt.Errorf("pgstore: migrate: create %s: %w", migrationsTable, err)
	}
	var current int
	if err := tx.QueryRow(ctx, "SELECT COALESCE(MAX(version), 0) FROM "+migrationsTable).Scan(&current); err != nil {
		return fmt.Errorf("pgstore: migrate: read schema version: %w", err)
	}
	if current > len(migrations) {
		return fmt.Errorf("pgstore: schema %q: %w: schema version %d, this build knows up to %d; upgrade airlock",
			schema, ErrNewerSchema, current, len(migrations))
	}
	if current == len(migrations) {
		return nil // nothing to do; the deferred rollback ends the transaction
	}
	for v := current + 1; v <= len(migrations); v++ {
		if _, err := tx.Exec(ctx, migrations[v-1]); err != nil {
			return fmt.Errorf("pgstore: migration %d: %w", v, err)
		}
		if _, err := tx.Exec(ctx, "INSERT INTO "+migrationsTable+" (version) VALUES ($1)", v); err != nil {
			return fmt.Errorf("pgstore: record migration %d: %w", v, err)
		}
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if err := tx.Commit(cctx); err != nil {
		return fmt.Errorf("pgstore: commit migrations: %w", err)
	}
	return nil
}
