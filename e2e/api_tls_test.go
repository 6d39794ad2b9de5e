package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
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
