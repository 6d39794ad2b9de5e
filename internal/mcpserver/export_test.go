package mcpserver

import (
	"testing"
	"time"
)

// SetSQLTimeout sets sql_query's time limit for the rest of t.
func SetSQLTimeout(t testing.TB, d time.Duration) {
	old := sqlTimeout
	sqlTimeout = d
	t.Cleanup(func() { sqlTimeout = old })
}
