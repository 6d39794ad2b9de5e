package grants_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/airlock-dev/airlock/internal/apierr"
	"github.com/airlock-dev/airlock/internal/grants"
	"github.com/airlock-dev/airlock/internal/model"
)

// An action in another case than the gateway's (s3:Deleteobject for
// s3:DeleteObject) is refused when the request is parsed, naming the
// spelling to use. It was accepted: a forbid naming s3:DeleteObject did
// not match it, so policy allowed it (auto-approved on aws-dev, where a
// permit allows any action) and the grant's record said a delete was
// granted, while the gateway, which compares exactly, let it do nothing.
func TestActionInAnotherCaseIsRefused(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{Policies: testPolicies + `
@id("no-deletes-on-dev")
forbid (principal, action == Action::"s3:DeleteObject", resource == Target::"aws-dev");
`})
	req := func(sc ...string) grants.RequestInput {
		return grants.RequestInput{Target: awsDev, Scope: sc, Duration: "10m", Reason: "clean up"}
	}
	// The forbid holds for the action as the gateway spells it.
	g, err := h.Svc.Request(h.ctx, h.id(bot), req("s3:DeleteObject arn:aws:s3:::dev/*"))
	if err != nil || g.Status != model.Denied || !slices.Contains(g.Decision.PolicyIDs, "no-deletes-on-dev") {
		t.Fatalf("canonical delete: %v, status %s, policies %v", err, g.Status, g.Decision.PolicyIDs)
	}
	for _, c := range []struct {
		scope []string
		field string
		want  string
	}{
		{[]string{"s3:Deleteobject arn:aws:s3:::dev/*"}, "scope[0]", "s3:DeleteObject"},
		{[]string{"s3:GetObject arn:aws:s3:::dev/*", "s3:GetObject,s3:DELETEOBJECT arn:aws:s3:::dev/x/*"}, "scope[1]", "s3:DeleteObject"},
		// A lower-case first letter was refused already, but told to
		// write s3:Deleteobject, which is no action either.
		{[]string{"s3:deleteobject arn:aws:s3:::dev/*"}, "scope[0]", "s3:DeleteObject"},
		// Other services' actions, as awsops checks them.
		{[]string{"dynamodb:Getitem arn:aws:dynamodb:us-east-1:444455556666:table/t"}, "scope[0]", "dynamodb:GetItem"},
		// EC2's Describe* actions, which the gateway maps by the
		// operation's name and no list held: they were accepted as
		// written (the lower-case first letter was refused, but told to
		// write ec2:Describeinstances, no action either).
		{[]string{"ec2:describeinstances *"}, "scope[0]", "ec2:DescribeInstances"},
		{[]string{"ec2:DescribeSecurityGroups *", "ec2:DescribeinStances *"}, "scope[1]", "ec2:DescribeInstances"},
	} {
		size, n := h.logSize(), h.grantCount()
		g, err := h.Svc.Request(h.ctx, h.id(bot), req(c.scope...))
		ae := wantAPIErr(t, err, 400, apierr.CodeInvalid, c.field)
		if !strings.Contains(ae.Message, c.want) {
			t.Errorf("%q: message %q does not name %s", c.scope, ae.Message, c.want)
		}
		if g.ID != "" || h.logSize() != size || h.grantCount() != n {
			t.Errorf("%q: refused, but recorded: grant %q, log %d → %d, grants %d → %d", c.scope, g.ID, size, h.logSize(), n, h.grantCount())
		}
	}
	// Postgres's verbs are lower-case.
	_, err = h.Svc.Request(h.ctx, h.id(bot), grants.RequestInput{Target: ordersDB, Scope: []string{"pg:SELECT orders.public.*"}, Duration: "10m", Reason: "r"})
	if ae := wantAPIErr(t, err, 400, apierr.CodeInvalid, "scope[0]"); !strings.Contains(ae.Message, "pg:select") {
		t.Errorf("pg:SELECT: message %q does not name pg:select", ae.Message)
	}
	// An action no gateway lists is treated as before: accepted when it
	// is an AWS action name, and compared exactly.
	h.request(bot, req("s3:SomeFutureAction arn:aws:s3:::dev/*"), model.Active)
	h.request(bot, req("ec2:DescribeInstances *", "ec2:DescribeSomeFutureThing *"), model.Active)
}
