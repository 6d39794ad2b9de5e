package config

import (
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestReadmeQuickstartAndItsErrors: the README's quickstart
// configuration, with its two key hashes filled in as the README says,
// is valid as written; and the two refusals the README prints after it
// (a misspelt key, the upstream credentials missing from the
// environment) are, line for line, what the configuration says. The
// unknown-key message lists every key a target takes, so each key added
// to targets changed it while the README kept the old list; the
// positions move whenever the quickstart is edited.
func TestReadmeQuickstartAndItsErrors(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, quick, ok := strings.Cut(string(b), "\n## Quickstart configuration\n")
	quick, _, ok2 := strings.Cut(quick, "\n## Walkthrough\n")
	if !ok || !ok2 {
		t.Fatal("README.md has no quickstart section before its walkthrough")
	}
	m := regexp.MustCompile("(?s)\n```yaml\n(.*?\n)```").FindStringSubmatch(quick)
	if m == nil {
		t.Fatal("the quickstart section has no yaml block")
	}
	hash := regexp.MustCompile(`"<hex SHA-256 of [^>]*>"`)
	if n := len(hash.FindAllString(m[1], -1)); n != 2 {
		t.Fatalf("%d key_sha256 placeholders in the quickstart, want 2", n)
	}
	// Two keys, one each: the configuration refuses a hash shared.
	n := 0
	yaml := hash.ReplaceAllStringFunc(m[1], func(string) string {
		n++
		return `"` + strings.Repeat(string(rune('a'+n)), 64) + `"`
	})

	// The README's outputs: the plain blocks after the quickstart.
	var outputs []string
	var block []string
	fence := ""
	for _, line := range strings.Split(quick, "\n") {
		switch {
		case fence == "" && strings.HasPrefix(line, "```"):
			fence, block = line, nil
		case fence != "" && line == "```":
			if fence == "```" {
				outputs = append(outputs, strings.Join(block, "\n"))
			}
			fence = ""
		case fence != "":
			block = append(block, line)
		}
	}
	find := func(needle string) []string {
		for _, o := range outputs {
			if strings.Contains(o, needle) {
				return strings.Split(o, "\n")
			}
		}
		t.Fatalf("the quickstart section shows no output holding %q", needle)
		return nil
	}

	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "policies"), 0o755); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "airlock.yaml")
	// Messages name the file as the README's reader has it.
	lines := func(err error) []string {
		var errs *Errors
		if !errors.As(err, &errs) {
			t.Fatalf("want *Errors, got %v", err)
		}
		var out []string
		for _, e := range errs.List {
			out = append(out, strings.ReplaceAll(e.Error(), dir+string(filepath.Separator), ""))
		}
		return out
	}

	cfg, err := Parse(file, []byte(yaml))
	if err != nil {
		t.Fatalf("the README's quickstart, hashes filled in, is refused:\n%v", err)
	}
	want := find("is not set or empty")
	if last := want[len(want)-1]; last != "airlock: invalid configuration; refusing to start" {
		t.Errorf("the README's output for missing credentials ends %q, not the summary `airlock serve` prints", last)
	}
	got := lines(cfg.CheckEnv(func(string) string { return "" }))
	if strings.Join(got, "\n") != strings.Join(want[:len(want)-1], "\n") {
		t.Errorf("without the upstream credentials the configuration says\n%s\nthe README shows\n%s",
			strings.Join(got, "\n"), strings.Join(want[:len(want)-1], "\n"))
	}

	typo := strings.Replace(yaml, "\n    region: ", "\n    regoin: ", 1)
	if typo == yaml {
		t.Fatal("the quickstart has no target region to misspell")
	}
	_, err = Parse(file, []byte(typo))
	got = lines(err)
	want = find(`unknown key "regoin"`)
	if len(got) != 1 || len(want) != 1 || "airlock: "+got[0] != want[0] {
		t.Errorf("with regoin for region the configuration says\nairlock: %s\nthe README shows\n%s",
			strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
