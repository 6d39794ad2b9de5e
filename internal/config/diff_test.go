package config

import (
	"slices"
	"strings"
	"testing"
)

func TestDifferences(t *testing.T) {
	inConfigDir(t)
	a, err := Parse("airlock.yaml", []byte(quickstartYAML()))
	if err != nil {
		t.Fatal(err)
	}
	// The same settings written elsewhere in the file are no difference.
	b, err := Parse("airlock.yaml", []byte("# moved down a line\n"+quickstartYAML()))
	if err != nil {
		t.Fatal(err)
	}
	if d := a.Differences(b); len(d) != 0 {
		t.Fatalf("Differences = %v, want none", d)
	}
	// Drop the second identity (alice) and lower the grant cap.
	doc := quickstartYAML()
	i := strings.Index(doc, "  - name: alice")
	j := strings.Index(doc, "targets:")
	b, err = Parse("airlock.yaml", []byte(doc[:i]+doc[j:]+"grants: {max_duration: 1h}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if d := a.Differences(b); !slices.Equal(d, []string{"identities", "grants"}) {
		t.Fatalf("Differences = %v, want [identities grants]", d)
	}
}
