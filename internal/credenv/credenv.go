// Package credenv turns a grant's credentials into the environment a
// client needs to reach the target through the gateway: what `airlock exec`
// and the MCP tool run_with_grant give the command they run.
package credenv

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/airlock-dev/airlock/internal/grants"
)

// Var is one variable a grant's client needs.
type Var struct{ Name, Value string }

// ClientCert names the PEM files of the TLS client certificate the agent
// presents (AIRLOCK_CLIENT_CERT) and of its key (AIRLOCK_CLIENT_KEY, which
// may be the certificate's file): part of the agent's instance. The zero
// value is none.
type ClientCert struct{ Cert, Key string }

// Env is the environment that points a client at the gateway
// with a grant's credentials: the AWS variables for aws targets, libpq's
// for postgres targets. caFile, if not empty, is the gateway's CA
// certificate written to disk (see WriteCA). With cc, libpq presents the
// agent's client certificate to the gateway (PGSSLCERT, PGSSLKEY), so that
// the session's instance is the agent's: without it a psql session had no
// certificate even when the agent's API calls had one. AWS clients have
// no variable for one.
func Env(cr grants.Credentials, caFile string, cc ClientCert) []Var {
	vars := []Var{{"AIRLOCK_GRANT", cr.GrantID}}
	e := cr.Endpoint
	switch cr.TargetKind {
	case "aws":
		vars = append(vars,
			Var{"AWS_ACCESS_KEY_ID", cr.AccessKeyID},
			Var{"AWS_SECRET_ACCESS_KEY", cr.SecretAccessKey},
			Var{"AWS_SESSION_TOKEN", cr.SessionToken})
		if e != nil {
			if e.URL != "" {
				vars = append(vars, Var{"AWS_ENDPOINT_URL", e.URL})
			}
			if e.Region != "" {
				vars = append(vars, Var{"AWS_REGION", e.Region}, Var{"AWS_DEFAULT_REGION", e.Region})
			}
		}
		if caFile != "" {
			vars = append(vars, Var{"AWS_CA_BUNDLE", caFile})
		}
	case "postgres":
		// PGREQUIREAUTH (libpq 16 and later; older ones ignore it): the
		// gateway only ever asks for SCRAM-SHA-256, so a server that asks
		// for the password in clear or as MD5 is not the gateway, and must
		// not be given the grant's secret.
		vars = append(vars, Var{"PGUSER", cr.AccessKeyID}, Var{"PGPASSWORD", cr.SecretAccessKey},
			Var{"PGREQUIREAUTH", "scram-sha-256"})
		if e != nil {
			vars = append(vars, Var{"PGHOST", e.Host}, Var{"PGPORT", strconv.Itoa(e.Port)},
				Var{"PGDATABASE", e.Database}, Var{"PGSSLMODE", SSLModeFor(e.SSLMode, cc)})
		}
		if cc.Cert != "" {
			key := cc.Key
			if key == "" {
				key = cc.Cert // libpq reads the key out of the certificate's file
			}
			vars = append(vars, Var{"PGSSLCERT", cc.Cert}, Var{"PGSSLKEY", key})
		}
		if caFile != "" {
			vars = append(vars, Var{"PGSSLROOTCERT", caFile})
		} else if e != nil && e.SSLMode == "verify-full" {
			// The gateway's certificate is the operator's (tls.cert_file):
			// libpq checks it against no roots of its own, so name the
			// machine's (see SystemRoots).
			vars = append(vars, Var{"PGSSLROOTCERT", SystemRoots()})
		}
	default:
		vars = append(vars, Var{"AIRLOCK_ACCESS_KEY_ID", cr.AccessKeyID}, Var{"AIRLOCK_SECRET", cr.SecretAccessKey})
	}
	return vars
}

// SSLModeFor is the sslmode a client presenting cc uses for a gateway
// whose endpoint says mode. A certificate is presented only over TLS, and
// libpq's prefer (the endpoint's mode on one machine) falls back to
// plaintext when TLS fails, an unreadable key included: the session would
// then silently be an instance without the certificate. So with one,
// prefer and allow become require; a gateway without TLS (disable) cannot
// be sent one.
func SSLModeFor(mode string, cc ClientCert) string {
	if cc.Cert != "" && (mode == "prefer" || mode == "allow") {
		return "require"
	}
	return mode
}

