package cli

import (
	"net/url"
	"os"
	"path/filepath"

	"gopkg.in/yaml.v3"

	"github.com/airlock-dev/airlock/internal/client"
	"github.com/airlock-dev/airlock/internal/credenv"
	"github.com/airlock-dev/airlock/internal/tlscert"
)

// EnvCA names a PEM file of the CA that issued the API's certificate.
const EnvCA = "AIRLOCK_CA"

// EnvAllowPlaintext, set to 1, lets the CLI send its key over http:// to a
// host that is not a loopback address (a server with tls.allow_plaintext on
// a network that never leaves the host); otherwise it refuses to.
const EnvAllowPlaintext = "AIRLOCK_ALLOW_PLAINTEXT"

// defaultConfig is where `airlock serve` reads its configuration by default;
// an https client run next to it trusts its data directory's CA.
const defaultConfig = "airlock.yaml"

// EnvClientCert and EnvClientKey name the PEM files of a TLS client
// certificate and its key (the key may be in the certificate's file) that
// the CLI presents to the server: part of the agent's instance
// fingerprint (client.UseClientCert).
const (
	EnvClientCert = "AIRLOCK_CLIENT_CERT"
	EnvClientKey  = "AIRLOCK_CLIENT_KEY"
)

func (a *app) client() *client.Client {
	c := client.New(a.getenv(EnvAddr), a.getenv(EnvToken))
	if ca := a.caFile(c.Addr); ca != "" {
		c.TrustCA(ca)
	}
	if cc := a.clientCert(); cc.Cert != "" {
		c.UseClientCert(cc.Cert, cc.Key)
	}
	if a.getenv(EnvAllowPlaintext) != "1" {
		c.RefusePlaintext()
	}
	return c
}

// clientCert is the client certificate's and key's files as the
// environment names them (EnvClientCert, EnvClientKey), absolute: the
// commands exec and run_with_grant start present them too (credenv.Env),
// and may run in another directory.
func (a *app) clientCert() credenv.ClientCert {
	cert, key := a.getenv(EnvClientCert), a.getenv(EnvClientKey)
	if cert == "" {
		cert = key // the key's file holds the certificate too, or the error says it does not
	}
	if cert == "" {
		return credenv.ClientCert{}
	}
	return credenv.ClientCert{Cert: absPath(cert), Key: absPath(key)}
}

// absPath is p made absolute, or p if it is "" or that fails.
func absPath(p string) string {
	if p == "" {
		return p
	}
	if abs, err := filepath.Abs(p); err == nil {
		return abs
	}
	return p
}

// caFile is the CA certificate to trust for the API at addr: $AIRLOCK_CA,
// or else, for an https address of this machine (a loopback host), the
// ca.pem of the data directory that ./airlock.yaml names, if there is one.
// "" trusts the system's CAs only.
//
// The working directory is not the caller's to vouch for (an agent works
// in repositories it cloned): a CA found through it is trusted only for a
// server on this machine, never for a remote one, where it would let
// whoever wrote that airlock.yaml intercept the key.
func (a *app) caFile(addr string) string {
	if ca := a.getenv(EnvCA); ca != "" {
		return ca
	}
	u, err := url.Parse(addr)
	if err != nil || u.Scheme != "https" || !client.IsLoopback(u.Hostname()) {
		return ""
	}
	return dataDirCA(defaultConfig)
}

// dataDirCA reads only data_dir from the configuration file at path
// (resolved against the file's directory, as serve does) and returns its
// ca.pem if that exists.
func dataDirCA(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	var c struct {
		DataDir string `yaml:"data_dir"`
	}
	if yaml.Unmarshal(b, &c) != nil || c.DataDir == "" {
		return ""
	}
	dir := c.DataDir
	if !filepath.IsAbs(dir) {
		dir = filepath.Join(filepath.Dir(path), dir)
	}
	ca := filepath.Join(dir, tlscert.CAFile)
	if _, err := os.Stat(ca); err != nil {
		return ""
	}
	return ca
}
