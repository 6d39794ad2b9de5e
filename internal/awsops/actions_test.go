package awsops

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// TestActionsListed: Actions lists exactly the action names this
// package's code spells ("dynamodb:GetItem" in a spec or a check), sorted
// and once each. A request's scope is checked against the list for
// actions in another case (grants), so an action added to a spec and not
// here would be let through misspelled as it was before the list.
func TestActionsListed(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	lit := regexp.MustCompile(`"([a-z0-9-]+:[A-Z][A-Za-z0-9]*)"`)
	var spelled []string
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") || f == "actions.go" {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range lit.FindAllStringSubmatch(string(b), -1) {
			spelled = append(spelled, m[1])
		}
	}
	slices.Sort(spelled)
	spelled = slices.Compact(spelled)
	if got := Actions(); !slices.Equal(got, spelled) {
		t.Errorf("Actions() = %q\nthe code spells %q", got, spelled)
	}
}
