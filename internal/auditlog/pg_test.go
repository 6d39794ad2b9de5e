package auditlog

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/airlock-dev/airlock/internal/store/pgstore"
	"github.com/airlock-dev/airlock/internal/testenv"
)

// pgDatabase creates a database of its own on AIRLOCK_TEST_PG_DSN's server
// (dropped when the test ends) and returns its DSN.
func pgDatabase(t testing.TB) string {
	t.Helper()
	return pgDatabaseOn(t, testenv.PostgresDSN(t))
}

// pgDatabaseOn is pgDatabase on the server admin (a DSN) reaches.
func pgDatabaseOn(t testing.TB, admin string) string {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		t.Fatalf("connecting to PostgreSQL: %v", err)
	}
	defer conn.Close(ctx)
	var b [6]byte
	rand.Read(b[:])
	name := "replog_auditlog_" + hex.EncodeToString(b[:])
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if conn, err := pgx.Connect(ctx, admin); err == nil {
			if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
				t.Logf("dropping %s: %v", name, err)
			}
			conn.Close(ctx)
		}
	})
	u, err := url.Parse(admin)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + name
	return u.String()
}

// openPG opens a store on dsn, closed when the test ends: each call is a
// replica's own connection pool.
func openPG(t testing.TB, dsn string) *pgstore.Store {
	t.Helper()
	st, err := pgstore.Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}
