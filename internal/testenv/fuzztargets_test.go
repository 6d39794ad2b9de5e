package testenv

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// notInMakeFuzz are the fuzz targets `make fuzz` leaves out, and why.
var notInMakeFuzz = map[string]string{
	"./internal/pggw FuzzSplitAgreesWithPostgres": "needs a PostgreSQL server (AIRLOCK_TEST_PG_DSN)",
}

// TestMakeFuzzRunsEveryTarget: `make fuzz` names every fuzz target in the
// repository, and only targets that exist. go test -fuzz with a pattern
// that matches nothing prints a warning and passes, so a renamed target
// (FuzzParseFilter became FuzzParseGrantsQuery) or a new one silently
// went unfuzzed: ten were missing (FuzzParseGrantsQuery, the four
// FuzzRedact*, FuzzSCRAM, FuzzScopeService, FuzzTagBody, FuzzACLBody,
// FuzzRequestIDAgreesWithSDK).
func TestMakeFuzzRunsEveryTarget(t *testing.T) {
	root := filepath.Join("..", "..")
	mk, err := os.ReadFile(filepath.Join(root, "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	inMake := map[string]bool{}
	for _, m := range regexp.MustCompile(`-fuzz='\^(Fuzz\w+)\$\$'.*?(\./\S+?)/?\n`).FindAllStringSubmatch(string(mk), -1) {
		inMake[m[2]+" "+m[1]] = true
	}
	if len(inMake) == 0 {
		t.Fatal("no fuzz target found in the Makefile: its form changed, and this test reads nothing")
	}
	fuzzFunc := regexp.MustCompile(`(?m)^func (Fuzz\w+)\(f \*testing\.F\)`)
	inRepo := map[string]bool{}
	err = filepath.WalkDir(filepath.Join(root, "internal"), func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, "_test.go") {
			return err
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, filepath.Dir(path))
		for _, m := range fuzzFunc.FindAllStringSubmatch(string(src), -1) {
			inRepo["./"+filepath.ToSlash(rel)+" "+m[1]] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for k := range inRepo {
		if !inMake[k] && notInMakeFuzz[k] == "" {
			t.Errorf("make fuzz does not run %s: add it to the Makefile's fuzz target (or to notInMakeFuzz, with why)", k)
		}
	}
	for k := range inMake {
		if !inRepo[k] {
			t.Errorf("make fuzz runs %s, which is no fuzz target: go test -fuzz passes on a pattern that matches nothing", k)
		}
	}
	for k := range notInMakeFuzz {
		if !inRepo[k] || inMake[k] {
			t.Errorf("notInMakeFuzz lists %s, which is no fuzz target or is in make fuzz", k)
		}
	}
}
