package sniff

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/tlscert"
)

func serve(t *testing.T, o Options) (addr string, pool *x509.CertPool) {
	t.Helper()
	dir := t.TempDir()
	cfg, caPath, err := tlscert.Ensure(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	pem, _ := os.ReadFile(caPath)
	pool = x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	o.TLS = cfg
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sl := Wrap(ln, o)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS != nil {
			io.WriteString(w, "tls")
		} else {
			io.WriteString(w, "plain")
		}
	})}
	go srv.Serve(sl)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String(), pool
}

func get(t *testing.T, c *http.Client, url string) (string, error) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

func TestBothOnOnePort(t *testing.T) {
	addr, pool := serve(t, Options{})
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	if body, err := get(t, c, "https://"+addr+"/"); err != nil || body != "tls" {
		t.Fatalf("https: %q %v", body, err)
	}
	if body, err := get(t, c, "http://"+addr+"/"); err != nil || body != "plain" {
		t.Fatalf("http from loopback: %q %v", body, err)
	}
}

func TestPlaintextRefusedWhenNotAllowed(t *testing.T) {
	addr, _ := serve(t, Options{Plaintext: func(net.Addr) bool { return false }})
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + addr + "/")
	if err != nil {
		t.Fatalf("want a 400 explaining TLS, got %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 400 || !strings.Contains(string(b), "TLS") {
		t.Fatalf("status %d body %q", resp.StatusCode, b)
	}
}

func TestLoopbackOnly(t *testing.T) {
	for addr, want := range map[string]bool{"127.0.0.1:1": true, "[::1]:1": true, "127.9.9.9:5": true, "192.0.2.1:1": false, "[::ffff:127.0.0.1]:1": true, "[2001:db8::1]:1": false} {
		ta, err := net.ResolveTCPAddr("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		if got := LoopbackOnly(ta); got != want {
			t.Errorf("LoopbackOnly(%s) = %v, want %v", addr, got, want)
		}
	}
}

func TestSilentClientTimesOut(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sl := Wrap(ln, Options{Timeout: 100 * time.Millisecond})
	defer sl.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("a client that sends nothing should be closed, got %v", err)
	}
}
