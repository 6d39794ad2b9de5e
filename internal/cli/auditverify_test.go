package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestAuditVerifyNoDatabaseIsBadInput: audit verify --data-dir naming a
// directory without an Airlock database (a typo, the wrong directory)
// verified nothing and exited 1, as a log found damaged does; it is the
// caller's mistake, exit 2, as a missing --witness or --config file is.
func TestAuditVerifyNoDatabaseIsBadInput(t *testing.T) {
	for _, dir := range []string{filepath.Join(t.TempDir(), "nope"), t.TempDir()} {
		code, out, errOut := run(t, nil, "audit", "verify", "--data-dir", dir)
		if code != 2 || !strings.Contains(errOut, "no Airlock database in "+dir) {
			t.Errorf("audit verify --data-dir %s: exit %d: %s%s", dir, code, out, errOut)
		}
	}
}

// TestAuditVerifyConfigProblemsShown: a --config file with several
// problems printed the first and "(and 2 more problems; see above)", with
// nothing above. Every problem is now printed, one per line as serve
// prints them, then the one-line reason; exit 2 as before.
func TestAuditVerifyConfigProblemsShown(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "airlock.yaml")
	if err := os.WriteFile(cfg, []byte("data_dir: d\npolicy: p\nstroe: x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := run(t, nil, "audit", "verify", "--config", cfg)
	lines := strings.Split(strings.TrimSuffix(errOut, "\n"), "\n")
	if code != 2 || out != "" || len(lines) != 4 || strings.Contains(errOut, "see above") ||
		!strings.Contains(lines[0], "policies: required") || !strings.Contains(lines[1], `unknown key "policy"`) ||
		!strings.Contains(lines[2], `unknown key "stroe" (did you mean "store"?)`) ||
		lines[3] != "airlock: --config: "+cfg+" has 3 problems (above)" {
		t.Errorf("exit %d\nstdout: %q\nstderr:\n%s", code, out, errOut)
	}
}
