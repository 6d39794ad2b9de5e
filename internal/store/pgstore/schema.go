package pgstore

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"regexp"
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

// migration is one schema version's SQL.
type migration struct {
	sql string
	// index is the name of the index the migration builds, for one
	// whose whole statement is CREATE [UNIQUE] INDEX CONCURRENTLY: it
	// runs outside the migration transaction (see buildIndex), so that
	// building an index of a large log does not hold every replica's
	// writes for the build. "" for the others, run in the transaction.
	index string
}

// concurrentIndex matches a migration that builds one index concurrently,
// its comment lines removed; the second group is the index's name.
var concurrentIndex = regexp.MustCompile(`(?is)^CREATE\s+(UNIQUE\s+)?INDEX\s+CONCURRENTLY\s+([a-z_][a-z0-9_]*)\s+ON\s[^;]*;?$`)

func mustLoadMigrations() []migration {
	names, err := fs.Glob(migrationFiles, "migrations/*.sql")
	if err != nil {
		panic(err)
	}
	slices.Sort(names)
	out := make([]migration, 0, len(names))
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
		m, err := parseMigration(string(b))
		if err != nil {
			panic(fmt.Sprintf("pgstore: migration %s: %v", base, err))
		}
		out = append(out, m)
	}
	return out
}

// parseMigration tells a migration that builds an index concurrently from
// one run in the migration transaction. CONCURRENTLY cannot run in a
// transaction, nor in a string of several statements (PostgreSQL runs
// those as one): such a migration is that one statement and comments.
func parseMigration(sql string) (migration, error) {
	var body []string
	for l := range strings.Lines(sql) {
		if !strings.HasPrefix(strings.TrimSpace(l), "--") {
			body = append(body, l)
		}
	}
	stmt := strings.TrimSpace(strings.Join(body, ""))
	if !strings.Contains(strings.ToUpper(stmt), "CONCURRENTLY") {
		return migration{sql: sql}, nil
	}
	m := concurrentIndex.FindStringSubmatch(stmt)
	if m == nil {
		return migration{}, errors.New("CONCURRENTLY, but not one CREATE INDEX CONCURRENTLY statement alone")
	}
	return migration{sql: sql, index: strings.ToLower(m[2])}, nil
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

// migratePoll is how often a replica that finds another migrating the
// schema tries its lock again.
const migratePoll = 100 * time.Millisecond

// migrate applies the pending migrations under a session-level advisory
// lock on the schema, held on one connection, so that replicas starting at
// the same moment apply each migration once: the others wait for the lock,
// then find the schema up to date. Consecutive migrations run in one
// transaction, which records their versions; one that builds an index
// concurrently runs alone, outside any transaction, and its version is
// recorded once the index is valid (buildIndex).
func migrate(ctx context.Context, pool *pgxpool.Pool, schema string) error {
	pc, err := pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("pgstore: migrate: %w", err)
	}
	defer pc.Release()
	conn := pc.Conn()
	key := "airlock.migrate/" + schema
	if err := lockMigrations(ctx, conn, key); err != nil {
		return err
	}
	defer func() {
		// A connection still holding the lock must not go back to the
		// pool, where it would hold it for as long as it lives.
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		var released bool
		if err := conn.QueryRow(uctx, "SELECT pg_advisory_unlock(hashtextextended($1, 0))", key).Scan(&released); err != nil || !released {
			conn.Close(uctx)
		}
	}()
	for {
		next, err := migrateTx(ctx, conn, schema)
		if err != nil || next == 0 {
			return err
		}
		if err := buildIndex(ctx, conn, schema, next); err != nil {
			return err
		}
	}
}

// lockMigrations takes the schema's migration lock on conn. It tries
// rather than waits in the server: a statement waiting for the lock would
// hold a snapshot, which a concurrent index build by the lock's holder
// waits for to end (before it marks the index valid), so the two would
// wait for each other until PostgreSQL ended one as a deadlock. Between
// tries conn is idle, in no transaction, and holds nothing.
func lockMigrations(ctx context.Context, conn *pgx.Conn, key string) error {
	for {
		var locked bool
		if err := conn.QueryRow(ctx, "SELECT pg_try_advisory_lock(hashtextextended($1, 0))", key).Scan(&locked); err != nil {
			return fmt.Errorf("pgstore: migrate: lock: %w", err)
		}
		if locked {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("pgstore: migrate: waiting for another replica's migration: %w", context.Cause(ctx))
		case <-time.After(migratePoll):
		}
	}
}

