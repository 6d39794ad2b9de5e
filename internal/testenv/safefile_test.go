package testenv

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"
)

// TestFilesReplacedThroughSafefile: a file that Airlock replaces whole (a
// new file renamed over it) is written through safefile.WriteAtomic, the
// one copy of the steps that keep a reader from ever seeing it torn or
// older after a crash: a temporary file of its own (never a fixed
// NAME.tmp, which a leftover file or a planted symbolic link could take
// over), synced, renamed, and the directory synced. Each hand-written copy
// dropped one of them: tlscert wrote a fixed "NAME.tmp" with os.WriteFile,
// and audit verify's --save-head synced no directory. So os.Rename appears
// in no package's code but safefile's and those in allowed, each with the
// reason it may.
func TestFilesReplacedThroughSafefile(t *testing.T) {
	allowed := map[string]string{
		"internal/safefile": "the one copy",
		// A cache of the gateway CA named by its contents' hash, in a
		// directory checked to be the user's own, and compared with the
		// CA on every read: a torn or lost file is written again.
		"internal/credenv": "a cache checked on every read",
	}
	root := filepath.Join("..", "..")
	fset := token.NewFileSet()
	files := 0
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "node_modules" || d.Name() == "testdata" || strings.HasPrefix(d.Name(), ".")) && path != root {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		rel, err := filepath.Rel(root, filepath.Dir(path))
		if err != nil {
			return err
		}
		f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		files++
		if _, ok := allowed[filepath.ToSlash(rel)]; ok {
			return nil
		}
		// The name the file imports package os under (none: no call).
		osName := ""
		for _, imp := range f.Imports {
			if imp.Path.Value == `"os"` {
				osName = "os"
				if imp.Name != nil {
					osName = imp.Name.Name
				}
			}
		}
		if osName == "" {
			return nil
		}
		ast.Inspect(f, func(n ast.Node) bool {
			sel, ok := n.(*ast.SelectorExpr)
			if !ok || sel.Sel.Name != "Rename" {
				return true
			}
			if x, ok := sel.X.(*ast.Ident); ok && x.Name == osName {
				t.Errorf("%s: os.Rename outside safefile: write the file with safefile.WriteAtomic", fset.Position(sel.Pos()))
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files < 200 {
		t.Fatalf("parsed %d Go files: the test does not see the module", files)
	}
}
