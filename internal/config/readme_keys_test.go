package config

import (
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestDocumentedConfigurationKeysExist: every key in an airlock.yaml
// example of the README and docs/*.md is one the configuration takes, at
// the place the example puts it. The examples are what operators copy,
// and a key renamed or moved in the code left them refusing to start
// ("unknown key") while the text still showed the old one.
func TestDocumentedConfigurationKeysExist(t *testing.T) {
	files, err := filepath.Glob("../../docs/*.md")
	if err != nil {
		t.Fatal(err)
	}
	files = append([]string{"../../README.md"}, files...)
	block := regexp.MustCompile("(?s)\n```yaml\n(.*?)\n```")
	// Examples for other programs: a Kubernetes pod, a GitHub Actions job.
	foreign := regexp.MustCompile(`(?m)^(spec|permissions|steps|apiVersion|kind|services|on|jobs):`)
	checked := 0
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range block.FindAllStringSubmatch(string(b), -1) {
			y := m[1]
			if foreign.MatchString(y) {
				continue
			}
			checked++
			_, err := Parse(filepath.Base(f), []byte(y))
			var errs *Errors
			if !errors.As(err, &errs) {
				continue
			}
			for _, e := range errs.List {
				if strings.HasPrefix(e.Msg, "unknown key") || strings.HasPrefix(e.Msg, "expected ") {
					t.Errorf("%s, the example beginning %q: %s: %s", f, firstLine(y), e.Field, e.Msg)
				}
			}
		}
	}
	if checked < 10 {
		t.Fatalf("checked %d examples: the test does not see the documents' YAML", checked)
	}
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}
