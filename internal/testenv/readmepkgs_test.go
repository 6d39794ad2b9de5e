package testenv

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestReadmeNamesEveryPackage: the README's Development table says what
// each package under internal/ does, for a newcomer finding their way.
// A package added without a row is one they cannot place: actionname,
// jsonlist and pgtls had none; a row for a package that is gone sends
// them looking for it.
func TestReadmeNamesEveryPackage(t *testing.T) {
	root := filepath.Join("..", "..")
	b, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	start := strings.Index(readme, "\n## Development\n")
	if start < 0 {
		t.Fatal("README.md has no \"## Development\" section")
	}
	table := readme[start:]
	if end := strings.Index(table, "\nTests:"); end >= 0 {
		table = table[:end]
	}
	dirs, err := os.ReadDir(filepath.Join(root, "internal"))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, d := range dirs {
		if !d.IsDir() {
			continue
		}
		n++
		if !strings.Contains(table, "`internal/"+d.Name()+"`") {
			t.Errorf("README's Development table has no row naming `internal/%s`", d.Name())
		}
	}
	if n < 30 {
		t.Fatalf("found %d packages under internal/: the test does not see them", n)
	}
	for _, f := range strings.Split(table, "`internal/")[1:] {
		name := f[:strings.IndexByte(f, '`')]
		if _, err := os.Stat(filepath.Join(root, "internal", name)); err != nil {
			t.Errorf("README's Development table names `internal/%s`, which does not exist", name)
		}
	}
}
