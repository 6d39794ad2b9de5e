package pgstore

import (
	"context"
	"testing"

	"github.com/airlock-dev/airlock/internal/pgtls/pgtlstest"
)

// Open refuses a store DSN to a host off this machine without TLS that
// verifies the server, before connecting: the whole log would cross it.
// airlock.yaml's check at load (internal/config) is not the only way to
// reach Open. The test server's DSN, on loopback, opens.
func TestOpenRefusesUnverifiedDSN(t *testing.T) {
	dsn := freshDB(t)
	s, err := Open(t.Context(), dsn)
	if err != nil {
		t.Fatalf("loopback store: %v", err)
	}
	s.Close()
	pgtlstest.Refused(t, dsn, func(ctx context.Context, dsn string) error {
		s, err := Open(ctx, dsn)
		if err == nil {
			s.Close()
		}
		return err
	})
}
