package scope

import "testing"

// TestOnlyATrailingStarIsAWildcard: DESIGN.md's "a resource pattern may
// end in * (prefix match); nothing else is a wildcard". IAM reads ? as
// one character and expands ${aws:username}; a scope does neither, and
// compares case exactly, so a pattern names what it says and no more.
func TestOnlyATrailingStarIsAWildcard(t *testing.T) {
	for _, c := range []struct {
		pattern, resource string
		want              bool
	}{
		{"arn:aws:s3:::logs/?.log", "arn:aws:s3:::logs/?.log", true},
		{"arn:aws:s3:::logs/?.log", "arn:aws:s3:::logs/a.log", false},
		{"arn:aws:s3:::logs/[ab].log", "arn:aws:s3:::logs/a.log", false},
		{"arn:aws:s3:::logs/${aws:username}/x", "arn:aws:s3:::logs/log-triage-bot/x", false},
		{"arn:aws:s3:::logs/${aws:username}/x", "arn:aws:s3:::logs/${aws:username}/x", true},
		{"arn:aws:s3:::logs/app", "arn:aws:s3:::logs/App", false},
		{"arn:aws:s3:::logs/app?*", "arn:aws:s3:::logs/app1/x", false},
		{"arn:aws:s3:::logs/app?*", "arn:aws:s3:::logs/app?/x", true},
	} {
		if got := Match(c.pattern, c.resource); got != c.want {
			t.Errorf("Match(%q, %q) = %v, want %v", c.pattern, c.resource, got, c.want)
		}
	}
	for _, bad := range []string{"s3:GetObject arn:aws:s3:::logs/*/a.log", "s3:GetObject arn:aws:s3:::logs/**"} {
		if _, err := ParseStatement(bad); err == nil {
			t.Errorf("ParseStatement(%q) accepted a * that is not the last character", bad)
		}
	}
}
