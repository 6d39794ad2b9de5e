package testenv

import (
	"context"
	"net/url"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// PostgresDatabase creates a database named prefix_<random> on the server
// the superuser DSN admin reaches, drops it (WITH FORCE) when t ends,
// with the grant roles made for it (DropGrantRolesOfDatabase), and returns
// its DSN.
func PostgresDatabase(t testing.TB, admin, prefix string) string {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		t.Fatalf("connecting to PostgreSQL: %v", err)
	}
	defer conn.Close(ctx)
	name := prefix + "_" + randHex(6)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, admin)
		if err != nil {
			t.Logf("dropping %s: %v", name, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Logf("dropping %s: %v", name, err)
			return
		}
		if err := DropGrantRolesOfDatabase(ctx, admin, name); err != nil {
			t.Errorf("dropping the grant roles of %s: %v", name, err)
		}
	})
	u, err := url.Parse(admin)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + name
	return u.String()
}

// LockPostgresTables holds tables (a comma-separated list) of dsn's
// database locked ACCESS EXCLUSIVE from a session of its own, as a
// person's LOCK TABLE or a migration would, until the returned transaction
// ends (or t does): every statement on them waits, which is how the tests
// make a PostgreSQL store that stops answering.
func LockPostgresTables(t testing.TB, dsn, tables string) pgx.Tx {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(ctx) })
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Bounded: a lock the test's own store holds would otherwise hang it.
	lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := tx.Exec(lctx, "LOCK TABLE "+tables+" IN ACCESS EXCLUSIVE MODE"); err != nil {
		t.Fatal(err)
	}
	return tx
}
