package s3iam

import (
	"os"
	"strings"
	"testing"
)

// TestDocsMapping keeps docs/s3-mapping.md, which the README links to,
// equal to the mapping the code applies.
func TestDocsMapping(t *testing.T) {
	b, err := os.ReadFile("../../docs/s3-mapping.md")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(string(b), Markdown()) {
		t.Fatal("docs/s3-mapping.md is out of date: regenerate its table from s3iam.Markdown()")
	}
}
