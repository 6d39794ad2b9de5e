package demo

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A --dir that an earlier run left its data in is refused before anything
// starts: the steps count on a fresh log, and a second run there used to
// fail at the review ("6 grants, want 3").
func TestRunRefusesDirOfEarlierRun(t *testing.T) {
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "airlock-data"), 0o700); err != nil {
		t.Fatal(err)
	}
	err := Run(context.Background(), io.Discard, dir, false)
	if err == nil || !strings.Contains(err.Error(), "earlier run") {
		t.Fatalf("Run in a used directory: err = %v, want a refusal naming the earlier run", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "airlock.yaml")); err == nil {
		t.Fatal("Run wrote airlock.yaml into the used directory before refusing")
	}
}

// The narration names the walkthrough the repository has (README.md), not
// a document it does not ship; and it names the --dir it runs in escaped,
// as every human output is: a name with a terminal escape sequence or a
// newline in it was printed raw, so it could recolour the terminal or
// forge a line of the narration.
func TestNarrationNamesREADME(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the whole demo")
	}
	dir := filepath.Join(t.TempDir(), "demo\x1b[31m\n3. forged")
	var out strings.Builder
	if err := Run(context.Background(), &out, dir, false); err != nil {
		t.Fatalf("demo: %v\n%s", err, out.String())
	}
	first, _, _ := strings.Cut(out.String(), "\n")
	if !strings.Contains(first, "README.md") || strings.Contains(out.String(), "DESIGN.md") {
		t.Fatalf("first line %q: want it to name README.md and nothing to name DESIGN.md", first)
	}
	if !strings.HasSuffix(first, `demo\x1b[31m\n3. forged`) || strings.Contains(out.String(), "\x1b") {
		t.Fatalf("first line %q: want the directory's name escaped, and no escape character in the narration", first)
	}
}

// The review step shows the table airlock grants prints, with all five
// answers: the demo printed a table of its own that left out when each
// grant began and expired (WHEN) and why one was revoked (alice's
// "incident closed"), though its narration said every grant answered
// when and why it ended.
func TestReviewShowsTheFiveAnswers(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the whole demo")
	}
	var out strings.Builder
	if err := Run(context.Background(), &out, t.TempDir(), false); err != nil {
		t.Fatalf("demo: %v\n%s", err, out.String())
	}
	_, review, ok := strings.Cut(out.String(), "9. The review")
	if !ok {
		t.Fatalf("no review step in:\n%s", out.String())
	}
	review, _, _ = strings.Cut(review, "\n10.")
	lines := strings.Split(review, "\n")
	if len(lines) < 5 {
		t.Fatalf("review step:\n%s", review)
	}
	for _, col := range []string{"WHEN", "ENDED", "APPROVED BY", "SESSIONS", "FINDINGS", "REASON"} {
		if !strings.Contains(lines[1], col) {
			t.Errorf("header %q lacks %s", lines[1], col)
		}
	}
	var revoked, expired string
	for _, l := range lines[2:5] {
		if !strings.Contains(l, " → ") {
			t.Errorf("row %q does not say when the grant began and when it expires", l)
		}
		switch {
		case strings.Contains(l, " revoked "):
			revoked = l
		case strings.Contains(l, " expired "):
			expired = l
		}
	}
	if !strings.Contains(revoked, "revoked by alice at ") || !strings.Contains(revoked, ": incident closed") {
		t.Errorf("revoked row %q does not say who revoked it, when and why", revoked)
	}
	if !strings.Contains(expired, "expired by airlock at ") {
		t.Errorf("expired row %q does not say when it expired", expired)
	}
}
