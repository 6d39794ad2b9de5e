package config

import (
	"errors"
	"net/url"
	"strings"

	"github.com/airlock-dev/airlock/internal/pgtls"
	"github.com/jackc/pgx/v5/pgconn"
)

// checkPostgresTLS requires a PostgreSQL URL (a postgres target's upstream,
// the store) to reach every host that is not on this machine over TLS that
// verifies the server (pgtls.Check, which pggw, pgroles and pgstore apply
// again to what they are given). The check reads what pgx will use:
// pgconn.ParseConfig, as the gateway and the store parse the URL, with the
// environment (PGSSLMODE, PGSSLROOTCERT, …) that fills in what the URL
// leaves out.
//
// ParseConfig also reads sslrootcert, sslcert and sslkey, so a missing or
// unreadable file is reported here rather than at the first connection.
func (d *decoder) checkPostgresTLS(dsn, path string) {
	cfg, err := pgconn.ParseConfig(dsn)
	if err != nil {
		d.errorf(path, "does not parse as a PostgreSQL URL: %s", pgParseErr(err))
		return
	}
	var ue *pgtls.UnverifiedError
	if errors.As(pgtls.Check(cfg), &ue) {
		d.errorf(path, "host %s %s", quote(ue.Host), pgtls.Advice)
	}
}

// pgParseErr is what pgconn says is wrong with a connection string,
// without the string itself: ParseConfigError quotes it with its password
// masked only as far as it can tell one.
func pgParseErr(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		// A url.Error quotes the URL whole.
		return ue.Err.Error()
	}
	var pe *pgconn.ParseConfigError
	if !errors.As(err, &pe) {
		return "malformed"
	}
	bare := *pe
	bare.ConnString = ""
	return strings.TrimPrefix(bare.Error(), "cannot parse ``: ")
}
