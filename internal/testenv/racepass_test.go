package testenv

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestRaceSkipsRunWithoutRace: a test that skips under the race detector
// (an allocation or memory bound, a growth check) guards CI only if the
// Makefile's second pass, without -race, runs it: its name must match
// that pass's -run pattern and its package be in that pass's list.
// TestRequestAsyncAllocs (internal/sessions) skipped under -race and its
// package was not in the list: no CI run ever ran it.
func TestRaceSkipsRunWithoutRace(t *testing.T) {
	root := filepath.Join("..", "..")
	mk, err := os.ReadFile(filepath.Join(root, "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	// The test target's pass without -race: go test -count=1 -run '…' ./…
	m := regexp.MustCompile(`(?m)^\t\$\(GO\) test -count=1 -run '([^']+)'((?: \./\S+)+)$`).FindSubmatch(mk)
	if m == nil {
		t.Fatal("the Makefile has no pass of `$(GO) test -count=1 -run '…' ./…` without -race")
	}
	run, err := regexp.Compile(strings.ReplaceAll(string(m[1]), "$$", "$"))
	if err != nil {
		t.Fatalf("the pass's -run pattern %q: %v", m[1], err)
	}
	listed := map[string]bool{}
	for _, p := range strings.Fields(string(m[2])) {
		listed[filepath.Clean(p)] = true
	}
	// A test function whose body holds if raceOn { (comments) t.Skip.
	test := regexp.MustCompile(`^func (Test\w+)\(t \*testing\.T\) \{\n`)
	skip := regexp.MustCompile(`\n\tif raceOn \{\n(?:\t\t//[^\n]*\n)*\t\tt\.Skip`)
	n := 0
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "node_modules" || strings.HasPrefix(d.Name(), ".")) && path != root {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, "_test.go") {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, filepath.Dir(path))
		if err != nil {
			return err
		}
		for _, f := range strings.Split(string(b), "\n}\n") {
			f = f[strings.LastIndex(f, "\nfunc ")+1:]
			s := test.FindStringSubmatch(f)
			if s == nil || !skip.MatchString(f) {
				continue
			}
			n++
			name := s[1]
			if !run.MatchString(name) {
				t.Errorf("%s (%s) skips under -race and its name does not match the Makefile's pass without it (-run '%s')", name, rel, m[1])
			}
			if !listed[rel] {
				t.Errorf("%s skips under -race and ./%s is not in the Makefile's pass without it", name, rel)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d tests skip under -race", n)
	if n < 5 {
		t.Fatalf("found %d tests that skip under -race: the test does not see them", n)
	}
}
