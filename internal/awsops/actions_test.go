package awsops

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// TestActionsListed: actions lists exactly the action names this
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
	if !slices.Equal(actions, spelled) {
		t.Errorf("actions = %q\nthe code spells %q", actions, spelled)
	}
}

// TestEC2DescribeListed: Actions holds EC2's Describe* actions, each an
// operation the gateway maps (ec2Describe), so that a scope or a policy
// naming one in another case (ec2:describeinstances) is refused naming
// its spelling: no list held them, and such a name was taken as it was
// written, a grant that allowed nothing at the gateway.
func TestEC2DescribeListed(t *testing.T) {
	seen := map[string]bool{}
	for _, o := range ec2DescribeOperations {
		if dynamic("ec2", o) != ec2Describe || len(o) <= len("Describe") || o[len("Describe")] < 'A' || o[len("Describe")] > 'Z' {
			t.Errorf("%q is not an EC2 Describe* operation the gateway maps", o)
		}
		if seen[strings.ToLower(o)] {
			t.Errorf("%q is listed twice (in some case)", o)
		}
		seen[strings.ToLower(o)] = true
	}
	got := Actions()
	if !slices.IsSorted(got) || len(slices.Compact(slices.Clone(got))) != len(got) {
		t.Errorf("Actions() is not sorted and once each: %q", got)
	}
	for _, a := range []string{"ec2:DescribeInstances", "ec2:DescribeSecurityGroups", "dynamodb:GetItem"} {
		if !slices.Contains(got, a) {
			t.Errorf("Actions() lacks %s", a)
		}
	}
}
