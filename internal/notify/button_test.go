package notify

import (
	"strings"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/model"
	"github.com/airlock-dev/airlock/internal/scope"
)

// TestCheckButton: a button's value verifies only for the grant and the
// action it was made for, under the key it was made with, and only while
// the request reads as the message showed it.
func TestCheckButton(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef")
	sc, err := scope.Parse([]string{"s3:GetObject arn:aws:s3:::logs/*"})
	if err != nil {
		t.Fatal(err)
	}
	g := model.Grant{ID: "g_abc123", Identity: "bot", IdentityKind: model.Agent, Target: "aws-prod", Account: "111122223333",
		RequestedScope: sc, Duration: 30 * time.Minute, Reason: "INC-1", Decision: model.PolicyDecision{Explanation: "needs a person"}}
	approve, deny := buttonValue(key, "approve", g), buttonValue(key, "deny", g)
	if len(approve) > maxButtonValue {
		t.Fatalf("a value of %d bytes is longer than Slack allows", len(approve))
	}
	wider, err := scope.Parse([]string{"s3:GetObject arn:aws:s3:::*"})
	if err != nil {
		t.Fatal(err)
	}
	changed := func(edit func(*model.Grant)) model.Grant {
		c := g
		edit(&c)
		return c
	}
	for _, tc := range []struct {
		name  string
		verb  string
		value string
		key   []byte
		now   model.Grant
		want  buttonCheck
	}{
		{"approve", "approve", approve, key, g, buttonOK},
		{"deny", "deny", deny, key, g, buttonOK},
		{"the deny value on approve", "approve", deny, key, g, buttonForged},
		{"another key", "approve", approve, []byte("another key, another key, another"), g, buttonForged},
		{"no value", "approve", "", key, g, buttonForged},
		{"the grant id (an older Airlock's)", "approve", g.ID, key, g, buttonLegacy},
		{"padded", "approve", approve + "=", key, g, buttonForged},
		{"another version", "approve", "v2." + strings.TrimPrefix(approve, "v1."), key, g, buttonForged},
		{"a truncated MAC", "approve", approve[:len(approve)-2], key, g, buttonForged},
		{"the scope changed", "approve", approve, key, changed(func(c *model.Grant) { c.RequestedScope = wider }), buttonChanged},
		{"the reason changed", "approve", approve, key, changed(func(c *model.Grant) { c.Reason = "INC-2" }), buttonChanged},
		{"the duration changed", "deny", deny, key, changed(func(c *model.Grant) { c.Duration = time.Hour }), buttonChanged},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := action{verb: tc.verb, grant: g.ID, value: tc.value}
			if got := checkButton(tc.key, a, tc.now); got != tc.want {
				t.Errorf("checkButton = %d, want %d", got, tc.want)
			}
		})
	}
	// Another grant's value does not verify for this one.
	h := changed(func(c *model.Grant) { c.ID = "g_def456" })
	if got := checkButton(key, action{verb: "approve", grant: g.ID, value: buttonValue(key, "approve", h)}, g); got != buttonForged {
		t.Errorf("another grant's value: %d, want forged", got)
	}
}
