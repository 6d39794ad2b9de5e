package pgtls

import (
	"errors"
	"path/filepath"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/airlock-dev/airlock/internal/tlscert"
)

// Check reads what pgx will use: each host, each fallback, the sslmode
// that applies. internal/config's TestPostgresTLS runs the same rule
// through airlock.yaml with more forms; this one holds for the packages
// that connect.
func TestCheck(t *testing.T) {
	for _, v := range []string{"PGHOST", "PGPORT", "PGSSLMODE", "PGSSLROOTCERT", "PGSSLCERT", "PGSSLKEY",
		"PGSSLNEGOTIATION", "PGSERVICE", "PGSERVICEFILE", "PGTARGETSESSIONATTRS"} {
		t.Setenv(v, "")
	}
	dir := t.TempDir()
	if _, _, err := tlscert.Ensure(dir, []string{"127.0.0.1"}); err != nil {
		t.Fatal(err)
	}
	ca := filepath.Join(dir, "ca.pem")
	for _, c := range []struct {
		name, dsn string
		host      string // the host refused; "" if none is
	}{
		{"loopback, disable", "postgres://a@127.0.0.1/db?sslmode=disable", ""},
		{"localhost, prefer", "postgres://a@localhost/db", ""},
		{"::1, require", "postgres://a@[::1]/db?sslmode=require", ""},
		{"unix socket", "postgres://a@/db?host=/var/run/postgresql&sslmode=disable", ""},
		{"verify-full", "postgres://a@db.internal/db?sslmode=verify-full", ""},
		{"verify-ca", "postgres://a@db.internal/db?sslmode=verify-ca&sslrootcert=" + ca, ""},
		{"require with sslrootcert", "postgres://a@db.internal/db?sslmode=require&sslrootcert=" + ca, ""},
		{"no sslmode (prefer)", "postgres://a:pw@db.internal/db", "db.internal"},
		{"disable", "postgres://a@10.0.0.5/db?sslmode=disable", "10.0.0.5"},
		{"require", "postgres://a@db.internal/db?sslmode=require", "db.internal"},
		{"a fallback host in plaintext", "postgres://a@127.0.0.1,db.internal/db?sslmode=prefer", "db.internal"},
		{"keyword form", "host=db.internal user=a dbname=db sslmode=allow", "db.internal"},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg, err := pgconn.ParseConfig(c.dsn)
			if err != nil {
				t.Fatal(err)
			}
			err = Check(cfg)
			var ue *UnverifiedError
			switch {
			case c.host == "" && err != nil:
				t.Errorf("refused: %v", err)
			case c.host != "" && !errors.As(err, &ue):
				t.Errorf("accepted (%v), want %s refused", err, c.host)
			case c.host != "" && ue.Host != c.host:
				t.Errorf("refused host %q, want %q", ue.Host, c.host)
			}
		})
	}
}
