//go:build unix

package policy

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestLoadRefusesFilesAnyoneMayWrite: a policy file, or the directory,
// that every user may write is refused at every load (a SIGHUP's
// included): whoever writes it writes a permit for themselves. Before,
// only the configuration's check at start looked at the directory, and
// never at the files.
func TestLoadRefusesFilesAnyoneMayWrite(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "p.cedar")
	if err := os.WriteFile(f, []byte(`permit (principal, action, resource);`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(dir, nil); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(f, 0o666); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(dir, nil); err == nil || !strings.Contains(err.Error(), "may be written by anyone") {
		t.Fatalf("a world-writable policy file: %v", err)
	}
	if err := os.Chmod(f, 0o664); err != nil { // group write: the operator's choice
		t.Fatal(err)
	}
	if _, err := Load(dir, nil); err != nil {
		t.Fatalf("a group-writable policy file: %v", err)
	}
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	defer os.Chmod(dir, 0o700)
	if _, err := Load(dir, nil); err == nil || !strings.Contains(err.Error(), "may be written by anyone") {
		t.Fatalf("a world-writable policies directory: %v", err)
	}
}
