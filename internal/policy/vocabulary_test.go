package policy

import (
	"testing"
	"time"
)

// TestVocabulary exercises each term of DESIGN.md's policy vocabulary in a
// permit of its own, with a request it admits and one it must not: a term
// the engine left out of the entities or context would make the first
// request denied (or, for a negated condition, the second allowed).
func TestVocabulary(t *testing.T) {
	s := mustLoad(t, map[string]string{"vocab.cedar": `
@id("human-by-name") @approval("auto")
permit (principal == Human::"alice", action == Action::"s3:GetObject", resource == Target::"aws-prod")
when { context.resource like "arn:aws:s3:::handbook/*" };

@id("name-attribute") @approval("auto")
permit (principal is Agent, action == Action::"s3:ListBucket", resource == Target::"aws-prod")
when { principal.name == "log-triage-bot" && context.resource like "arn:aws:s3:::names/*" };

@id("owner-attribute") @approval("auto")
permit (principal, action == Action::"s3:GetObject", resource == Target::"aws-prod")
when { principal.owner == "sre-team" && context.resource like "arn:aws:s3:::owners/*" };

@id("human-groups") @approval("auto")
permit (principal in Group::"sre-leads", action == Action::"s3:GetObject", resource == Target::"aws-prod")
when { context.resource like "arn:aws:s3:::leads/*" };

@id("pg-select") @approval("auto")
permit (principal in Group::"sre-team", action == Action::"pg:select", resource == Target::"orders-db")
when { context.resource like "orders.public.*" };

@id("account-attribute") @approval("auto")
permit (principal in Group::"sre-team", action == Action::"s3:PutObject", resource)
when { resource.account == "111122223333" && context.resource like "arn:aws:s3:::scratch/*" };

@id("logs-arn") @approval("auto")
permit (principal in Group::"sre-team", action == Action::"logs:FilterLogEvents", resource == Target::"aws-prod")
when { context.resource like "arn:aws:logs:us-east-1:111122223333:log-group:/app/*" };

@id("ddb-arn") @approval("auto")
permit (principal in Group::"sre-team", action in [Action::"dynamodb:GetItem", Action::"dynamodb:Query"], resource == Target::"aws-prod")
when { context.resource == "arn:aws:dynamodb:us-east-1:111122223333:table/orders" };

@id("unscoped-star") @approval("auto")
permit (principal in Group::"sre-team", action == Action::"ec2:DescribeInstances", resource == Target::"aws-prod")
when { context.resource == "*" };

@id("reason") @approval("auto")
permit (principal in Group::"sre-team", action == Action::"s3:GetObject", resource == Target::"aws-prod")
when { context.reason like "*INC-*" && context.resource like "arn:aws:s3:::incidents/*" };

@id("duration-human")
permit (principal in Group::"sre-team", action == Action::"s3:DeleteObject", resource == Target::"aws-prod")
when { context.duration_seconds <= 600 };
`})
	other := Principal{Kind: "agent", Name: "other-bot", Owner: "data-team"}
	orders := Target{Name: "orders-db", Account: "111122223333"}
	staging := Target{Name: "aws-staging", Account: "444455556666"}
	tests := []struct {
		name    string
		who     Principal
		target  Target
		scope   string
		dur     time.Duration
		reason  string
		outcome string
	}{
		{"Human::name", alice, prod, "s3:GetObject arn:aws:s3:::handbook/x", time.Minute, "", "auto"},
		{"Human::name, another human", bob, prod, "s3:GetObject arn:aws:s3:::handbook/x", time.Minute, "", "deny"},
		{"principal.name", bot, prod, "s3:ListBucket arn:aws:s3:::names/*", time.Minute, "", "auto"},
		{"principal.name, another agent", Principal{Kind: "agent", Name: "log-triage-bot-2", Owner: "sre-team"}, prod, "s3:ListBucket arn:aws:s3:::names/*", time.Minute, "", "deny"},
		{"principal.owner", bot, prod, "s3:GetObject arn:aws:s3:::owners/x", time.Minute, "", "auto"},
		{"principal.owner, another team", other, prod, "s3:GetObject arn:aws:s3:::owners/x", time.Minute, "", "deny"},
		{"a human's groups", alice, prod, "s3:GetObject arn:aws:s3:::leads/x", time.Minute, "", "auto"},
		{"a human's groups, not a member", bob, prod, "s3:GetObject arn:aws:s3:::leads/x", time.Minute, "", "deny"},
		{"pg:select", bot, orders, "pg:select orders.public.*", time.Minute, "", "auto"},
		{"pg:select, another schema", bot, orders, "pg:select orders.audit.*", time.Minute, "", "deny"},
		{"pg:select on an aws target", bot, prod, "pg:select orders.public.*", time.Minute, "", "deny"},
		{"resource.account", bot, prod, "s3:PutObject arn:aws:s3:::scratch/x", time.Minute, "", "auto"},
		{"resource.account, another account", bot, staging, "s3:PutObject arn:aws:s3:::scratch/x", time.Minute, "", "deny"},
		{"logs ARN", bot, prod, "logs:FilterLogEvents arn:aws:logs:us-east-1:111122223333:log-group:/app/api", time.Minute, "", "auto"},
		{"logs ARN, another group", bot, prod, "logs:FilterLogEvents arn:aws:logs:us-east-1:111122223333:log-group:/billing", time.Minute, "", "deny"},
		{"dynamodb ARN", bot, prod, "dynamodb:GetItem,dynamodb:Query arn:aws:dynamodb:us-east-1:111122223333:table/orders", time.Minute, "", "auto"},
		{"dynamodb ARN, another table", bot, prod, "dynamodb:GetItem arn:aws:dynamodb:us-east-1:111122223333:table/customers", time.Minute, "", "deny"},
		{"* for an unscoped action", bot, prod, "ec2:DescribeInstances *", time.Minute, "", "auto"},
		{"context.reason", bot, prod, "s3:GetObject arn:aws:s3:::incidents/x", time.Minute, "INC-42 triage", "auto"},
		{"context.reason, no ticket", bot, prod, "s3:GetObject arn:aws:s3:::incidents/x", time.Minute, "triage", "deny"},
		{"context.duration_seconds, no annotation", bot, prod, "s3:DeleteObject arn:aws:s3:::tmp/x", 10 * time.Minute, "", "human"},
		{"context.duration_seconds, too long", bot, prod, "s3:DeleteObject arn:aws:s3:::tmp/x", 11 * time.Minute, "", "deny"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := s.Decide(Request{Principal: tc.who, Target: tc.target, Pairs: pairs(tc.scope), Duration: tc.dur, Reason: tc.reason})
			if d.Outcome != tc.outcome {
				t.Errorf("%s for %s on %s: outcome %q, want %q (%s)", tc.scope, tc.who.Name, tc.target.Name, d.Outcome, tc.outcome, d.Explanation)
			}
		})
	}
}

