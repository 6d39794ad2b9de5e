package cli

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/airlock-dev/airlock/internal/server"
)

// TestCLIOverTLS: with the server treating this client as one on another
// machine, plaintext is refused, and the CLI works over https with
// Airlock's CA from AIRLOCK_CA or from ./airlock.yaml's data directory.
func TestCLIOverTLS(t *testing.T) {
	l := startServer(t, func(s *server.Server) {
		s.APIPlaintext = func(net.Addr) bool { return false }
	})
	ca := filepath.Join(l.dataDir, "ca.pem")
	https := EnvAddr + "=https://" + l.apiAddr
	token := EnvToken + "=" + l.botKey

	code, out, errOut := run(t, []string{https, token, EnvCA + "=" + ca}, "whoami")
	if code != 0 || !strings.HasPrefix(out, "log-triage-bot (agent") {
		t.Errorf("https with AIRLOCK_CA: exit %d, %q %q", code, out, errOut)
	}
	code, out, errOut = run(t, []string{EnvAddr + "=https://localhost:" + portOf(l.apiAddr), token, EnvCA + "=" + ca}, "whoami")
	if code != 0 {
		t.Errorf("https://localhost with AIRLOCK_CA: exit %d, %q %q", code, out, errOut)
	}

	code, _, errOut = run(t, []string{EnvAddr + "=http://" + l.apiAddr, token}, "whoami")
	if code != 1 || !strings.Contains(errOut, "connect with TLS (https://)") {
		t.Errorf("plaintext from a non-loopback client: exit %d, stderr %q; want it refused", code, errOut)
	}

	code, _, errOut = run(t, []string{https, token}, "whoami")
	if code != 1 || !strings.Contains(errOut, "certificate") || !strings.Contains(errOut, "AIRLOCK_CA") {
		t.Errorf("https without the CA: exit %d, stderr %q; want a certificate error naming AIRLOCK_CA", code, errOut)
	}
	code, _, errOut = run(t, []string{https, token, EnvCA + "=" + filepath.Join(l.dataDir, "no-such.pem")}, "whoami")
	if code != 1 || !strings.Contains(errOut, "AIRLOCK_CA") {
		t.Errorf("AIRLOCK_CA naming a missing file: exit %d, stderr %q", code, errOut)
	}
	notPEM := filepath.Join(t.TempDir(), "x.pem")
	os.WriteFile(notPEM, []byte("not a certificate"), 0o644)
	code, _, errOut = run(t, []string{https, token, EnvCA + "=" + notPEM}, "whoami")
	if code != 1 || !strings.Contains(errOut, "no PEM certificate") {
		t.Errorf("AIRLOCK_CA naming a non-PEM file: exit %d, stderr %q", code, errOut)
	}

	// Next to the configuration `airlock serve` reads by default, the CLI
	// finds the data directory's CA itself.
	t.Chdir(filepath.Dir(l.dataDir))
	code, out, errOut = run(t, []string{https, token}, "whoami")
	if code != 0 || !strings.HasPrefix(out, "log-triage-bot") {
		t.Errorf("https next to airlock.yaml: exit %d, %q %q", code, out, errOut)
	}
}

// TestCLILoopbackPlaintext: the default (loopback clients may use
// http://) keeps the quickstart's AIRLOCK_ADDR working.
func TestCLILoopbackPlaintext(t *testing.T) {
	l := startServer(t, nil)
	code, out, errOut := l.as(l.botKey, "whoami")
	if code != 0 || !strings.HasPrefix(out, "log-triage-bot") {
		t.Errorf("http:// from loopback: exit %d, %q %q", code, out, errOut)
	}
}

func portOf(addr string) string {
	_, p, _ := net.SplitHostPort(addr)
	return p
}
