package fsperm

import (
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// TestErrorShowsType: the message names a directory's mode as a
// directory's (drwxrwxrwx), a file's as a file's. It printed only the
// permission bits, so a world-writable directory read -rwxrwxrwx.
func TestErrorShowsType(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("Unix modes")
	}
	dir := t.TempDir()
	for _, mode := range []os.FileMode{0o777, 0o1777} {
		if err := os.Chmod(dir, mode); err != nil {
			t.Fatal(err)
		}
		err := CheckDir(dir)
		var we *WritableError
		if !errors.As(err, &we) || !strings.Contains(err.Error(), "(mode drwxrwxrwx)") {
			t.Errorf("directory mode %o: %v, want (mode drwxrwxrwx)", mode, err)
		}
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(dir, "f")
	if err := os.WriteFile(f, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(f, 0o666); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadFile(f, 10); err == nil || !strings.Contains(err.Error(), "(mode -rw-rw-rw-)") {
		t.Errorf("file mode 0666: %v, want (mode -rw-rw-rw-)", err)
	}
}
