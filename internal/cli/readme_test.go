package cli

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// TestReadmeCommandTableMatchesTheCLI: the README's Reference lists every
// command as `airlock …` with its flags. A newcomer types what it shows,
// so each command it names must exist with each flag it names, and each
// command and flag the CLI has must be there: the table is edited by hand
// while commands and flags come and go.
func TestReadmeCommandTableMatchesTheCLI(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	start := strings.Index(text, "\n### Commands\n")
	if start < 0 {
		t.Fatal("README.md has no \"### Commands\" section")
	}
	section := text[start+1:]
	if end := strings.Index(section, "\n### "); end >= 0 {
		section = section[:end]
	}

	a := &app{getenv: func(string) string { return "" }}
	root := a.root()
	snippet := regexp.MustCompile("`([^`]*)`")
	flagRE := regexp.MustCompile(`--([a-z][a-z0-9-]*)`)
	wordRE := regexp.MustCompile(`^[a-z][a-z-]*$`)
	documented := map[string]string{} // command path -> the README's forms of it
	rows := 0
	for _, line := range strings.Split(section, "\n") {
		if !strings.HasPrefix(line, "| `airlock ") {
			continue
		}
		rows++
		cell := strings.SplitN(strings.TrimPrefix(line, "| "), " | ", 2)[0]
		for _, m := range snippet.FindAllStringSubmatch(cell, -1) {
			form := strings.ReplaceAll(m[1], `\|`, "|")
			if !strings.HasPrefix(form, "airlock ") {
				form = "airlock " + form // `agent list` after `airlock agent add …`
			}
			var words []string
			for _, w := range strings.Fields(form)[1:] {
				if !wordRE.MatchString(w) {
					break
				}
				words = append(words, w)
			}
			cmd, rest, err := root.Find(words)
			if err != nil || cmd == root || len(rest) > 0 && cmd.HasSubCommands() {
				t.Errorf("README names %q, which is not a command (%v)", form, err)
				continue
			}
			if !cmd.Runnable() {
				t.Errorf("README names %q, which only groups other commands", form)
				continue
			}
			for _, f := range flagRE.FindAllStringSubmatch(form, -1) {
				if cmd.Flags().Lookup(f[1]) == nil && cmd.InheritedFlags().Lookup(f[1]) == nil {
					t.Errorf("README: %s takes no --%s (it shows %q)", cmd.CommandPath(), f[1], form)
				}
			}
			documented[cmd.CommandPath()] += " " + form
		}
	}
	if rows < 20 {
		t.Fatalf("read %d rows of the README's command table: the test does not see it", rows)
	}

	var walk func(cmd *cobra.Command)
	walk = func(cmd *cobra.Command) {
		for _, sub := range cmd.Commands() {
			if sub.Hidden || sub.Name() == "help" {
				continue
			}
			walk(sub)
		}
		if !cmd.Runnable() || cmd == root || cmd.HasSubCommands() {
			return
		}
		if cmd.HasParent() && cmd.Parent().Name() == "completion" {
			// One row names them all: `airlock completion bash|zsh|…`.
			if !strings.Contains(documented[cmd.Parent().CommandPath()], cmd.Name()) {
				t.Errorf("README's command table leaves out %s", cmd.CommandPath())
			}
			return
		}
		forms, ok := documented[cmd.CommandPath()]
		if !ok {
			t.Errorf("README's command table leaves out %s", cmd.CommandPath())
			return
		}
		cmd.LocalNonPersistentFlags().VisitAll(func(f *pflag.Flag) {
			if f.Name != "help" && !f.Hidden && !strings.Contains(forms+" ", "--"+f.Name+" ") &&
				!strings.Contains(forms, "--"+f.Name+"]") && !strings.Contains(forms, "--"+f.Name+"|") {
				t.Errorf("README's command table leaves out %s --%s (it shows %q)", cmd.CommandPath(), f.Name, strings.TrimSpace(forms))
			}
		})
	}
	walk(root)
}
