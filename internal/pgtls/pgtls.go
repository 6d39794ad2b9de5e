// Package pgtls holds the rule for the connections Airlock makes to
// PostgreSQL (a postgres target's upstream, the shared store): to a host
// that is not on this machine, only over TLS that verifies the server.
//
// Over these connections go the admin role's password, the grant roles'
// SCRAM logins (which a man in the middle can relay to the real server),
// every statement and result and, for the store, the whole log. libpq's
// and pgx's default, sslmode=prefer, falls back to plaintext and verifies
// nothing; require encrypts but lets anyone on the path present a
// certificate.
//
// internal/config checks the URLs of airlock.yaml at load, naming the
// key at fault; the packages that connect (pggw, pgroles, pgstore) check
// what they are given again, so that a caller that did not come through
// the configuration (a test, another command, a future code path) cannot
// connect otherwise.
package pgtls

import (
	"fmt"
	"net"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
)

// UnverifiedError names a host the configuration reaches without TLS
// that verifies the server. It holds no part of the connection string
// but the host.
type UnverifiedError struct{ Host string }

func (e *UnverifiedError) Error() string {
	return fmt.Sprintf("host %q %s", e.Host, Advice)
}

// Advice follows the host in UnverifiedError's message.
const Advice = "is not reached over TLS that verifies the server (sslmode disable, allow, prefer (the default) and require verify nothing); " +
	"add ?sslmode=verify-full, with &sslrootcert=FILE for a private CA (only a loopback address or a Unix socket may go without)"

// Check returns an *UnverifiedError for the first host of cfg, as
// pgconn.ParseConfig made it (with the PG* environment that fills in what
// the string leaves out, host= in the query, each host of a list and each
// fallback: prefer and allow try TLS and plaintext in turn), that is
// neither on this machine nor reached over TLS that verifies the server;
// nil if there is none.
//
// A host is free of the rule when it is a loopback address (127.0.0.0/8,
// ::1, localhost: nobody is on the path) or a Unix socket directory (pgx
// never uses TLS there). Any other is refused if one of its attempts is
// plaintext, or TLS that skips verification (sslmode=require without
// sslrootcert). verify-ca, and require with sslrootcert, which libpq and
// pgx treat as verify-ca, skip Go's own verification and check the
// server's chain in VerifyPeerCertificate instead.
func Check(cfg *pgconn.Config) error {
	attempts := append([]*pgconn.FallbackConfig{{Host: cfg.Host, Port: cfg.Port, TLSConfig: cfg.TLSConfig}}, cfg.Fallbacks...)
	for _, a := range attempts {
		if network, _ := pgconn.NetworkAddress(a.Host, a.Port); network == "unix" || loopback(a.Host) {
			continue
		}
		if tc := a.TLSConfig; tc != nil && (!tc.InsecureSkipVerify || tc.VerifyPeerCertificate != nil) {
			continue
		}
		return &UnverifiedError{Host: a.Host}
	}
	return nil
}

// loopback reports whether host is a loopback IP or "localhost".
func loopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
