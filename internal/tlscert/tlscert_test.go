package tlscert

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"os"
	"path/filepath"
	"testing"
)

func TestEnsureServesAndIsTrustedByItsCA(t *testing.T) {
	dir := t.TempDir()
	cfg, caPath, err := Ensure(dir, []string{"gw.example.test"})
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(filepath.Join(dir, caKeyFile)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("CA key mode: %v %v", fi.Mode(), err)
	}
	pool := x509.NewCertPool()
	pem, err := os.ReadFile(caPath)
	if err != nil || !pool.AppendCertsFromPEM(pem) {
		t.Fatalf("CA file unreadable: %v", err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err == nil {
			_ = c.(*tls.Conn).Handshake()
			c.Close()
		}
	}()
	for _, name := range []string{"127.0.0.1", "localhost", "gw.example.test"} {
		conn, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{RootCAs: pool, ServerName: name})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		conn.Close()
		go func() {
			c, err := ln.Accept()
			if err == nil {
				_ = c.(*tls.Conn).Handshake()
				c.Close()
			}
		}()
	}
	// A name the certificate was not issued for is refused.
	_, err = tls.Dial("tcp", ln.Addr().String(), &tls.Config{RootCAs: pool, ServerName: "other.test"})
	if err == nil {
		t.Fatal("a foreign name was accepted")
	}
}

func TestEnsureReusesAndReissues(t *testing.T) {
	dir := t.TempDir()
	a, _, err := Ensure(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _, err := Ensure(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if string(a.Certificates[0].Certificate[0]) != string(b.Certificates[0].Certificate[0]) {
		t.Fatal("same hosts: the leaf should be reused")
	}
	c, _, err := Ensure(dir, []string{"new.test"})
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(c.Certificates[0].Certificate[0])
	if err != nil || leaf.VerifyHostname("new.test") != nil {
		t.Fatalf("new host not covered: %v", err)
	}
	if ip := net.ParseIP("::1"); !slicesContainsIP(leaf.IPAddresses, ip) {
		t.Fatal("::1 missing")
	}
}

func slicesContainsIP(ips []net.IP, ip net.IP) bool {
	for _, x := range ips {
		if x.Equal(ip) {
			return true
		}
	}
	return false
}
