package server

import (
	"context"
	"crypto/x509"
	"net"
	"path/filepath"
	"strings"
	"testing"

	"github.com/airlock-dev/airlock/internal/config"
	"github.com/airlock-dev/airlock/internal/tlscert"
)

func TestAdminDSN(t *testing.T) {
	t.Setenv("ORDERS_ADMIN_PW", "p@ss/word")
	for _, tc := range []struct {
		target          config.Target
		wantDB, wantPW  string
		wantErrContains string
	}{
		{target: config.Target{Name: "a", Upstream: "postgres://airlock_admin@127.0.0.1:5432/orders"}, wantDB: "orders"},
		{target: config.Target{Name: "b", Upstream: "postgres://airlock_admin@db:5432/orders?sslmode=verify-full", PasswordEnv: "ORDERS_ADMIN_PW"}, wantDB: "orders", wantPW: "p@ss/word"},
		{target: config.Target{Name: "c", Upstream: "postgres://airlock_admin@db:5432/"}, wantErrContains: "names no database"},
	} {
		dsn, db, err := adminDSN(tc.target)
		if tc.wantErrContains != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErrContains) {
				t.Errorf("%s: err %v, want %q", tc.target.Name, err, tc.wantErrContains)
			}
			continue
		}
		if err != nil || db != tc.wantDB {
			t.Errorf("%s: db %q err %v", tc.target.Name, db, err)
		}
		if tc.wantPW != "" && !strings.Contains(dsn, "p%40ss%2Fword@") {
			t.Errorf("%s: password not in the DSN (escaped): %s", tc.target.Name, dsn)
		}
		if tc.wantPW == "" && strings.Contains(dsn, ":@") {
			t.Errorf("%s: an empty password was added: %s", tc.target.Name, dsn)
		}
	}
}

func TestLoopbackAndClientHost(t *testing.T) {
	for host, want := range map[string]bool{"127.0.0.1": true, "::1": true, "localhost": true, "0.0.0.0": false, "10.1.2.3": false, "gw.example.com": false} {
		if got := isLoopback(host); got != want {
			t.Errorf("isLoopback(%q) = %v", host, got)
		}
	}
	if got := clientHost("::1"); got != "[::1]" {
		t.Errorf("clientHost(::1) = %q", got)
	}
	if got := clientHost("127.0.0.1"); got != "127.0.0.1" {
		t.Errorf("clientHost(127.0.0.1) = %q", got)
	}
	if got := clientHost("0.0.0.0"); got == "" || got == "0.0.0.0" {
		t.Errorf("clientHost(0.0.0.0) = %q: clients cannot dial the wildcard", got)
	}
}

// TestGatewayTLS: a configured certificate is used as is (no CA handed
// out); without one, Airlock's CA issues a certificate for the listeners'
// hosts and its PEM is what credentials carry.
func TestGatewayTLS(t *testing.T) {
	issuer := t.TempDir()
	if _, _, err := tlscert.Ensure(issuer, []string{"gw.example.test"}); err != nil {
		t.Fatal(err)
	}
	own := &Server{Config: &config.Config{DataDir: t.TempDir(), TLS: config.TLS{
		CertFile: filepath.Join(issuer, "gateway.pem"), KeyFile: filepath.Join(issuer, "gateway.key")}}}
	c, caPEM, err := own.gatewayTLS()
	if err != nil || caPEM != "" || len(c.Certificates) != 1 {
		t.Fatalf("configured certificate: %v, CA %q", err, caPEM)
	}
	leaf, err := x509.ParseCertificate(c.Certificates[0].Certificate[0])
	if err != nil || leaf.VerifyHostname("gw.example.test") != nil {
		t.Fatalf("not the configured certificate: %v", err)
	}

	auto := &Server{Config: &config.Config{DataDir: t.TempDir(), Listen: config.Listen{AWS: "10.9.8.7:8701"}}}
	c, caPEM, err = auto.gatewayTLS()
	if err != nil || !strings.Contains(caPEM, "BEGIN CERTIFICATE") {
		t.Fatalf("Airlock's CA: %v, CA %q", err, caPEM)
	}
	leaf, err = x509.ParseCertificate(c.Certificates[0].Certificate[0])
	if err != nil || leaf.VerifyHostname("10.9.8.7") != nil || leaf.VerifyHostname("127.0.0.1") != nil {
		t.Fatalf("the issued certificate does not cover the listener's host and loopback: %v", err)
	}
}

// TestStartGatewaysByProtocol: every gateway in protocols starts on its
// listen key and reports its address by kind; one whose address is taken
// fails the start with the key named, and Close stops the listeners.
func TestStartGatewaysByProtocol(t *testing.T) {
	t.Setenv("AWS_PROD_ACCESS_KEY_ID", "AKIDUPSTREAMEXAMPLE")
	t.Setenv("AWS_PROD_SECRET_ACCESS_KEY", "upstream-secret-example")
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	for _, p := range protocols {
		t.Run(p.kind+" address taken", func(t *testing.T) {
			cfg := auditConfig(t, "")
			cfg.Listen.AWS, cfg.Listen.Postgres = "127.0.0.1:0", "127.0.0.1:0"
			switch p.kind {
			case "aws":
				cfg.Listen.AWS = taken.Addr().String()
			case "postgres":
				cfg.Listen.Postgres = taken.Addr().String()
			default:
				t.Fatalf("no case for protocol %q in this test", p.kind)
			}
			s := openServer(t, cfg)
			defer s.Close()
			gws, err := s.StartGateways(context.Background())
			if err == nil {
				gws.Close()
				t.Fatal("started on a taken address")
			}
			if !strings.Contains(err.Error(), "listen."+p.kind+":") {
				t.Fatalf("error does not name listen.%s: %v", p.kind, err)
			}
		})
	}

	cfg := auditConfig(t, "")
	cfg.Listen.AWS, cfg.Listen.Postgres = "127.0.0.1:0", "127.0.0.1:0"
	s := openServer(t, cfg)
	defer s.Close()
	gws, err := s.StartGateways(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if gws.Addr("ftp") != "" {
		t.Fatal("an address for a kind no protocol serves")
	}
	var addrs []string
	for _, p := range protocols {
		a := gws.Addr(p.kind)
		c, err := net.Dial("tcp", a)
		if err != nil {
			t.Fatalf("%s gateway not listening at %q: %v", p.kind, a, err)
		}
		c.Close()
		addrs = append(addrs, a)
	}
	gws.Close()
	for _, a := range addrs {
		if c, err := net.Dial("tcp", a); err == nil {
			c.Close()
			t.Fatalf("%s still accepts after Close", a)
		}
	}
}
