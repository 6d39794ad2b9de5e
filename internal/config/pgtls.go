package config

import (
	"errors"
	"net/url"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
)

// checkPostgresTLS requires a PostgreSQL URL (a postgres target's upstream,
// the store) to reach every host that is not on this machine over TLS that
// verifies the server. Over these connections go the admin role's
// password, the grant roles' SCRAM logins (which a man in the middle can
// relay to the real server), every statement and result and, for the
// store, the whole log. libpq's and pgx's default, sslmode=prefer, falls
// back to plaintext and verifies nothing; require encrypts but lets
// anyone on the path present a certificate.
//
// The check reads what pgx will use: pgconn.ParseConfig, as the gateway
// and the store parse the URL, with the environment (PGSSLMODE,
// PGSSLROOTCERT, …) that fills in what the URL leaves out, host= in the
// query, and each host of a list (host1,host2) with each fallback it makes
// (prefer and allow try TLS and plaintext in turn). A host is free of the
// rule when it is a loopback address (127.0.0.0/8, ::1, localhost: nobody
// is on the path) or a Unix socket directory (pgx never uses TLS there).
// Any other is refused if one of its attempts is plaintext, or TLS that
// skips verification (sslmode=require without sslrootcert). verify-ca,
// and require with sslrootcert, which libpq and pgx treat as verify-ca,
// check the server's chain in VerifyPeerCertificate instead.
//
// ParseConfig also reads sslrootcert, sslcert and sslkey, so a missing or
// unreadable file is reported here rather than at the first connection.
func (d *decoder) checkPostgresTLS(dsn, path string) {
	cfg, err := pgconn.ParseConfig(dsn)
	if err != nil {
		d.errorf(path, "does not parse as a PostgreSQL URL: %s", pgParseErr(err))
		return
	}
	attempts := append([]*pgconn.FallbackConfig{{Host: cfg.Host, Port: cfg.Port, TLSConfig: cfg.TLSConfig}}, cfg.Fallbacks...)
	for _, a := range attempts {
		if network, _ := pgconn.NetworkAddress(a.Host, a.Port); network == "unix" || loopbackHost(a.Host) {
			continue
		}
		if tc := a.TLSConfig; tc != nil && (!tc.InsecureSkipVerify || tc.VerifyPeerCertificate != nil) {
			continue
		}
		d.errorf(path, "host %s is not reached over TLS that verifies the server (sslmode disable, allow, prefer (the default) and require verify nothing); add ?sslmode=verify-full, with &sslrootcert=FILE for a private CA (only a loopback address or a Unix socket may go without)",
			quote(a.Host))
		return
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
