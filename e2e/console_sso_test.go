package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/testenv"
)

// TestConsoleSSO signs in to the web console of a real `airlock serve`
// with OpenID Connect at a real provider run here (the npm oidc-provider
// package, e2e/console/op.mjs), in Debian's Chromium
// (e2e/console/sso.mjs): alice, mapped by identities[].email, lands on
// the queue; mallory, signed in by the provider but no one Airlock
// knows, is refused with the console's page and no session.
func TestConsoleSSO(t *testing.T) {
	node := testenv.Tool(t, "node", "install Node.js (apt-get install nodejs npm)")
	testenv.Tool(t, "chromium", "install Debian's chromium (apt-get install chromium)")
	dir, err := filepath.Abs("console")
	if err != nil {
		t.Fatal(err)
	}
	testenv.Tool(t, filepath.Join(dir, "node_modules", ".bin", "playwright-core"), "run: (cd e2e/console && npm ci)")

	e := writeSetupWith(t, setup{})
	const secret = "console-client-secret-never-logged"
	issuer, opErr := startProvider(t, "op.mjs", "REDIRECT_URI="+e.addr+"/console/sso/callback",
		"CLIENT_ID=airlock-console", "CLIENT_SECRET="+secret)

	// alice has an email the provider vouches for; the console is the
	// provider's client, its secret in the environment.
	cfg, err := os.ReadFile(e.cfg)
	if err != nil {
		t.Fatal(err)
	}
	aliceKey := `key_sha256: "` + e.alice.SHA + `"` + "\n"
	if !strings.Contains(string(cfg), aliceKey) {
		t.Fatal("alice's entry not found in the configuration")
	}
	doc := strings.Replace(string(cfg), aliceKey, aliceKey+"    email: alice@example.com\n", 1) +
		"sso:\n  issuer: " + issuer + "\n  client_id: airlock-console\n  client_secret_env: AIRLOCK_SSO_SECRET\n  identity_claim: email\n"
	write(t, e.cfg, doc)
	e.serveEnv = append(e.serveEnv, "AIRLOCK_SSO_SECRET="+secret)
	e.start(t)

	failDir, err := os.MkdirTemp("", "airlock-console-sso-shots-")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(node, "sso.mjs")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "AIRLOCK_URL="+e.addr, "FAIL_DIR="+failDir)
	cmd.WaitDelay = time.Second
	killer := time.AfterFunc(2*time.Minute, func() { _ = cmd.Process.Kill() })
	out, err := cmd.CombinedOutput()
	killer.Stop()
	t.Logf("browser:\n%s", out)
	if err != nil || !strings.Contains(string(out), "\nDONE\n") && !strings.HasPrefix(string(out), "DONE\n") {
		t.Fatalf("the SSO sign-ins failed (%v); screenshots in %s\nprovider:\n%s\nserver:\n%s", err, failDir, opErr.String(), e.stderr)
	}
	// The server's log tells both: alice in by SSO, mallory refused.
	logs := e.stderr.String()
	for _, want := range []string{"via=sso", "console SSO sign-in refused"} {
		if !strings.Contains(logs, want) {
			t.Errorf("the server's log lacks %q:\n%s", want, logs)
		}
	}
	if strings.Contains(logs, secret) || strings.Contains(opErr.String(), secret) {
		t.Error("the client secret is in a log")
	}
	os.RemoveAll(failDir)
}