// systemBundles are where Linux distributions and macOS keep the trusted
// roots as one PEM file (the list Go's crypto/x509 reads on Linux, in its
// order).
var systemBundles = []string{
	"/etc/ssl/certs/ca-certificates.crt",                // Debian, Ubuntu, Gentoo, Arch
	"/etc/pki/tls/certs/ca-bundle.crt",                  // Fedora, RHEL 6
	"/etc/ssl/ca-bundle.pem",                            // openSUSE
	"/etc/pki/tls/cacert.pem",                           // OpenELEC
	"/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem", // CentOS, RHEL 7
	"/etc/ssl/cert.pem",                                 // Alpine, macOS
}

// SystemRoots is what PGSSLROOTCERT names for a gateway whose certificate
// the client checks against the machine's trusted roots: SSL_CERT_FILE if
// set (OpenSSL and Go read it too), else the first of the usual bundle
// files that exists, else libpq's "system" (libpq 16 and later; an older
// libpq then fails to find a file of that name and refuses to connect,
// which is safer than not checking).
func SystemRoots() string {
	if f := os.Getenv("SSL_CERT_FILE"); f != "" {
		return f
	}
	for _, f := range systemBundles {
		if _, err := os.Stat(f); err == nil {
			return f
		}
	}
	return "system"
}

// WriteCA writes the gateway's CA certificate (when Airlock's own CA issued
// the gateway's certificate) to the user's cache directory, named by its
// hash so that concurrent commands agree, and returns the path; "" if there
// is none.
func WriteCA(cr grants.Credentials) (string, error) {
	if cr.Endpoint == nil || cr.Endpoint.CAPEM == "" {
		return "", nil
	}
	dir, err := os.UserCacheDir()
	if err == nil {
		dir = filepath.Join(dir, "airlock")
	} else {
		// No cache directory (HOME unset): a directory of this user's in
		// the shared temporary directory.
		dir = filepath.Join(os.TempDir(), "airlock-"+strconv.Itoa(os.Getuid()))
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("writing the gateway CA: %w", err)
	}
	// The client trusts whatever certificate the file holds: a directory
	// someone else owns or may write to (made in advance in a shared
	// temporary directory) would let them swap it and read the traffic.
	if err := private(dir); err != nil {
		return "", fmt.Errorf("writing the gateway CA: %w", err)
	}
	sum := sha256.Sum256([]byte(cr.Endpoint.CAPEM))
	path := filepath.Join(dir, "gateway-ca-"+hex.EncodeToString(sum[:6])+".pem")
	if b, err := os.ReadFile(path); err == nil && string(b) == cr.Endpoint.CAPEM {
		return path, nil
	}
	tmp, err := os.CreateTemp(dir, "ca-*.pem")
	if err != nil {
		return "", fmt.Errorf("writing the gateway CA: %w", err)
	}
	if _, err := tmp.WriteString(cr.Endpoint.CAPEM); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return "", err
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return "", err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return "", err
	}
	return path, nil
}

// Environ is the environment for a command run with a grant: environ (the
// caller's own, os.Environ()) without AIRLOCK_TOKEN, which holds the
// caller's long-lived key and which the command does not need, without
// any variable the grant sets (so that a stale AWS_SESSION_TOKEN or
// PGSSLROOTCERT does not survive), and without the variables that would
// send the client somewhere other than the gateway the grant names (see
// reroutes), followed by the grant's variables that have a value.
func Environ(environ []string, vars []Var) []string {
	drop := map[string]bool{"AIRLOCK_TOKEN": true}
	for _, v := range vars {
		drop[v.Name] = true
	}
	env := make([]string, 0, len(environ)+len(vars))
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if !drop[name] && !reroutes(name, drop) {
			env = append(env, kv)
		}
	}
	for _, v := range vars {
		if v.Value != "" {
			env = append(env, v.Name+"="+v.Value)
		}
	}
	return env
}

// reroutes reports whether the caller's variable name, left in the
// command's environment, would take precedence over the grant's endpoint
// (set names the grant's variables): the client would then carry the
// grant's credentials past the gateway, to wherever the caller's
// environment points, or to AWS itself. For AWS clients, a service's own
// AWS_ENDPOINT_URL_<SERVICE> wins over AWS_ENDPOINT_URL, and
// AWS_IGNORE_CONFIGURED_ENDPOINT_URLS discards both. For libpq,
// PGHOSTADDR replaces the address PGHOST resolves to, and a service named
// by PGSERVICE (in PGSERVICEFILE or the system's pg_service.conf) sets
// the host and port before the environment's PGHOST and PGPORT are read.
func reroutes(name string, set map[string]bool) bool {
	switch {
	case set["AWS_ACCESS_KEY_ID"]:
		return strings.HasPrefix(name, "AWS_ENDPOINT_URL_") || name == "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS"
	case set["PGUSER"]:
		return name == "PGHOSTADDR" || name == "PGSERVICE" || name == "PGSERVICEFILE"
	}
	return false
}
