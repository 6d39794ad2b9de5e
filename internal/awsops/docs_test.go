package awsops

import (
	"os"
	"strings"
	"testing"
)

// TestDocsMapping keeps docs/aws-mapping.md equal to the mapping the
// code applies.
func TestDocsMapping(t *testing.T) {
	b, err := os.ReadFile("../../docs/aws-mapping.md")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(string(b), Markdown()) {
		t.Fatal("docs/aws-mapping.md is out of date: regenerate its table from awsops.Markdown()")
	}
}

// TestEveryOperationDocumented: each mapped operation says its action
// and resource.
func TestEveryOperationDocumented(t *testing.T) {
	for svc, ops := range registry {
		if serviceNames[svc] == "" {
			t.Errorf("service %s has no name for the docs", svc)
		}
		for name, s := range ops {
			if s.actions == "" || s.resources == "" || s.protos == 0 {
				t.Errorf("%s %s: incomplete spec", svc, name)
			}
		}
	}
}
