// Package tlscert gives the gateways their TLS server certificate: either
// the certificate and key files the configuration names, or one Airlock
// issues itself from a private CA kept in data_dir. The CA certificate is
// written out (ca.pem) so that clients can trust it: AWS_CA_BUNDLE for AWS
// tools, PGSSLROOTCERT / sslrootcert for PostgreSQL clients.
package tlscert

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/airlock-dev/airlock/internal/safefile"
)

// Files written in the data directory.
const (
	CAFile      = "ca.pem"
	caKeyFile   = "ca.key"
	certFile    = "gateway.pem"
	certKeyFile = "gateway.key"
)

// Load returns a server TLS config from the named PEM files.
func Load(certPath, keyPath string) (*tls.Config, error) {
	c, err := tls.LoadX509KeyPair(certPath, keyPath)
	if err != nil {
		return nil, fmt.Errorf("tls: %w", err)
	}
	return serverConfig(c), nil
}

// Ensure returns a server TLS config for hosts (names or IP addresses),
// issued by the private CA in dir, creating the CA on first use and a new
// leaf whenever the hosts change or the leaf is within a week of expiry.
// It returns the path of the CA certificate for clients to trust.
func Ensure(dir string, hosts []string) (*tls.Config, string, error) {
	hosts = normalise(hosts)
	caCert, caKey, err := loadOrCreateCA(dir)
	if err != nil {
		return nil, "", err
	}
	caPath := filepath.Join(dir, CAFile)
	if c, err := tls.LoadX509KeyPair(filepath.Join(dir, certFile), filepath.Join(dir, certKeyFile)); err == nil {
		if leaf, err := x509.ParseCertificate(c.Certificate[0]); err == nil && covers(leaf, hosts) &&
			time.Until(leaf.NotAfter) > 7*24*time.Hour && leaf.CheckSignatureFrom(caCert) == nil {
			return serverConfig(c), caPath, nil
		}
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, "", err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: "airlock gateway"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(90 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		return nil, "", err
	}
	if err := writePEM(filepath.Join(dir, certFile), "CERTIFICATE", der, 0o644); err != nil {
		return nil, "", err
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, "", err
	}
	if err := writePEM(filepath.Join(dir, certKeyFile), "EC PRIVATE KEY", kb, 0o600); err != nil {
		return nil, "", err
	}
	c := tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
	return serverConfig(c), caPath, nil
}

// serverConfig serves c and asks every client for a certificate
// (tls.RequestClientCert): one presented is never checked against a CA,
// and none is as good as one. It is a fingerprint of the client's
// instance (findings), not an authentication: the handshake proves the
// client holds the certificate's key (CertificateVerify), so no other
// client can present it, and the API's keys and the grants' credentials
// still say who the client is. Go bounds what a client may send: its
// certificate message lies within the 64 KiB handshake message limit,
// and an RSA key in it is at most 8192 bits. That message may be 256 KiB,
// though, and the connection keeps the certificates for its life (an idle
// PostgreSQL session for hours): boundChain refuses a chain longer than
// MaxClientChain certificates or MaxClientChainBytes.
func serverConfig(c tls.Certificate) *tls.Config {
	return &tls.Config{Certificates: []tls.Certificate{c}, MinVersion: tls.VersionTLS12,
		ClientAuth: tls.RequestClientCert, VerifyPeerCertificate: boundChain}
}

// Bounds of a client's certificate chain. A client certificate is one
// certificate, or one with its issuers (two or three in an enterprise
// PKI), of one or two KiB each.
const (
	MaxClientChain      = 4
	MaxClientChainBytes = 16 << 10
)

// boundChain refuses a client certificate chain longer than
// MaxClientChain certificates or MaxClientChainBytes in all: the handshake
// fails with the reason (bad_certificate to the client).
func boundChain(raw [][]byte, _ [][]*x509.Certificate) error {
	if len(raw) > MaxClientChain {
		return fmt.Errorf("tls: the client's certificate chain has %d certificates; at most %d are accepted", len(raw), MaxClientChain)
	}
	n := 0
	for _, c := range raw {
		n += len(c)
	}
	if n > MaxClientChainBytes {
		return fmt.Errorf("tls: the client's certificate chain is %d bytes; at most %d are accepted", n, MaxClientChainBytes)
	}
	return nil
}

// normalise always includes the loopback names, so a gateway listening on
// 127.0.0.1 is reachable as localhost too, and S3 virtual-hosted names.
func normalise(hosts []string) []string {
	out := []string{"localhost", "127.0.0.1", "::1"}
	for _, h := range hosts {
		if h != "" && h != "0.0.0.0" && h != "::" && !slices.Contains(out, h) {
			out = append(out, h)
		}
	}
	return out
}

func covers(leaf *x509.Certificate, hosts []string) bool {
	for _, h := range hosts {
		if leaf.VerifyHostname(h) != nil {
			return false
		}
	}
	return true
}

func loadOrCreateCA(dir string) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	certPath, keyPath := filepath.Join(dir, CAFile), filepath.Join(dir, caKeyFile)
	cb, cerr := os.ReadFile(certPath)
	kb, kerr := os.ReadFile(keyPath)
	if cerr == nil && kerr == nil {
		cert, key, err := parseCA(cb, kb)
		if err != nil {
			return nil, nil, fmt.Errorf("tls: the gateway CA in %s: %w", dir, err)
		}
		return cert, key, nil
	}
	if !errors.Is(cerr, fs.ErrNotExist) && cerr != nil {
		return nil, nil, cerr
	}
	if !errors.Is(kerr, fs.ErrNotExist) && kerr != nil {
		return nil, nil, kerr
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "airlock gateway CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(10 * 365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, err
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	if err := writePEM(keyPath, "EC PRIVATE KEY", kder, 0o600); err != nil {
		return nil, nil, err
	}
	if err := writePEM(certPath, "CERTIFICATE", der, 0o644); err != nil {
		return nil, nil, err
	}
	cert, err := x509.ParseCertificate(der)
	return cert, key, err
}

func parseCA(cb, kb []byte) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	cp, _ := pem.Decode(cb)
	kp, _ := pem.Decode(kb)
	if cp == nil || kp == nil {
		return nil, nil, errors.New("not PEM")
	}
	cert, err := x509.ParseCertificate(cp.Bytes)
	if err != nil {
		return nil, nil, err
	}
	key, err := x509.ParseECPrivateKey(kp.Bytes)
	if err != nil {
		return nil, nil, err
	}
	return cert, key, nil
}

func writePEM(path, typ string, der []byte, mode os.FileMode) error {
	// Through a temporary file of its own (created new, 0600, then given
	// mode), synced before the rename: a fixed "path.tmp" opened with
	// os.WriteFile kept the mode of a file already there (a key written
	// into a leftover 0644 file stayed readable by everyone) and followed
	// a symbolic link put in its place, and without a sync a crash could
	// leave an empty key or certificate behind the rename.
	return safefile.WriteAtomic(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), mode)
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic(err)
	}
	return n
}
