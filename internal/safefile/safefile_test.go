package safefile

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

// TestWriteAtomic: the file ends with the new contents and mode, whether it
// existed or not, and no temporary file is left beside it.
func TestWriteAtomic(t *testing.T) {
	for _, tc := range []struct {
		name   string
		before []byte // nil: no file before
		perm   os.FileMode
	}{
		{"new", nil, 0o644},
		{"replaces", []byte("old contents, longer than the new\n"), 0o600},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "witness")
			if tc.before != nil {
				if err := os.WriteFile(path, tc.before, 0o666); err != nil {
					t.Fatal(err)
				}
			}
			if err := WriteAtomic(path, []byte("new\n"), tc.perm); err != nil {
				t.Fatal(err)
			}
			b, err := os.ReadFile(path)
			if err != nil || string(b) != "new\n" {
				t.Fatalf("contents %q, %v; want %q", b, err, "new\n")
			}
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if runtime.GOOS != "windows" && fi.Mode().Perm() != tc.perm {
				t.Errorf("mode %v, want %v", fi.Mode().Perm(), tc.perm)
			}
			assertOnly(t, dir, "witness")
		})
	}
}

// TestWriteAtomicFailureLeavesNothing: a rename that cannot happen (path is
// a directory) leaves the directory as it was, with no temporary file.
func TestWriteAtomicFailureLeavesNothing(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "taken")
	if err := os.Mkdir(path, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(path, "inside"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := WriteAtomic(path, []byte("x"), 0o644); err == nil {
		t.Fatal("replacing a non-empty directory succeeded")
	}
	assertOnly(t, dir, "taken")
	if fi, err := os.Stat(path); err != nil || !fi.IsDir() {
		t.Errorf("the directory was changed: %v, %v", fi, err)
	}
}

// TestCreateExclusive: a new file gets the data and mode; an existing one
// is an fs.ErrExist error and keeps its contents.
func TestCreateExclusive(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "key")
	if err := CreateExclusive(path, []byte("first\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if runtime.GOOS != "windows" && fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", fi.Mode().Perm())
	}
	err = CreateExclusive(path, []byte("second\n"), 0o600)
	if !errors.Is(err, fs.ErrExist) {
		t.Fatalf("second create: %v, want fs.ErrExist", err)
	}
	if b, err := os.ReadFile(path); err != nil || string(b) != "first\n" {
		t.Errorf("contents %q, %v; want the first write's", b, err)
	}
	if err := CreateExclusive(filepath.Join(dir, "missing", "key"), nil, 0o600); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("create in a missing directory: %v, want fs.ErrNotExist", err)
	}
}

// assertOnly fails unless dir holds exactly the one entry name.
func assertOnly(t *testing.T, dir, name string) {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != 1 || es[0].Name() != name {
		var names []string
		for _, e := range es {
			names = append(names, e.Name())
		}
		t.Errorf("directory holds %q, want only %q", names, name)
	}
}