// TestApproveVocabulary: an approve policy sees the request's context too
// (resource, duration_seconds, reason, with requester and action) and the
// target's account, as README's vocabulary says.
func TestApproveVocabulary(t *testing.T) {
	s := mustLoad(t, map[string]string{"approve.cedar": `
@id("leads-approve-incident-reads")
permit (principal in Group::"sre-leads", action == Action::"approve", resource == Target::"orders-db")
when { resource.account == "111122223333" && context.reason like "*INC-*" && context.resource like "orders.public.*" };
`})
	orders := Target{Name: "orders-db", Account: "111122223333"}
	for _, tc := range []struct {
		name, scope, reason string
		target              Target
		ok                  bool
	}{
		{"every test holds", "pg:select orders.public.*", "INC-7", orders, true},
		{"context.reason", "pg:select orders.public.*", "triage", orders, false},
		{"context.resource", "pg:select orders.audit.*", "INC-7", orders, false},
		{"resource.account", "pg:select orders.public.*", "INC-7", Target{Name: "orders-db", Account: "444455556666"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ok, _, why := s.MayApprove(alice, "log-triage-bot", tc.target, pairs(tc.scope), time.Minute, tc.reason)
			if ok != tc.ok {
				t.Errorf("MayApprove %s %q on account %s = %v (%s), want %v", tc.scope, tc.reason, tc.target.Account, ok, why, tc.ok)
			}
		})
	}
}
