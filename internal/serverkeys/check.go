package serverkeys

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"os"
	"sort"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// ErrMismatch is wrapped by Check's error when a key differs from the one
// the database was started with.
var ErrMismatch = errors.New("key differs from the one the database was first started with")

// fingerprintTable is created by Check (not by the store's migrations: it
// belongs to this package alone), in the DSN's current schema beside the
// store's tables.
const fingerprintTable = `CREATE TABLE IF NOT EXISTS airlock_key_fingerprints (
	name text COLLATE "C" PRIMARY KEY,
	fingerprint text NOT NULL,
	recorded_at timestamptz NOT NULL DEFAULT now(),
	recorded_by text NOT NULL
)`

// Recorded reports whether the database at dsn already holds key
// fingerprints, i.e. whether some server started on it before: a replica
// then must not generate keys of its own.
func Recorded(ctx context.Context, dsn string) (bool, error) {
	conn, err := connect(ctx, dsn)
	if err != nil {
		return false, err
	}
	defer conn.Close(context.Background())
	var n int
	err = conn.QueryRow(ctx, `SELECT count(*) FROM airlock_key_fingerprints`).Scan(&n)
	if isUndefinedTable(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("serverkeys: reading key fingerprints: %w", err)
	}
	return n > 0, nil
}

// Check records k's fingerprints in the database at dsn if none are there
// yet, and otherwise compares k with them: a differing key is an error
// wrapping ErrMismatch that names the key and where this server read it,
// never the key itself.
func Check(ctx context.Context, dsn string, k *Keys) error {
	conn, err := connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	host, _ := os.Hostname()
	tx, err := conn.Begin(ctx)
	if err != nil {
		return fmt.Errorf("serverkeys: %w", err)
	}
	defer tx.Rollback(context.Background())
	// Replicas starting together: one creates the table and records, the
	// others wait for it and then compare.
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended('airlock.key_fingerprints/' || current_schema(), 0))`); err != nil {
		return fmt.Errorf("serverkeys: %w", err)
	}
	if _, err := tx.Exec(ctx, fingerprintTable); err != nil {
		return fmt.Errorf("serverkeys: creating airlock_key_fingerprints: %w", err)
	}
	fps := k.fingerprints()
	names := make([]string, 0, len(fps))
	for n := range fps {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		if _, err := tx.Exec(ctx, `INSERT INTO airlock_key_fingerprints (name, fingerprint, recorded_by) VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING`,
			name, fps[name], host); err != nil {
			return fmt.Errorf("serverkeys: recording key fingerprints: %w", err)
		}
	}
	for _, name := range names {
		var stored, by string
		var at time.Time
		if err := tx.QueryRow(ctx, `SELECT fingerprint, recorded_at, recorded_by FROM airlock_key_fingerprints WHERE name = $1`, name).Scan(&stored, &at, &by); err != nil {
			return fmt.Errorf("serverkeys: reading key fingerprints: %w", err)
		}
		if subtle.ConstantTimeCompare([]byte(stored), []byte(fps[name])) != 1 {
			from := k.CredentialFrom
			what, file, env := "credential key", CredentialKeyFile, CredentialKeyEnv
			if name == "log-signing" {
				from, what, file, env = k.SignerFrom, "log signing key", SigningKeyFile, SigningKeyEnv
			}
			return fmt.Errorf("the %s from %s: %w (first recorded %s by host %q); every replica needs the same %s: copy it from a running replica's data_dir, point keys.%s_file at it, or set %s",
				what, from, ErrMismatch, at.UTC().Format(time.RFC3339), by, file, keyConfigName(name), env)
		}
	}
	return tx.Commit(ctx)
}

func keyConfigName(name string) string {
	if name == "log-signing" {
		return "log_signing_key"
	}
	return "credential_key"
}

// connect opens one connection with the store's DSN; the password, if any,
// comes from the environment as for the store, and pgx redacts it from
// errors.
func connect(ctx context.Context, dsn string) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("serverkeys: the store DSN: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("serverkeys: connecting to the store: %w", err)
	}
	return conn, nil
}

// isUndefinedTable reports whether err is PostgreSQL's undefined_table.
func isUndefinedTable(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "42P01"
}
