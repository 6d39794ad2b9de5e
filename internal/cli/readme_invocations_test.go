package cli

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// TestDocumentedInvocationsParse: every `airlock …` the README and
// docs/*.md show outside the command table (a walkthrough step, a
// replica's start line, an inline `airlock audit verify --data-dir …`)
// names a command that exists and only flags it takes. The table is
// checked by TestReadmeCommandTableMatchesTheCLI; the prose and the
// console transcripts are what a newcomer copies, and a flag renamed in
// the code left them failing with "unknown flag" while the text still
// showed the old one.
func TestDocumentedInvocationsParse(t *testing.T) {
	files, err := filepath.Glob("../../docs/*.md")
	if err != nil {
		t.Fatal(err)
	}
	files = append([]string{"../../README.md"}, files...)

	a := &app{getenv: func(string) string { return "" }}
	root := a.root()
	span := regexp.MustCompile("`(airlock [^`]*)`")
	// A shell line's own prefix before the program: a prompt, then
	// variable assignments (`AIRLOCK_TOKEN=$BOT_KEY airlock end …`).
	prefix := regexp.MustCompile(`^\s*(\$\s+)?([A-Za-z_][A-Za-z0-9_]*=\S*\s+)*`)
	wordRE := regexp.MustCompile(`^[a-z][a-z-]*$`)

	// Spans that are text, not command lines: a log message, the
	// comment on a grant's PostgreSQL role, a signed statement's name.
	notCommands := []string{"airlock serving", "airlock grant role;", "airlock evidence bundle"}

	checked := 0
	check := func(where, form string) {
		for _, p := range notCommands {
			if strings.HasPrefix(form, p) {
				return
			}
		}
		// The command line ends where the shell's would, or where
		// airlock stops reading its own flags (exec's `--`).
		fields := shellFields(form)
		var words []string
		i := 1
		for ; i < len(fields) && wordRE.MatchString(fields[i]); i++ {
			words = append(words, fields[i])
		}
		if len(words) == 0 {
			return // `airlock …` or `airlock` alone: not an invocation
		}
		cmd, rest, err := root.Find(words)
		if err != nil || cmd == root {
			t.Errorf("%s: %q names no command (%v)", where, form, err)
			return
		}
		if len(rest) > 0 && cmd.HasSubCommands() {
			t.Errorf("%s: %q: %s has no subcommand %q", where, form, cmd.CommandPath(), rest[0])
			return
		}
		checked++
		for _, f := range fields[i:] {
			f = strings.Trim(f, "[]")
			switch {
			case f == "--":
				return
			case strings.HasPrefix(f, "--"):
				name, _, _ := strings.Cut(f[2:], "=")
				if !wordRE.MatchString(name) {
					continue // `--…`, an elided flag
				}
				if cmd.Flags().Lookup(name) == nil && cmd.InheritedFlags().Lookup(name) == nil {
					t.Errorf("%s: %s takes no --%s (it shows %q)", where, cmd.CommandPath(), name, form)
				}
			case len(f) == 2 && f[0] == '-' && f[1] >= 'a' && f[1] <= 'z':
				if cmd.Flags().ShorthandLookup(f[1:]) == nil && cmd.InheritedFlags().ShorthandLookup(f[1:]) == nil {
					t.Errorf("%s: %s takes no %s (it shows %q)", where, cmd.CommandPath(), f, form)
				}
			}
		}
	}

	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(string(b), "\n")
		fence := ""
		for n := 0; n < len(lines); n++ {
			line := lines[n]
			where := filepath.Base(f) + ":" + strconv.Itoa(n+1)
			// Fences indented under a list item count too.
			if trimmed := strings.TrimSpace(line); strings.HasPrefix(trimmed, "```") {
				if fence == "" {
					fence = strings.TrimPrefix(trimmed, "```")
					if fence == "" {
						fence = "plain"
					}
				} else {
					fence = ""
				}
				continue
			}
			switch fence {
			case "":
				// The command table is the other test's; its cells
				// hold alternatives (`--format env\|json`), not lines.
				if strings.HasPrefix(line, "| `airlock ") {
					continue
				}
				for _, m := range span.FindAllStringSubmatch(line, -1) {
					check(where, m[1])
				}
			case "sh", "console", "plain", "bash":
				cmdline := prefix.ReplaceAllString(line, "")
				if !strings.HasPrefix(cmdline, "airlock ") {
					continue
				}
				for strings.HasSuffix(cmdline, `\`) && n+1 < len(lines) {
					n++
					cmdline = strings.TrimSuffix(cmdline, `\`) + " " + lines[n]
				}
				check(where, cmdline)
			}
		}
	}
	t.Logf("checked %d documented invocations", checked)
	if checked < 40 {
		t.Fatalf("checked %d invocations: the test does not see the documents' commands", checked)
	}
}

// shellFields splits a documented command line into words as a shell
// would for this purpose: quotes hold blanks, and the line ends at a
// comment, an operator or a redirection.
func shellFields(s string) []string {
	var fields []string
	var cur strings.Builder
	in := false
	var quote byte
	flush := func() {
		if in {
			fields = append(fields, cur.String())
		}
		cur.Reset()
		in = false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			} else {
				cur.WriteByte(c)
			}
		case c == '\'' || c == '"':
			quote, in = c, true
		case c == ' ' || c == '\t':
			flush()
		case c == '#' && !in, c == '|', c == ';', c == '&', c == '>', c == '<':
			flush()
			return fields
		default:
			cur.WriteByte(c)
			in = true
		}
	}
	flush()
	return fields
}
