package cli

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestDocumentedLinksResolve: every relative link in the README and
// docs/*.md names a file of the repository and, after a `#`, a heading
// of that file (GitHub's anchors: lower case, punctuation but `-` and
// `_` dropped, blanks made `-`). The README's sections point at one
// another ("see [API](#api)", "[Upgrading replicas](docs/replicas.md#…)")
// and a heading renamed left the reader at the top of the page.
func TestDocumentedLinksResolve(t *testing.T) {
	files, err := filepath.Glob("../../docs/*.md")
	if err != nil {
		t.Fatal(err)
	}
	files = append([]string{"../../README.md"}, files...)
	fenced := regexp.MustCompile("(?ms)^\\s*```.*?^\\s*```")
	inline := regexp.MustCompile("`[^`\n]*`")
	link := regexp.MustCompile(`\]\(([^)\s]+)\)`)
	heading := regexp.MustCompile(`(?m)^#{1,6} (.+)$`)
	punct := regexp.MustCompile(`[^\p{L}\p{N}_\- ]`)

	anchorsOf := map[string]map[string]bool{}
	anchors := func(path string) map[string]bool {
		if a, ok := anchorsOf[path]; ok {
			return a
		}
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		a := map[string]bool{}
		for _, h := range heading.FindAllStringSubmatch(fenced.ReplaceAllString(string(b), ""), -1) {
			id := strings.ReplaceAll(punct.ReplaceAllString(strings.ToLower(strings.TrimSpace(h[1])), ""), " ", "-")
			a[id] = true
		}
		anchorsOf[path] = a
		return a
	}

	checked := 0
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		text := inline.ReplaceAllString(fenced.ReplaceAllString(string(b), ""), "")
		for _, m := range link.FindAllStringSubmatch(text, -1) {
			target := m[1]
			if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			checked++
			file, frag, _ := strings.Cut(target, "#")
			path := f
			if file != "" {
				path = filepath.Join(filepath.Dir(f), file)
				if _, err := os.Stat(path); err != nil {
					t.Errorf("%s: link %q: %v", filepath.Base(f), target, err)
					continue
				}
			}
			if frag != "" && strings.HasSuffix(path, ".md") && !anchors(path)[frag] {
				t.Errorf("%s: link %q: %s has no heading with that anchor", filepath.Base(f), target, filepath.Base(path))
			}
		}
	}
	t.Logf("checked %d links", checked)
	if checked < 20 {
		t.Fatalf("checked %d links: the test does not see the documents' links", checked)
	}
}
