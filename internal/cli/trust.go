package cli

import (
	"net/url"
	"os"
	"path/filepath"

	"gopkg.in/yaml.v3"

	"github.com/airlock-dev/airlock/internal/client"
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
	if cert, key := a.getenv(EnvClientCert), a.getenv(EnvClientKey); cert != "" || key != "" {
		if cert == "" {
			cert = key // the key's file holds the certificate too, or the error says it does not
		}
		c.UseClientCert(cert, key)
	}
	if a.getenv(EnvAllowPlaintext) != "1" {
		c.RefusePlaintext()
	}
	return c
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
