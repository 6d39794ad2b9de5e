package server

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/config"
	"github.com/airlock-dev/airlock/internal/tlscert"
)

// serveAPI serves a handler that says whether it was reached over TLS
// through s.apiListener on a loopback port.
func serveAPI(t *testing.T, s *Server) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	al, err := s.apiListener(ln)
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, map[bool]string{true: "tls", false: "plain"}[r.TLS != nil])
	}), ReadHeaderTimeout: 5 * time.Second}
	go hs.Serve(al)
	t.Cleanup(func() { hs.Close() })
	return ln.Addr().String()
}

func fetch(t *testing.T, c *http.Client, url string) (int, string, error) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

func poolOf(t *testing.T, path string) *x509.CertPool {
	t.Helper()
	pem, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	p := x509.NewCertPool()
	if !p.AppendCertsFromPEM(pem) {
		t.Fatal("no certificate in", path)
	}
	return p
}

// TestAPIListener: the API speaks TLS with Airlock's CA, and plaintext
// only to the clients APIPlaintext allows (a client on another machine is
// refused with a 400 that says to use https://); by default loopback
// clients keep plain http.
func TestAPIListener(t *testing.T) {
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	remote := &Server{Config: &config.Config{DataDir: t.TempDir(), Listen: config.Listen{API: "127.0.0.1:0"}}, logger: logger,
		APIPlaintext: func(net.Addr) bool { return false }}
	addr := serveAPI(t, remote)
	pool := poolOf(t, filepath.Join(remote.Config.DataDir, tlscert.CAFile))
	tc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	if code, body, err := fetch(t, tc, "https://"+addr+"/"); err != nil || code != 200 || body != "tls" {
		t.Errorf("https with Airlock's CA: %d %q %v", code, body, err)
	}
	plain := &http.Client{Timeout: 5 * time.Second}
	code, body, err := fetch(t, plain, "http://"+addr+"/")
	if err != nil || code != 400 || !strings.Contains(body, "https://") || body == "plain" {
		t.Errorf("plaintext from a client that is not local: %d %q %v; want a 400 asking for TLS", code, body, err)
	}
	if _, _, err := fetch(t, plain, "https://"+addr+"/"); err == nil {
		t.Error("https without trusting Airlock's CA succeeded")
	}

	local := &Server{Config: &config.Config{DataDir: t.TempDir()}, logger: logger}
	if code, body, err := fetch(t, plain, "http://"+serveAPI(t, local)+"/"); err != nil || code != 200 || body != "plain" {
		t.Errorf("plaintext from loopback by default: %d %q %v", code, body, err)
	}
}

// TestAPIUsesConfiguredCertificate: with tls.cert_file the API presents
// that certificate, as the gateways do.
func TestAPIUsesConfiguredCertificate(t *testing.T) {
	issuer := t.TempDir()
	if _, _, err := tlscert.Ensure(issuer, []string{"api.example.test"}); err != nil {
		t.Fatal(err)
	}
	s := &Server{Config: &config.Config{DataDir: t.TempDir(), TLS: config.TLS{
		CertFile: filepath.Join(issuer, "gateway.pem"), KeyFile: filepath.Join(issuer, "gateway.key")}},
		logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	addr := serveAPI(t, s)
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{
		RootCAs: poolOf(t, filepath.Join(issuer, tlscert.CAFile)), ServerName: "api.example.test"}}}
	if code, body, err := fetch(t, c, "https://"+addr+"/"); err != nil || code != 200 || body != "tls" {
		t.Errorf("https with the configured certificate: %d %q %v", code, body, err)
	}
	if _, err := os.Stat(filepath.Join(s.Config.DataDir, tlscert.CAFile)); err == nil {
		t.Error("a CA was created although a certificate is configured")
	}
}

// TestTLSCoversAPIHost: the one certificate of the API and the gateways
// names the API's host too, and every protocol's listener and public host.
func TestTLSCoversAPIHost(t *testing.T) {
	s := &Server{Config: &config.Config{DataDir: t.TempDir(), Listen: config.Listen{API: "10.9.8.6:8700", AWS: "10.9.8.7:8701", Postgres: "10.9.8.5:5433",
		Public: config.Public{AWS: "https://s3.lb.example.test", Postgres: "pg.lb.example.test:5432"}}}}
	c, _, err := s.gatewayTLS()
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(c.Certificates[0].Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range []string{"10.9.8.6", "10.9.8.7", "10.9.8.5", "s3.lb.example.test", "pg.lb.example.test", "127.0.0.1", "localhost"} {
		if leaf.VerifyHostname(h) != nil {
			t.Errorf("the certificate does not cover %s", h)
		}
	}
	if again, _, _ := s.gatewayTLS(); again != c {
		t.Error("the API and the gateways get different TLS configurations")
	}
}
