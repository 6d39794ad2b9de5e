package auditlog

import (
	"context"
	"testing"

	"github.com/airlock-dev/airlock/internal/store/pgstore"
	"github.com/airlock-dev/airlock/internal/testenv"
)

// pgDatabase creates a database of its own on AIRLOCK_TEST_PG_DSN's server
// (dropped when the test ends) and returns its DSN.
func pgDatabase(t testing.TB) string {
	t.Helper()
	return testenv.PostgresDatabase(t, testenv.PostgresDSN(t), "replog_auditlog")
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
