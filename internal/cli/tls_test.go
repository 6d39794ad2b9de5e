package cli

import (
	"bytes"
	"context"
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

// TestCLIRefusesRemotePlaintext: the CLI does not send its key over
// http:// to a host that is not a loopback address. Before, it sent it and
// the server's 400 ("connect with TLS") came after the key had crossed the
// network in clear. AIRLOCK_ALLOW_PLAINTEXT=1 lets it (tls.allow_plaintext).
func TestCLIRefusesRemotePlaintext(t *testing.T) {
	// The context is cancelled before the command runs, so nothing leaves
	// this machine: a client that tried to connect fails with "cannot
	// reach" (context canceled), one that refuses says so first.
	runCtx := func(env []string) (int, string) {
		vars := map[string]string{}
		for _, kv := range env {
			k, v, _ := strings.Cut(kv, "=")
			vars[k] = v
		}
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		var out, errOut bytes.Buffer
		code := Main(ctx, []string{"whoami"}, &out, &errOut, func(k string) string { return vars[k] })
		return code, errOut.String()
	}
	for _, addr := range []string{"http://192.0.2.1:8700", "http://airlock.example:8700", "HTTP://[2001:db8::1]:8700"} {
		code, errOut := runCtx([]string{EnvAddr + "=" + addr, EnvToken + "=alk_secret"})
		if code != 1 || !strings.Contains(errOut, "plaintext http://") || strings.Contains(errOut, "cannot reach") {
			t.Errorf("%s: exit %d, stderr %q; want the refusal before connecting", addr, code, errOut)
		}
	}
	code, errOut := runCtx([]string{EnvAddr + "=http://192.0.2.1:8700", EnvToken + "=alk_secret", EnvAllowPlaintext + "=1"})
	if code != 1 || strings.Contains(errOut, "plaintext http://") || !strings.Contains(errOut, "cannot reach") {
		t.Errorf("with %s=1: exit %d, stderr %q; want a connection attempt", EnvAllowPlaintext, code, errOut)
	}
	// Loopback names and addresses keep working over http://.
	l := startServer(t, nil)
	for _, addr := range []string{"http://" + l.apiAddr, "http://localhost:" + portOf(l.apiAddr)} {
		if code, out, errOut := run(t, []string{EnvAddr + "=" + addr, EnvToken + "=" + l.botKey}, "whoami"); code != 0 {
			t.Errorf("%s: exit %d, %q %q", addr, code, out, errOut)
		}
	}
}

// TestCLINearbyCAOnlyForLoopback: the ca.pem that ./airlock.yaml's
// data_dir leads to is trusted for an https server on this machine only.
// Before, it was trusted for any https AIRLOCK_ADDR: an agent working in a
// repository it had cloned, with an airlock.yaml and a ca.pem of someone
// else's, trusted their CA for the remote server, and whoever could then
// intercept the connection got the key.
func TestCLINearbyCAOnlyForLoopback(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "data"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "airlock.yaml"), []byte("data_dir: ./data\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "data", "ca.pem"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Chdir(dir)
	a := &app{getenv: func(string) string { return "" }}
	for addr, local := range map[string]bool{
		"https://127.0.0.1:8700": true, "https://localhost:8700": true, "https://[::1]:8700": true,
		"https://airlock.example:8700": false, "https://192.0.2.1:8700": false, "http://127.0.0.1:8700": false,
	} {
		if got := a.caFile(addr); (got != "") != local {
			t.Errorf("caFile(%s) = %q; want the nearby ca.pem: %v", addr, got, local)
		}
	}
}
