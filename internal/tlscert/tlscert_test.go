package tlscert

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
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

// TestClientCertificateRequested: the listeners ask for a client
// certificate and take any (self-signed, no CA), and a client presenting
// none still gets in; a chain longer than MaxClientChain certificates is
// refused in the handshake.
func TestClientCertificateRequested(t *testing.T) {
	cfg, caPath, err := Ensure(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	pem, err := os.ReadFile(caPath)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	self, _, err := Ensure(t.TempDir(), nil) // any certificate and key will do as the client's
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	seen := make(chan int, 1)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			tc := c.(*tls.Conn)
			if tc.Handshake() != nil {
				seen <- -1
			} else {
				seen <- len(tc.ConnectionState().PeerCertificates)
			}
			c.Close()
		}
	}()
	dial := func(certs []tls.Certificate) (int, error) {
		c, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{RootCAs: pool, ServerName: "localhost", Certificates: certs})
		if err == nil {
			// TLS 1.3: the server's verdict on the client's certificate
			// comes with the first read.
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			_, err = c.Read(make([]byte, 1))
			c.Close()
		}
		return <-seen, err
	}
	if n, _ := dial(nil); n != 0 {
		t.Fatalf("no client certificate: server saw %d", n)
	}
	client := self.Certificates[0]
	if n, _ := dial([]tls.Certificate{client}); n != 1 {
		t.Fatalf("a self-signed client certificate: server saw %d, want it accepted unverified", n)
	}
	long := client
	for len(long.Certificate) <= MaxClientChain {
		long.Certificate = append(long.Certificate, client.Certificate[0])
	}
	if n, err := dial([]tls.Certificate{long}); n != -1 || err == nil {
		t.Fatalf("a chain of %d certificates: server saw %d, client %v; want the handshake refused", len(long.Certificate), n, err)
	}
}

// TestEnsureKeysPrivateWhateverIsLeftBeside: the keys are 0600 and the
// files they are written beside are left alone, even where an earlier
// write's temporary name holds a world-readable file or a symbolic link to
// another file. Written through a fixed "NAME.tmp" with os.WriteFile, a
// key took the leftover file's 0644 and a link's target was overwritten.
func TestEnsureKeysPrivateWhateverIsLeftBeside(t *testing.T) {
	dir := t.TempDir()
	outside := filepath.Join(t.TempDir(), "elsewhere")
	if err := os.WriteFile(outside, []byte("not airlock's"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, caKeyFile+".tmp"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(dir, certKeyFile+".tmp")); err != nil {
		t.Fatal(err)
	}
	if _, _, err := Ensure(dir, []string{"gw.example.test"}); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{caKeyFile, certKeyFile} {
		fi, err := os.Lstat(filepath.Join(dir, name))
		if err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v %v, want a regular file of mode 0600", name, fi.Mode(), err)
		}
	}
	if b, err := os.ReadFile(outside); err != nil || string(b) != "not airlock's" {
		t.Errorf("the file a leftover link named was written: %q %v", b, err)
	}
}
