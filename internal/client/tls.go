package client

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/airlock-dev/airlock/internal/tlscert"
)

// TrustCA makes c trust the CA certificates in the PEM file at path, as
// well as the system's: Airlock's own CA (data_dir/ca.pem) when the server
// uses it for the API's certificate. A file that cannot be read or holds
// no certificate is an error every later call returns, so that the CLI
// never silently falls back to a connection it cannot verify.
func (c *Client) TrustCA(path string) *Client {
	pem, err := os.ReadFile(path)
	if err != nil {
		c.setupErr = fmt.Errorf("AIRLOCK_CA: %w", err)
		return c
	}
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(pem) {
		c.setupErr = fmt.Errorf("AIRLOCK_CA: %s holds no PEM certificate", path)
		return c
	}
	c.tlsConfig().RootCAs = pool
	return c
}

// tlsConfig is the TLS configuration of c's own transport, which it makes
// on first use (TrustCA, UseClientCert) in place of Go's default one.
func (c *Client) tlsConfig() *tls.Config {
	if c.tls == nil {
		c.tls = &tls.Config{MinVersion: tls.VersionTLS12}
		c.HTTP = &http.Client{Timeout: c.HTTP.Timeout, CheckRedirect: c.HTTP.CheckRedirect, Transport: &http.Transport{
			Proxy:               http.ProxyFromEnvironment,
			TLSClientConfig:     c.tls,
			TLSHandshakeTimeout: 10 * time.Second,
			IdleConnTimeout:     90 * time.Second,
		}}
	}
	return c.tls
}

// UseClientCert makes c present the certificate in the PEM file certPath,
// with the private key in keyPath ("": in certPath too), to the server
// when it asks for one, as Airlock's listeners do: its fingerprint (the
// SHA-256 of the certificate) becomes part of the caller's instance, so
// that two agents behind one address are told apart, and a grant
// requested with it is seen as moved when its credentials are used with
// another. The server checks no CA: a self-signed certificate does. Over
// http:// there is no handshake to present it in, so a plaintext address
// is an error every call returns rather than an instance silently
// without it. Errors name the files, never what the key holds.
func (c *Client) UseClientCert(certPath, keyPath string) *Client {
	if c.setupErr != nil {
		return c
	}
	if keyPath == "" {
		keyPath = certPath
	}
	pair, err := tls.LoadX509KeyPair(certPath, keyPath)
	if err != nil {
		c.setupErr = fmt.Errorf("AIRLOCK_CLIENT_CERT %s, AIRLOCK_CLIENT_KEY %s: %w", certPath, keyPath, err)
		return c
	}
	n := 0
	for _, der := range pair.Certificate {
		n += len(der)
	}
	if len(pair.Certificate) > tlscert.MaxClientChain || n > tlscert.MaxClientChainBytes {
		c.setupErr = fmt.Errorf("AIRLOCK_CLIENT_CERT %s holds %d certificates (%d bytes); the server accepts a chain of at most %d (%d bytes)",
			certPath, len(pair.Certificate), n, tlscert.MaxClientChain, tlscert.MaxClientChainBytes)
		return c
	}
	if u, err := url.Parse(c.Addr); err == nil && !strings.EqualFold(u.Scheme, "https") {
		c.setupErr = fmt.Errorf("AIRLOCK_CLIENT_CERT is set but AIRLOCK_ADDR %s is not https://: a client certificate is presented only over TLS; use https://%s", c.Addr, u.Host)
		return c
	}
	c.tlsConfig().Certificates = []tls.Certificate{pair}
	return c
}

// explainTLS adds what to do to a certificate the client does not trust.
func explainTLS(err error) error {
	var ua x509.UnknownAuthorityError
	var he x509.HostnameError
	switch {
	case errors.As(err, &ua):
		return fmt.Errorf("%w (to trust Airlock's own CA, set AIRLOCK_CA to the server's data_dir/ca.pem)", err)
	case errors.As(err, &he):
		return fmt.Errorf("%w (connect with a name the server's certificate covers, such as 127.0.0.1 or localhost)", err)
	}
	return err
}

// RefusePlaintext makes every call of c fail, before anything is sent,
// when c would send its key over plaintext http:// to a host that is not
// a loopback address (localhost, 127.0.0.0/8, ::1): the server refuses
// such a request, but only after the key has crossed the network in
// clear. An http:// address to a loopback host, or with no key, is left
// alone.
func (c *Client) RefusePlaintext() *Client {
	if c.setupErr != nil || c.Token == "" {
		return c
	}
	u, err := url.Parse(c.Addr)
	if err != nil || !strings.EqualFold(u.Scheme, "http") || IsLoopback(u.Hostname()) {
		return c
	}
	c.setupErr = fmt.Errorf("AIRLOCK_ADDR %s is plaintext http:// to a host that is not a loopback address: the key would cross the network in clear; use https://%s (with AIRLOCK_CA), or set AIRLOCK_ALLOW_PLAINTEXT=1 if the server's tls.allow_plaintext serves a network that never leaves this host", c.Addr, u.Host)
	return c
}

// IsLoopback reports whether host (a name or an IP address) is this
// machine by definition: localhost, or a loopback IP. Other names are not
// resolved: what they resolve to may change before the connection.
func IsLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
