package pgroles

import (
	"context"
	"testing"

	"github.com/airlock-dev/airlock/internal/pgtls/pgtlstest"
)

// New refuses an admin DSN to a host off this machine without TLS that
// verifies the server, before connecting: the admin's password and every
// grant role's verifier would cross it. airlock.yaml's check at load
// (internal/config) is not the only way to reach New. The test server's
// own DSN, on loopback, stays accepted.
func TestNewRefusesUnverifiedAdminDSN(t *testing.T) {
	e := need(t)
	newManager(t) // loopback, as the test server's DSN is
	pgtlstest.Refused(t, e.adminDSN, func(ctx context.Context, dsn string) error {
		m, err := New(ctx, dsn, nil)
		if err == nil {
			m.Close()
		}
		return err
	})
}
