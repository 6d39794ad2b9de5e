// Package pgtlstest checks that a function given a PostgreSQL DSN refuses
// one to a host off this machine without TLS that verifies the server.
package pgtlstest

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/pgtls"
)

// Refused runs open on dsn (a URL the test server accepts) moved to hosts
// off this machine, with pgx's default sslmode and two that verify
// nothing, and a password; each must fail with a *pgtls.UnverifiedError
// naming the host, the password left out. Without the check open would
// try to connect: a TEST-NET address, or a name that does not resolve,
// and a context of a few seconds bound the attempt.
func Refused(t *testing.T, dsn string, open func(ctx context.Context, dsn string) error) {
	t.Helper()
	t.Setenv("PGSSLMODE", "")
	for _, c := range []struct{ host, sslmode string }{
		{"198.51.100.7", ""}, // pgx's default: prefer
		{"198.51.100.7", "disable"},
		{"db.internal", "require"},
	} {
		u, err := url.Parse(dsn)
		if err != nil {
			t.Fatal(err)
		}
		u.Host = c.host
		u.User = url.UserPassword(u.User.Username(), "s3cret")
		q := u.Query()
		q.Del("sslmode")
		if c.sslmode != "" {
			q.Set("sslmode", c.sslmode)
		}
		u.RawQuery = q.Encode()
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		err = open(ctx, u.String())
		cancel()
		var ue *pgtls.UnverifiedError
		if !errors.As(err, &ue) || ue.Host != c.host || strings.Contains(err.Error(), "s3cret") {
			t.Errorf("%s, sslmode %q: %v, want the host refused", c.host, c.sslmode, err)
		}
	}
}
