package cli

import (
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
