package notify

import (
	"strings"
	"testing"

	"github.com/airlock-dev/airlock/internal/model"
	"github.com/airlock-dev/airlock/internal/scope"
)

// TestScopeShownUnformatted: Slack's mrkdwn formats text between
// underscores or tildes even in a verbatim text object, so the prefix
// "logs/_secret_/" reached the approver as "logs/secret/" with "secret" in
// italics: the underscores, part of what is approved, were not shown.
// Each statement is now a code span, inside which mrkdwn formats nothing,
// and a backtick that would end it early is shown as \u0060.
func TestScopeShownUnformatted(t *testing.T) {
	stmts := []string{
		"s3:GetObject arn:aws:s3:::logs/_secret_/*",
		"s3:GetObject arn:aws:s3:::logs/~x~/*",
		"s3:GetObject arn:aws:s3:::logs/a`b`/*",
	}
	sc, err := scope.Parse(stmts)
	if err != nil {
		t.Fatal(err)
	}
	g := model.Grant{ID: "g_1", Identity: "bot", Target: "aws-prod", RequestedScope: sc}
	summary, whole := requestSummary(g)
	if !whole {
		t.Fatalf("not whole:\n%s", summary)
	}
	want := []string{
		"• `s3:GetObject arn:aws:s3:::logs/_secret_/*`\n",
		"• `s3:GetObject arn:aws:s3:::logs/~x~/*`\n",
		"• `s3:GetObject arn:aws:s3:::logs/a\\u0060b\\u0060/*`\n",
	}
	for _, w := range want {
		if !strings.Contains(summary, w) {
			t.Errorf("summary lacks %q:\n%s", w, summary)
		}
	}
	// Every scope line is one code span: two backticks, at its ends.
	for _, line := range strings.Split(summary, "\n") {
		if strings.HasPrefix(line, "• ") && strings.Count(line, "`") != 2 {
			t.Errorf("scope line is not one code span: %q", line)
		}
	}
}
