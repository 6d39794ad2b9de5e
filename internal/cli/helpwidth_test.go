package cli

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/spf13/cobra"
)

// TestLongHelpLinesWrap: every command's long help is wrapped as the rest
// of `airlock … --help` is (the widest lines are about 105 columns), so a
// terminal of usual width does not break a line in the middle of a word.
// exec's help had a 127-column line left over from an edit.
func TestLongHelpLinesWrap(t *testing.T) {
	const maxWidth = 110
	a := &app{getenv: func(string) string { return "" }}
	checked := 0
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if c.Long != "" {
			checked++
		}
		for i, line := range strings.Split(c.Long, "\n") {
			if n := utf8.RuneCountInString(line); n > maxWidth {
				t.Errorf("%s --help, line %d of its long text: %d columns (at most %d): %q", c.CommandPath(), i+1, n, maxWidth, line)
			}
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(a.root())
	if checked < 5 {
		t.Fatalf("checked the long help of %d commands: the walk does not reach them", checked)
	}
}
