package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// TestVerifyBundleExitCodes: verify-bundle exits 0 for a bundle that
// verifies, 1 for one that does not, and 2 when the file or the key
// cannot be read at all. A missing or unreadable file exited 1, as a
// forged bundle does, so a script could not tell a mistyped path from a
// bundle that failed.
func TestVerifyBundleExitCodes(t *testing.T) {
	good := filepath.Join("..", "evidence", "testdata", "bundle-v3.json")
	pub := filepath.Join("..", "evidence", "testdata", "bundle-v3.pub")
	b, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	forged := filepath.Join(dir, "forged.json")
	if err := os.WriteFile(forged, bytes.Replace(b, []byte(`"account":"`), []byte(`"account":"9`), 1), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
		want int
	}{
		{"verified", []string{good, "--key", pub}, 0},
		{"forged", []string{forged, "--key", pub}, 1},
		{"not a bundle", []string{pub, "--key", pub}, 1},
		{"missing file", []string{filepath.Join(dir, "nope.json"), "--key", pub}, 2},
		{"a directory", []string{dir, "--key", pub}, 2},
		{"missing key", []string{good, "--key", filepath.Join(dir, "nope.pub")}, 2},
		{"no key", []string{good}, 2},
	} {
		code, out, errOut := run(t, nil, append([]string{"audit", "verify-bundle"}, tc.args...)...)
		if code != tc.want {
			t.Errorf("%s: exit %d, want %d: %s%s", tc.name, code, tc.want, out, errOut)
		}
	}
}