// migrateTx applies, in one transaction, the pending migrations up to the
// first that builds an index concurrently, and returns that one's version
// (0 once the schema is up to date).
func migrateTx(ctx context.Context, conn *pgx.Conn, schema string) (int, error) {
	tx, err := conn.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.ReadCommitted})
	if err != nil {
		return 0, fmt.Errorf("pgstore: migrate: %w", err)
	}
	defer tx.Rollback(context.Background())
	// Read committed: every statement from here on sees what a replica
	// that held the lock before us committed.
	var tables, hasMigrations int
	if err := tx.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE c.relname = $2)
		FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = $1 AND c.relkind IN ('r', 'p')`, schema, migrationsTable).Scan(&tables, &hasMigrations); err != nil {
		return 0, fmt.Errorf("pgstore: migrate: %w", err)
	}
	if tables > 0 && hasMigrations == 0 {
		return 0, fmt.Errorf("pgstore: schema %q: %w (it has %d tables but no %s); give Airlock its own database, or its own schema with search_path in the DSN",
			schema, ErrNotAirlock, tables, migrationsTable)
	}
	if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS `+migrationsTable+` (
		version    integer PRIMARY KEY,
		applied_at timestamptz NOT NULL DEFAULT now()
	)`); err != nil {
		return 0, fmt.Errorf("pgstore: migrate: create %s: %w", migrationsTable, err)
	}
	var current int
	if err := tx.QueryRow(ctx, "SELECT COALESCE(MAX(version), 0) FROM "+migrationsTable).Scan(&current); err != nil {
		return 0, fmt.Errorf("pgstore: migrate: read schema version: %w", err)
	}
	if current > len(migrations) {
		return 0, fmt.Errorf("pgstore: schema %q: %w: schema version %d, this build knows up to %d; upgrade airlock",
			schema, ErrNewerSchema, current, len(migrations))
	}
	if current == len(migrations) {
		return 0, nil // nothing to do; the deferred rollback ends the transaction
	}
	next := 0
	for v := current + 1; v <= len(migrations); v++ {
		if migrations[v-1].index != "" {
			next = v
			break
		}
		if _, err := tx.Exec(ctx, migrations[v-1].sql); err != nil {
			return 0, fmt.Errorf("pgstore: migration %d: %w", v, err)
		}
		if err := recordMigration(ctx, tx, v); err != nil {
			return 0, err
		}
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if err := tx.Commit(cctx); err != nil {
		return 0, fmt.Errorf("pgstore: commit migrations: %w", err)
	}
	return next, nil
}

func recordMigration(ctx context.Context, q querier, v int) error {
	if _, err := q.Exec(ctx, "INSERT INTO "+migrationsTable+" (version) VALUES ($1)", v); err != nil {
		return fmt.Errorf("pgstore: record migration %d: %w", v, err)
	}
	return nil
}

// buildIndex applies migration v, which builds an index with CREATE INDEX
// CONCURRENTLY, on conn outside any transaction. Writers go on appending
// while it builds: it locks the table against schema changes and other
// builds only, not against writes. It waits for the transactions that
// write the table, or hold a snapshot older than the build's, to end. An
// attempt that ended early (a replica stopped or cut mid-build, the build
// cancelled) leaves the index INVALID, or valid but the version not yet
// recorded: the next attempt drops an invalid index and builds it again,
// and records a valid one. The version is recorded once the index is
// valid, so a replica of this version never starts without it.
func buildIndex(ctx context.Context, conn *pgx.Conn, schema string, v int) error {
	m := migrations[v-1]
	var valid bool
	err := conn.QueryRow(ctx, `SELECT i.indisvalid AND i.indisready AND i.indislive
		FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = $1 AND c.relname = $2`, schema, m.index).Scan(&valid)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
	case err != nil:
		return fmt.Errorf("pgstore: migration %d: %w", v, err)
	case !valid:
		if _, err := conn.Exec(ctx, "DROP INDEX CONCURRENTLY IF EXISTS "+pgx.Identifier{schema, m.index}.Sanitize()); err != nil {
			return fmt.Errorf("pgstore: migration %d: drop the invalid index %s: %w", v, m.index, err)
		}
	}
	if !valid {
		if _, err := conn.Exec(ctx, m.sql); err != nil {
			return fmt.Errorf("pgstore: migration %d: %w", v, err)
		}
	}
	return recordMigration(ctx, conn, v)
}
