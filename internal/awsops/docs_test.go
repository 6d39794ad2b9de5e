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

// TestEveryJSONOperationReadsKeptMembers maps an empty body for every
// JSON operation: none may read a member the decoders do not keep.
func TestEveryJSONOperationReadsKeptMembers(t *testing.T) {
	prefix := map[string]string{}
	for p, svc := range jsonTargets {
		prefix[svc] = p
	}
	for svc, ops := range registry {
		for name, s := range ops {
			if s.protos&pJSON == 0 {
				continue
			}
			_, err := Map(jsonReq(svc, prefix[svc]+"."+name, `{}`))
			if err != nil && strings.Contains(err.Error(), "internal error") {
				t.Errorf("%s %s: %v", svc, name, err)
			}
		}
	}
}
