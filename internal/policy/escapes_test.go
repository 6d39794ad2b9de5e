package policy

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cedar-policy/cedar-go/types"

	"github.com/airlock-dev/airlock/internal/scope"
)

// An escaped \* in a like pattern that allows is refused at load: it
// matched the trailing * of the requested pattern, so a permit meant for
// the object named "logs/*" (or written for a literal star) permitted
// arn:aws:s3:::logs/*, every object under logs/. Where the test
// restricts it still loads and is decided for every resource covered.
func TestEscapedStarInAllowingLike(t *testing.T) {
	for _, c := range []struct{ name, policy string }{
		{"permit's when", `@id("star") @approval("auto")
permit (principal, action == Action::"s3:GetObject", resource == Target::"aws-prod")
when { context.resource like "arn:aws:s3:::logs/\*" };`},
		{"star then wildcard", `@id("star") @approval("auto")
permit (principal, action == Action::"s3:GetObject", resource == Target::"aws-prod")
when { context.resource like "arn:aws:s3:::logs/\**" };`},
		{"forbid's when under !", `@id("all") @approval("auto")
permit (principal, action == Action::"s3:GetObject", resource == Target::"aws-prod");
@id("star")
forbid (principal, action, resource) when { !(context.resource like "arn:aws:s3:::logs/\*") };`},
	} {
		t.Run(c.name, func(t *testing.T) {
			s, err := Load(writeDir(t, map[string]string{"a.cedar": c.policy}), known)
			if err == nil {
				d := s.Decide(Request{Principal: bot, Target: prod, Pairs: []scope.Pair{{Action: "s3:GetObject", Resource: "arn:aws:s3:::logs/*"}}, Duration: time.Minute, Reason: "r"})
				t.Fatalf("loaded; a request for logs/* is %s (%s)", d.Outcome, d.Explanation)
			}
			if !strings.Contains(err.Error(), `policy "star": context.resource like with an escaped \*`) {
				t.Errorf("error %q", err)
			}
		})
	}
	// Restricting, a \* stands for a name with a * in it.
	s := mustLoad(t, map[string]string{"a.cedar": `@id("logs") @approval("auto")
permit (principal, action == Action::"s3:GetObject", resource == Target::"aws-prod")
when { context.resource like "arn:aws:s3:::logs/*" } unless { context.resource like "arn:aws:s3:::logs/\*" };
@id("no-star")
forbid (principal, action, resource) when { context.resource like "arn:aws:s3:::logs/a\*" };`})
	for res, want := range map[string]string{
		"arn:aws:s3:::logs/app/x": OutcomeAuto,
		"arn:aws:s3:::logs/*":     OutcomeDeny, // covers logs/* and logs/a*
		"arn:aws:s3:::logs/a*":    OutcomeDeny,
		"arn:aws:s3:::logs/b*":    OutcomeAuto,
	} {
		d := s.Decide(Request{Principal: bot, Target: prod, Pairs: []scope.Pair{{Action: "s3:GetObject", Resource: res}}, Duration: time.Minute, Reason: "r"})
		if d.Outcome != want {
			t.Errorf("%s: %s (%s), want %s", res, d.Outcome, d.Explanation, want)
		}
	}
}

// An empty group name is no group: a principal handed one is not a member
// of Group::"", and a policy naming Group::"" is refused at load. Both
// were taken as a group like any other.
func TestEmptyGroupName(t *testing.T) {
	_, parents, err := principalEntity(Principal{Kind: "human", Name: "dave", Groups: []string{"", "sre-leads"}})
	if err != nil {
		t.Fatal(err)
	}
	if want := []types.EntityUID{types.NewEntityUID(typeGroup, "sre-leads")}; !slices.Equal(parents, want) {
		t.Errorf("parents %v, want %v", parents, want)
	}
	_, err = Load(writeDir(t, map[string]string{"a.cedar": `@id("nobody") permit (principal in Group::"", action, resource);`}), known)
	if err == nil || !strings.Contains(err.Error(), `policy "nobody": Group::"" names no group`) {
		t.Errorf("Group::\"\": %v", err)
	}
	_, err = Load(writeDir(t, map[string]string{"a.cedar": `@id("nobody") forbid (principal, action, resource) when { principal in [Group::"a", Group::""] };`}), known)
	if err == nil || !strings.Contains(err.Error(), `Group::"" names no group`) {
		t.Errorf("Group::\"\" in a condition: %v", err)
	}
}
