package s3iam_test

import (
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/airlock-dev/airlock/internal/s3iam"
	"github.com/airlock-dev/airlock/internal/scope"
)

// TestTableCoversMappedOperations checks that the documented table and the
// package doc name every operation the SDK test sees mapped, and nothing
// the table lists is missing its actions.
func TestTableCoversMappedOperations(t *testing.T) {
	table := map[string]s3iam.Entry{}
	for _, e := range s3iam.Table() {
		if e.Actions == "" || e.Request == "" || !strings.HasPrefix(e.Resource, "arn:aws:s3:::") {
			t.Errorf("incomplete entry %+v", e)
		}
		table[e.Operation] = e
	}
	doc, err := os.ReadFile("doc.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range sdkCases() {
		if tc.denied != "" {
			if _, ok := table[tc.name]; ok {
				t.Errorf("refused %s is in the table", tc.name)
			}
			continue
		}
		e, ok := table[tc.op]
		if !ok {
			t.Errorf("%s is mapped but not in Table", tc.op)
			continue
		}
		for _, c := range tc.checks {
			if !strings.Contains(e.Actions+" "+e.Notes, c.Action) {
				t.Errorf("Table entry for %s does not mention %s: %+v", tc.op, c.Action, e)
			}
		}
		name := strings.TrimPrefix(strings.TrimPrefix(strings.TrimPrefix(tc.op, "Get"), "Put"), "Delete")
		if !strings.Contains(string(doc), name) {
			t.Errorf("the package doc does not mention %s", tc.op)
		}
	}
	md := s3iam.Markdown()
	if strings.Count(md, "\n") != len(s3iam.Table())+2 || !strings.Contains(md, "| GetObject | `GET /bucket/key` | s3:GetObject (s3:GetObjectVersion with versionId) |") {
		t.Errorf("Markdown:\n%s", md)
	}
}

// TestActionsCoverChecks checks that Actions lists every action a mapped
// request asks, and that a grant can name each (the conformance harness
// grants Actions() on "*").
func TestActionsCoverChecks(t *testing.T) {
	acts := s3iam.Actions()
	for _, tc := range sdkCases() {
		for _, c := range tc.checks {
			if !slices.Contains(acts, c.Action) {
				t.Errorf("%s asks %s, which Actions() does not list", tc.name, c.Action)
			}
		}
	}
	for _, a := range acts {
		if _, err := scope.ParseStatement(a + " *"); err != nil {
			t.Errorf("a grant cannot name %s: %v", a, err)
		}
	}
}
