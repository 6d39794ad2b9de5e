package config

import (
	"fmt"
	"os"
	"strings"
	"testing"
)

// TestAliasExpansionBounded: aliases let a few kilobytes stand for
// millions of values (the "billion laughs"); decoding them all, with a
// problem reported for each, would take minutes and gigabytes. Beyond a
// bound the file is refused, saying why, and the report stays short.
func TestAliasExpansionBounded(t *testing.T) {
	inConfigDir(t)
	// 1,000 groups × 300 identities: 300,000 values from 5 kB.
	groups := "data_dir: d\npolicies: policies\nidentities: [&a {name: bot, kind: agent, owner: sre, groups: [" +
		strings.TrimSuffix(strings.Repeat("sre, ", 1000), ", ") + "], key_sha256: " + strings.Repeat("ab", 32) + "}"
	_, err := Parse("airlock.yaml", []byte(groups+strings.Repeat(", *a", 299)+"]\n"))
	if err == nil || !strings.Contains(err.Error(), "aliases") {
		t.Fatalf("Parse: %.500v, want a problem with the aliases", err)
	}

	// 300 unknown keys × 300 aliases: 90,000 problems, one per value.
	var keys []string
	for i := range 300 {
		keys = append(keys, fmt.Sprintf("k%d: x", i))
	}
	doc := "data_dir: d\npolicies: policies\nidentities: [&a {" + strings.Join(keys, ", ") + "}" + strings.Repeat(", *a", 299) + "]\n"
	_, err = Parse("airlock.yaml", []byte(doc))
	if err == nil {
		t.Fatal("Parse accepted unknown keys")
	}
	errs := err.(*Errors)
	if n := len(errs.List); n > maxProblems+1 {
		t.Fatalf("%d problems reported, want at most %d and a note that there are more", n, maxProblems+1)
	}
	if last := errs.List[len(errs.List)-1]; !strings.Contains(last.Msg, "more problems") {
		t.Fatalf("last problem = %v, want a note that there are more", last)
	}
}

// TestFileSizeBounded: a configuration file is something a person writes;
// one of many megabytes is a mistake (a log or a dump named by --config)
// and is refused before YAML parses it, by Load without reading it all.
func TestFileSizeBounded(t *testing.T) {
	inConfigDir(t)
	pad := "#" + strings.Repeat("x", 1023) + "\n"
	big := quickstartYAML() + strings.Repeat(pad, maxFileSize/len(pad)+1)
	if err := os.WriteFile("airlock.yaml", []byte(big), 0o600); err != nil {
		t.Fatal(err)
	}
	for name, parse := range map[string]func() error{
		"Load":  func() error { _, err := Load("airlock.yaml"); return err },
		"Parse": func() error { _, err := Parse("airlock.yaml", []byte(big)); return err },
	} {
		if err := parse(); err == nil || !strings.Contains(err.Error(), "airlock.yaml: larger than") {
			t.Errorf("%s of %d bytes: %v", name, len(big), err)
		}
	}
	if err := os.WriteFile("airlock.yaml", []byte(quickstartYAML()+strings.Repeat(pad, 1000)), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load("airlock.yaml"); err != nil {
		t.Fatalf("a file of 1 MB: %v", err)
	}
}
