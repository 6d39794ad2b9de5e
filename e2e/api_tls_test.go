package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/airlock-dev/airlock/internal/testenv"
)

// TestAPIOverTLS: `airlock serve` answers the CLI over https on the API
// port, with the CA in its data directory, as well as over loopback http.
func TestAPIOverTLS(t *testing.T) {
	e := writeSetup(t)
	e.start(t)
	https := strings.Replace(e.addr, "http://", "https://", 1)
	ca := filepath.Join(e.dir, "airlock-data", "ca.pem")
	r := runCmd(t, append(os.Environ(), "AIRLOCK_ADDR="+https, "AIRLOCK_TOKEN="+e.bot.Key, "AIRLOCK_CA="+ca), airlockBin, "whoami")
	if out := mustOK(t, r, "whoami over https with AIRLOCK_CA"); !strings.HasPrefix(out, "log-triage-bot") {
		t.Errorf("whoami over https: %q", out)
	}
	r = runCmd(t, append(os.Environ(), "AIRLOCK_ADDR="+https, "AIRLOCK_TOKEN="+e.bot.Key, "AIRLOCK_CA="), airlockBin, "whoami")
	if r.code != 1 || !strings.Contains(r.stderr, "AIRLOCK_CA") {
		t.Errorf("https without trusting the CA: exit %d, stderr %q", r.code, r.stderr)
	}
	if out := mustOK(t, airlock(t, e.addr, e.bot.Key, "whoami"), "whoami over loopback http"); !strings.HasPrefix(out, "log-triage-bot") {
		t.Errorf("whoami over http: %q", out)
	}
}

// TestClientCertificateOverTLS: the API asks every TLS client for a
// certificate. The CLI presents AIRLOCK_CLIENT_CERT and whoami shows its
// fingerprint in the instance; headless Chromium, which has none, is not
// held up by the request and loads the console's sign-in page over https.
func TestClientCertificateOverTLS(t *testing.T) {
	chromium := testenv.Tool(t, "chromium", "install Debian's chromium (apt-get install chromium)")
	e := writeSetup(t)
	e.start(t)
	https := strings.Replace(e.addr, "http://", "https://", 1)
	ca := filepath.Join(e.dir, "airlock-data", "ca.pem")
	cert := testenv.NewClientCert(t, "log-triage-bot-1")
	fp := cert.Fingerprint
	r := runCmd(t, append(os.Environ(), "AIRLOCK_ADDR="+https, "AIRLOCK_TOKEN="+e.bot.Key, "AIRLOCK_CA="+ca,
		"AIRLOCK_CLIENT_CERT="+cert.CertFile, "AIRLOCK_CLIENT_KEY="+cert.KeyFile), airlockBin, "whoami")
	if out := mustOK(t, r, "whoami with a client certificate"); !strings.Contains(out, " tls:"+fp[:16]+" ") {
		t.Errorf("whoami with a client certificate: %q, want the instance with tls:%s", out, fp[:16])
	}

	r = runCmd(t, nil, chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
		"--user-data-dir="+t.TempDir(), "--ignore-certificate-errors", "--dump-dom", https+"/console/login")
	if r.code != 0 || !strings.Contains(r.stdout, "<title>Sign in · Airlock</title>") {
		t.Fatalf("chromium on the console over https: exit %d\nstdout: %.500s\nstderr: %.2000s", r.code, r.stdout, r.stderr)
	}
}
