package policy

import (
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/scope"
)

// designPolicies are the two policies of DESIGN.md, verbatim.
const designPolicies = `@id("triage-reads-app-logs")
@approval("auto")
permit (principal in Group::"sre-team", action in [Action::"s3:GetObject", Action::"s3:ListBucket"], resource == Target::"aws-prod")
when { context.resource like "arn:aws:s3:::logs/app/*" && context.duration_seconds <= 900 };

@id("leads-approve-sre-agents")
permit (principal in Group::"sre-leads", action == Action::"approve", resource == Target::"aws-prod");
`

var configured = map[string]bool{"aws-prod": true, "aws-staging": true, "orders-db": true}

func known(t string) bool { return configured[t] }

// writeDir writes files (name → contents) into a fresh temporary directory.
func writeDir(t testing.TB, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func mustLoad(t testing.TB, files map[string]string) *Set {
	t.Helper()
	s, err := Load(writeDir(t, files), known)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return s
}

var (
	bot   = Principal{Kind: "agent", Name: "log-triage-bot", Owner: "sre-team"}
	alice = Principal{Kind: "human", Name: "alice", Groups: []string{"sre-leads"}}
	bob   = Principal{Kind: "human", Name: "bob", Groups: []string{"developers"}}
	prod  = Target{Name: "aws-prod", Account: "111122223333"}
)

func pairs(stmts ...string) []scope.Pair {
	var out []scope.Pair
	for _, s := range stmts {
		st, err := scope.ParseStatement(s)
		if err != nil {
			panic(err)
		}
		for _, a := range st.Actions {
			out = append(out, scope.Pair{Action: a, Resource: st.Resource})
		}
	}
	return out
}

func TestDecide(t *testing.T) {
	extra := map[string]string{
		"00-design.cedar": designPolicies,
		"10-more.cedar": `
@id("bot-writes-scratch")
@approval("human")
permit (principal == Agent::"log-triage-bot", action == Action::"s3:PutObject", resource == Target::"aws-prod")
when { context.resource like "arn:aws:s3:::scratch/*" };

// no @approval: waits for a human too
@id("bot-deletes-scratch")
permit (principal == Agent::"log-triage-bot", action == Action::"s3:DeleteObject", resource == Target::"aws-prod")
when { context.resource like "arn:aws:s3:::scratch/*" };

@id("no-secrets")
forbid (principal, action, resource == Target::"aws-staging")
when { context.resource like "arn:aws:s3:::secrets/*" };

@id("staging-reads")
@approval("auto")
permit (principal is Agent, action == Action::"s3:GetObject", resource)
when { resource.account == "444455556666" && principal.owner == "sre-team" };
`,
	}
	s := mustLoad(t, extra)
	staging := Target{Name: "aws-staging", Account: "444455556666"}

	tests := []struct {
		name      string
		who       Principal
		target    Target
		scope     []string
		dur       time.Duration
		outcome   string
		policies  []string
		explained string // substring of the explanation
	}{
		{"design: auto for 10m", bot, prod, []string{"s3:GetObject,s3:ListBucket arn:aws:s3:::logs/app/*"}, 10 * time.Minute,
			"auto", []string{"triage-reads-app-logs"}, `"triage-reads-app-logs"`},
		{"design: exactly the cap", bot, prod, []string{"s3:GetObject arn:aws:s3:::logs/app/*"}, 900 * time.Second,
			"auto", []string{"triage-reads-app-logs"}, ""},
		{"design: 30m is over the duration condition", bot, prod, []string{"s3:GetObject arn:aws:s3:::logs/app/*"}, 1800 * time.Second,
			"deny", nil, `no policy permits s3:GetObject on arn:aws:s3:::logs/app/* for Agent::"log-triage-bot"`},
		{"fractions of a second round up", bot, prod, []string{"s3:GetObject arn:aws:s3:::logs/app/*"}, 900*time.Second + time.Millisecond,
			"deny", nil, "no policy permits"},
		{"outside the prefix", bot, prod, []string{"s3:GetObject arn:aws:s3:::logs/*"}, 10 * time.Minute,
			"deny", nil, `no policy permits s3:GetObject on arn:aws:s3:::logs/* for Agent::"log-triage-bot"`},
		{"one pair of two denied", bot, prod, []string{"s3:GetObject,s3:PutObject arn:aws:s3:::logs/app/*"}, 10 * time.Minute,
			"deny", nil, `no policy permits s3:PutObject on arn:aws:s3:::logs/app/* for Agent::"log-triage-bot"`},
		{"wrong target", bot, Target{Name: "orders-db", Account: "111122223333"}, []string{"s3:GetObject arn:aws:s3:::logs/app/*"}, 10 * time.Minute,
			"deny", nil, "no policy permits"},
		{"not in the group", Principal{Kind: "agent", Name: "other-bot", Owner: "data-team"}, prod, []string{"s3:GetObject arn:aws:s3:::logs/app/*"}, 10 * time.Minute,
			"deny", nil, `for Agent::"other-bot"`},
		{"group membership through groups, not only owner", Principal{Kind: "agent", Name: "b2", Owner: "x", Groups: []string{"sre-team"}}, prod, []string{"s3:GetObject arn:aws:s3:::logs/app/*"}, time.Minute,
			"auto", []string{"triage-reads-app-logs"}, ""},
		{"a human of the group is not an agent but still in the group", Principal{Kind: "human", Name: "carol", Groups: []string{"sre-team"}}, prod, []string{"s3:GetObject arn:aws:s3:::logs/app/*"}, time.Minute,
			"auto", []string{"triage-reads-app-logs"}, ""},
		{"@approval(human)", bot, prod, []string{"s3:PutObject arn:aws:s3:::scratch/x/*"}, 10 * time.Minute,
			"human", []string{"bot-writes-scratch"}, `waits for a human approver (no @approval("auto") policy): s3:PutObject on arn:aws:s3:::scratch/x/* is permitted only by "bot-writes-scratch"`},
		{"no @approval means human", bot, prod, []string{"s3:DeleteObject arn:aws:s3:::scratch/x/*"}, 10 * time.Minute,
			"human", []string{"bot-deletes-scratch"}, "waits for a human approver"},
		{"auto and human pairs: human", bot, prod, []string{"s3:GetObject arn:aws:s3:::logs/app/*", "s3:PutObject arn:aws:s3:::scratch/*"}, 10 * time.Minute,
			"human", []string{"bot-writes-scratch", "triage-reads-app-logs"}, "s3:PutObject on arn:aws:s3:::scratch/*"},
		{"forbid overrides an auto permit", bot, staging, []string{"s3:GetObject arn:aws:s3:::secrets/db/*"}, 10 * time.Minute,
			"deny", []string{"no-secrets"}, `forbidden by policy "no-secrets"`},
		// The forbid's like is not true of the string "arn:aws:s3:::*",
		// but the pattern covers secrets/ too.
		{"forbid of a part of a requested prefix", bot, staging, []string{"s3:GetObject arn:aws:s3:::*"}, 10 * time.Minute,
			"deny", []string{"no-secrets"}, `forbidden by policy "no-secrets"`},
		{"forbid of a prefix that a requested prefix starts", bot, staging, []string{"s3:GetObject arn:aws:s3:::sec*"}, 10 * time.Minute,
			"deny", []string{"no-secrets"}, `forbidden by policy "no-secrets"`},
		{"a prefix beside a forbidden one", bot, staging, []string{"s3:GetObject arn:aws:s3:::secretsX/*"}, 10 * time.Minute,
			"auto", []string{"staging-reads"}, ""},
		{"attribute conditions", bot, staging, []string{"s3:GetObject arn:aws:s3:::anything"}, time.Hour,
			"auto", []string{"staging-reads"}, ""},
		{"no pairs", bot, prod, nil, time.Minute, "deny", nil, "no scope requested"},
		{"non-positive duration", bot, prod, []string{"s3:GetObject arn:aws:s3:::logs/app/*"}, 0, "deny", nil, "not positive"},
		{"unknown kind", Principal{Kind: "robot", Name: "x"}, prod, []string{"s3:GetObject arn:aws:s3:::logs/app/*"}, time.Minute, "deny", nil, "unknown kind"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := s.Decide(Request{Principal: tc.who, Target: tc.target, Pairs: pairs(tc.scope...), Duration: tc.dur, Reason: "triage"})
			if d.Outcome != tc.outcome {
				t.Fatalf("outcome %q, want %q (%s)", d.Outcome, tc.outcome, d.Explanation)
			}
			if !slices.Equal(d.PolicyIDs, tc.policies) {
				t.Errorf("policies %q, want %q", d.PolicyIDs, tc.policies)
			}
			if !strings.Contains(d.Explanation, tc.explained) {
				t.Errorf("explanation %q does not contain %q", d.Explanation, tc.explained)
			}
			if d.PolicySetHash != s.Hash() || !d.At.IsZero() {
				t.Errorf("hash %q at %v", d.PolicySetHash, d.At)
			}
			if len(tc.scope) > 0 && len(d.Pairs) != len(pairs(tc.scope...)) && d.Outcome != "deny" {
				t.Errorf("%d pair decisions", len(d.Pairs))
			}
		})
	}

	t.Run("pair decisions", func(t *testing.T) {
		d := s.Decide(Request{Principal: bot, Target: prod, Pairs: pairs("s3:GetObject,s3:ListBucket arn:aws:s3:::logs/app/*", "s3:PutObject arn:aws:s3:::scratch/*"), Duration: time.Minute})
		if len(d.Pairs) != 3 {
			t.Fatalf("pairs %+v", d.Pairs)
		}
		want := []string{"auto", "auto", "human"}
		for i, pd := range d.Pairs {
			if !pd.Allowed || pd.Approval != want[i] || len(pd.Policies) != 1 {
				t.Errorf("pair %d: %+v", i, pd)
			}
		}
	})
	t.Run("approve action is never granted", func(t *testing.T) {
		d := s.Decide(Request{Principal: alice, Target: prod, Pairs: []scope.Pair{{Action: "approve", Resource: "x"}}, Duration: time.Minute})
		if d.Outcome != "deny" || !strings.Contains(d.Explanation, "not a requestable action") {
			t.Errorf("%+v", d)
		}
	})
}

func TestDecideEmptySetDeniesEverything(t *testing.T) {
	s := mustLoad(t, map[string]string{"README.md": "not a policy"})
	if s.Len() != 0 || len(s.Files()) != 0 {
		t.Fatalf("len %d files %v", s.Len(), s.Files())
	}
	d := s.Decide(Request{Principal: bot, Target: prod, Pairs: pairs("s3:GetObject arn:aws:s3:::logs/app/*"), Duration: time.Minute})
	if d.Outcome != "deny" {
		t.Fatalf("%+v", d)
	}
	if ok, _, _ := s.MayApprove(alice, "log-triage-bot", prod, pairs("s3:GetObject x"), time.Minute, ""); ok {
		t.Fatal("empty set lets alice approve")
	}
}

func TestEvaluationErrorsAreReported(t *testing.T) {
	s := mustLoad(t, map[string]string{"a.cedar": `
@id("bad-arith") @approval("auto")
permit (principal, action == Action::"s3:GetObject", resource)
when { context.duration_seconds * 9223372036854775807 > 0 };`})
	d := s.Decide(Request{Principal: bot, Target: prod, Pairs: pairs("s3:GetObject x"), Duration: time.Minute})
	if d.Outcome != "deny" || len(d.Pairs) != 1 || len(d.Pairs[0].Errors) != 1 || !strings.Contains(d.Pairs[0].Errors[0], `"bad-arith"`) {
		t.Fatalf("%+v", d)
	}
	if !strings.Contains(d.Explanation, "policy errors") {
		t.Errorf("explanation %q", d.Explanation)
	}
}

func TestMayApprove(t *testing.T) {
	s := mustLoad(t, map[string]string{
		"design.cedar": designPolicies,
		"approve.cedar": `
@id("leads-approve-short-staging")
permit (principal in Group::"sre-leads", action == Action::"approve", resource == Target::"aws-staging")
when { context.duration_seconds <= 3600 && context.action like "s3:Get*" && context.requester != "root-bot" };

@id("nobody-approves-deletes")
forbid (principal, action == Action::"approve", resource)
when { context.action == "s3:DeleteObject" };

@id("anyone-approves-anything")
permit (principal, action, resource == Target::"orders-db");
`})
	staging := Target{Name: "aws-staging", Account: "444455556666"}
	get := pairs("s3:GetObject,s3:ListBucket arn:aws:s3:::logs/app/*")
	tests := []struct {
		name      string
		approver  Principal
		requester string
		target    Target
		pairs     []scope.Pair
		dur       time.Duration
		ok        bool
		policies  []string
		why       string
	}{
		{"alice, a lead, approves", alice, "log-triage-bot", prod, get, 10 * time.Minute, true, []string{"leads-approve-sre-agents"}, ""},
		{"bob is not a lead", bob, "log-triage-bot", prod, get, 10 * time.Minute, false, nil, `no approve policy permits Human::"bob" approving "log-triage-bot"'s s3:GetObject`},
		{"requester cannot approve own", alice, "alice", prod, get, 10 * time.Minute, false, nil, "own request"},
		{"agent cannot approve", Principal{Kind: "agent", Name: "approver-bot", Owner: "sre-leads", Groups: []string{"sre-leads"}}, "log-triage-bot", prod, get, time.Minute, false, nil, "only humans approve"},
		{"agent cannot approve even with an allow-all policy", Principal{Kind: "agent", Name: "x"}, "y", Target{Name: "orders-db"}, pairs("pg:select a.*"), time.Minute, false, nil, "only humans approve"},
		{"own request even with an allow-all policy", bob, "bob", Target{Name: "orders-db"}, pairs("pg:select a.*"), time.Minute, false, nil, "own request"},
		{"approve conditions: duration", alice, "log-triage-bot", staging, pairs("s3:GetObject x"), 2 * time.Hour, false, nil, "no approve policy permits"},
		{"approve conditions: action (every pair)", alice, "log-triage-bot", staging, get, time.Hour, false, nil, "s3:ListBucket"},
		{"approve conditions: requester", alice, "root-bot", staging, pairs("s3:GetObject x"), time.Hour, false, nil, "no approve policy permits"},
		{"approve conditions met", alice, "log-triage-bot", staging, pairs("s3:GetObject x"), time.Hour, true, []string{"leads-approve-short-staging"}, ""},
		{"approve forbid", alice, "log-triage-bot", prod, pairs("s3:GetObject,s3:DeleteObject x"), time.Minute, false, nil, `forbidden by policy "nobody-approves-deletes"`},
		{"no pairs", alice, "log-triage-bot", prod, nil, time.Minute, false, nil, "no scope"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ok, pol, why := s.MayApprove(tc.approver, tc.requester, tc.target, tc.pairs, tc.dur, "triage")
			if ok != tc.ok || !slices.Equal(pol, tc.policies) || !strings.Contains(why, tc.why) || (ok && why != "") {
				t.Errorf("got %v %q %q; want %v %q %q", ok, pol, why, tc.ok, tc.policies, tc.why)
			}
		})
	}
}

func TestLoadErrors(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string
		want  []string // substrings of the error
	}{
		{"syntax error", map[string]string{"a.cedar": designPolicies, "b.cedar": "permit (principal, action, resource)\nwhen { context.resource == };\n"},
			[]string{"b.cedar:2:29: parse error near"}},
		{"missing semicolon at end", map[string]string{"b.cedar": "permit (principal, action, resource)"},
			[]string{"b.cedar:1:37: parse error at end of file"}},
		{"unknown target in scope", map[string]string{"a.cedar": "@id(\"x\")\npermit (principal, action,\n  resource == Target::\"aws-prd\");"},
			[]string{`a.cedar:3:15: policy "x": unknown target "aws-prd"`}},
		{"unknown target in condition", map[string]string{"a.cedar": designPolicies + "\n@id(\"y\")\npermit (principal, action, resource)\nwhen { resource == Target::\"orders-db\" || resource in [Target::\"ghost\"] };"},
			[]string{`a.cedar:11:56: policy "y": unknown target "ghost"`}},
		{"bad @approval", map[string]string{"a.cedar": "\n\n@id(\"x\")\n@approval(\"yes\")\npermit (principal, action, resource);"},
			[]string{`a.cedar:3:1: policy "x": invalid @approval("yes")`}},
		{"@approval on forbid", map[string]string{"a.cedar": "@approval(\"auto\") forbid (principal, action, resource);"},
			[]string{`a.cedar:1:1: policy "a.cedar#policy0": @approval has no meaning on a forbid`}},
		{"duplicate @id across files", map[string]string{"a.cedar": designPolicies, "b.cedar": "\n@id(\"triage-reads-app-logs\")\npermit (principal, action, resource);"},
			[]string{`b.cedar:2:1: duplicate policy id "triage-reads-app-logs" (also at `, `a.cedar:1:1)`}},
		{"empty @id", map[string]string{"a.cedar": "@id(\"\") permit (principal, action, resource);"},
			[]string{`a.cedar:1:1: empty @id`}},
		{"unknown entity type", map[string]string{"a.cedar": "permit (principal in Team::\"sre\", action, resource);"},
			[]string{`unknown entity type Team`}},
		{"unknown context attribute", map[string]string{"a.cedar": "forbid (principal, action, resource) when { context.durationSeconds > 3600 };"},
			[]string{`unknown attribute context.durationSeconds`}},
		// Cedar compares action names exactly, and no request carries
		// these: a forbid naming one forbade nothing, and a permit on
		// "any action" auto-granted s3:DeleteObject past it.
		{"wildcard action in a forbid", map[string]string{"a.cedar": "forbid (principal, action == Action::\"s3:*\", resource);"},
			[]string{`a.cedar:1:1: policy "a.cedar#policy0": malformed action "s3:*"`}},
		{"wildcard action in a list", map[string]string{"a.cedar": "forbid (principal, action in [Action::\"s3:GetObject\", Action::\"s3:Delete*\"], resource);"},
			[]string{`malformed action "s3:Delete*"`}},
		{"action in lower case", map[string]string{"a.cedar": "forbid (principal, action, resource) when { action == Action::\"s3:deleteObject\" };"},
			[]string{`action "s3:deleteObject": AWS action names start with a capital letter (s3:DeleteObject)`}},
		{"service in upper case", map[string]string{"a.cedar": "forbid (principal, action == Action::\"S3:DeleteObject\", resource);"},
			[]string{`malformed action "S3:DeleteObject"`}},
		{"unknown postgres action", map[string]string{"a.cedar": "forbid (principal, action == Action::\"pg:SELECT\", resource);"},
			[]string{`action "pg:SELECT" is not a postgres action`}},
		// Approve policies see the pair's action as context.action, a
		// String that Cedar also compares exactly: a forbid on approving
		// "s3:deleteObject" stopped no approval of s3:DeleteObject.
		{"context.action in lower case", map[string]string{"a.cedar": "forbid (principal, action == Action::\"approve\", resource) when { context.action == \"s3:deleteObject\" };"},
			[]string{`context.action compared with action "s3:deleteObject": AWS action names start with a capital letter (s3:DeleteObject)`}},
		{"context.action on the right, !=", map[string]string{"a.cedar": "permit (principal, action == Action::\"approve\", resource) when { \"S3:GetObject\" != context.action };"},
			[]string{`context.action compared with malformed action "S3:GetObject"`}},
		{"context.action in a set", map[string]string{"a.cedar": "forbid (principal, action == Action::\"approve\", resource) when { [\"s3:DeleteObject\", \"s3:putObject\"].contains(context.action) };"},
			[]string{`context.action compared with action "s3:putObject"`}},
		{"context.action in containsAny", map[string]string{"a.cedar": "forbid (principal, action == Action::\"approve\", resource) when { [context.action].containsAny([\"pg:DELETE\"]) };"},
			[]string{`context.action compared with action "pg:DELETE" is not a postgres action`}},
		{"context.action like, AWS name in lower case", map[string]string{"a.cedar": "forbid (principal, action == Action::\"approve\", resource) when { context.action like \"s3:delete*\" };"},
			[]string{`context.action like "s3:delete*": AWS action names start with a capital letter (s3:Delete*)`}},
		{"context.action like, service in upper case", map[string]string{"a.cedar": "forbid (principal, action == Action::\"approve\", resource) when { context.action like \"S3:*\" };"},
			[]string{`context.action like "S3:*": the service part ("S3") of an action is lower case`}},
		{"context.action like, no postgres action", map[string]string{"a.cedar": "forbid (principal, action == Action::\"approve\", resource) when { context.action like \"pg:SEL*\" };"},
			[]string{`context.action like "pg:SEL*" matches no postgres action`}},
		// A gateway's action in another case: requests may not carry it
		// (grants refuses them), so a forbid naming it forbade nothing.
		{"action in another case", map[string]string{"a.cedar": "forbid (principal, action == Action::\"s3:Deleteobject\", resource);"},
			[]string{`action "s3:Deleteobject" is spelled s3:DeleteObject`}},
		{"context.action in another case", map[string]string{"a.cedar": "forbid (principal, action == Action::\"approve\", resource) when { context.action == \"dynamodb:Getitem\" };"},
			[]string{`context.action compared with action "dynamodb:Getitem" is spelled dynamodb:GetItem`}},
		// EC2's Describe* actions, which no list held, and a lower-case
		// first letter, which was told to write ec2:Describeinstances.
		{"EC2 action in another case", map[string]string{"a.cedar": "forbid (principal, action in [Action::\"ec2:describeinstances\", Action::\"ec2:DescribeSecurityGroups\"], resource);"},
			[]string{`action "ec2:describeinstances" is spelled ec2:DescribeInstances`}},
		{"EC2 context.action in another case", map[string]string{"a.cedar": "forbid (principal, action == Action::\"approve\", resource) when { context.action == \"ec2:DescribeinStances\" };"},
			[]string{`action "ec2:DescribeinStances" is spelled ec2:DescribeInstances`}},
		{"context.action like, a gateway's action in another case", map[string]string{"a.cedar": "forbid (principal, action == Action::\"approve\", resource) when { context.action like \"ec2:DescribeinStances*\" || context.action like \"ec2:Describe*\" || context.action like \"iam:Get*\" };"},
			[]string{`"ec2:DescribeinStances*" matches no action as the gateways spell it, only ec2:DescribeInstances in another case`}},
		{"several errors at once", map[string]string{"a.cedar": "@approval(\"x\") permit (principal, action, resource == Target::\"nope\");"},
			[]string{`invalid @approval("x")`, `unknown target "nope"`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load(writeDir(t, tc.files), known)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
	if _, err := Load(filepath.Join(t.TempDir(), "missing"), known); err == nil {
		t.Error("missing dir: no error")
	}
}

// TestContextActionWellWritten: comparisons of context.action with names
// and patterns a request can carry load, and the loader judges only
// context.action, not other strings that look like actions.
func TestContextActionWellWritten(t *testing.T) {
	for _, p := range []string{
		`forbid (principal, action == Action::"approve", resource) when { context.action == "s3:DeleteObject" };`,
		`forbid (principal, action == Action::"approve", resource) when { context.action != "pg:select" };`,
		`forbid (principal, action == Action::"approve", resource) when { ["s3:DeleteObject", "pg:delete"].contains(context.action) };`,
		`forbid (principal, action == Action::"approve", resource) when { [context.action].containsAny(["dynamodb:DeleteItem"]) };`,
		`forbid (principal, action == Action::"approve", resource) when { context.action like "s3:Delete*" };`,
		`forbid (principal, action == Action::"approve", resource) when { context.action like "pg:*" };`,
		`forbid (principal, action == Action::"approve", resource) when { context.action like "pg:del*" };`,
		`forbid (principal, action == Action::"approve", resource) when { context.action like "*Delete*" };`,
		`forbid (principal, action == Action::"approve", resource) when { context.action like "s3*" };`,
		`forbid (principal, action, resource) when { context.reason == "s3:lowercase is just text here" };`,
	} {
		if _, err := Load(writeDir(t, map[string]string{"a.cedar": p}), known); err != nil {
			t.Errorf("%s: %v", p, err)
		}
	}
}

func TestLoadIDsAndFiles(t *testing.T) {
	s := mustLoad(t, map[string]string{
		"b.cedar":  designPolicies,
		"a.cedar":  "permit (principal, action == Action::\"pg:select\", resource == Target::\"orders-db\");\nforbid (principal, action, resource) when { context.reason == \"\" };",
		"notes.md": "ignored",
	})
	if got := s.Files(); !slices.Equal(got, []string{"a.cedar", "b.cedar"}) {
		t.Errorf("files %q", got)
	}
	if got := s.IDs(); !slices.Equal(got, []string{"a.cedar#policy0", "a.cedar#policy1", "triage-reads-app-logs", "leads-approve-sre-agents"}) {
		t.Errorf("ids %q", got)
	}
	if s.Len() != 4 {
		t.Errorf("len %d", s.Len())
	}
	// unnamed forbid: the generated id is what decisions record
	d := s.Decide(Request{Principal: bot, Target: Target{Name: "orders-db"}, Pairs: pairs("pg:select a.*"), Duration: time.Minute})
	if d.Outcome != "deny" || !slices.Equal(d.PolicyIDs, []string{"a.cedar#policy1"}) {
		t.Errorf("%+v", d)
	}
	d = s.Decide(Request{Principal: bot, Target: Target{Name: "orders-db"}, Pairs: pairs("pg:select a.*"), Duration: time.Minute, Reason: "r"})
	if d.Outcome != "human" || !slices.Equal(d.PolicyIDs, []string{"a.cedar#policy0"}) {
		t.Errorf("%+v", d)
	}
}

func TestHash(t *testing.T) {
	files := map[string]string{"a.cedar": designPolicies, "b.cedar": "forbid (principal, action, resource) when { context.reason == \"\" };"}
	dir := writeDir(t, files)
	s1, err := Load(dir, known)
	if err != nil {
		t.Fatal(err)
	}
	s2 := mustLoad(t, files) // identical files elsewhere
	if !strings.HasPrefix(s1.Hash(), "sha256:") || len(s1.Hash()) != len("sha256:")+64 || s1.Hash() != s2.Hash() {
		t.Fatalf("hashes %q %q", s1.Hash(), s2.Hash())
	}
	if err := os.WriteFile(filepath.Join(dir, "b.cedar"), []byte(files["b.cedar"]+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s3, err := Load(dir, known)
	if err != nil {
		t.Fatal(err)
	}
	if s3.Hash() == s1.Hash() {
		t.Error("hash unchanged after a file changed")
	}
	// moving bytes between file names changes the hash too
	s4 := mustLoad(t, map[string]string{"a.cedar": designPolicies + files["b.cedar"], "b.cedar": ""})
	if s4.Hash() == s1.Hash() {
		t.Error("hash ignores file boundaries")
	}
	if mustLoad(t, nil).Hash() != mustLoad(t, map[string]string{"x.txt": "x"}).Hash() {
		t.Error("empty set hash not stable")
	}
}

func TestEngineReload(t *testing.T) {
	dir := writeDir(t, map[string]string{"a.cedar": designPolicies})
	if _, err := NewEngine(filepath.Join(dir, "nope"), known); err == nil {
		t.Fatal("NewEngine on a missing dir succeeded")
	}
	e, err := NewEngine(dir, known)
	if err != nil {
		t.Fatal(err)
	}
	first := e.Current()

	s, changed, err := e.Reload()
	if err != nil || changed || s != first || e.Current() != first {
		t.Fatalf("unchanged reload: %v %v %v", s == first, changed, err)
	}

	write := func(body string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, "b.cedar"), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("permit (principal, action, resource == Target::\"unknown-target\");")
	s, changed, err = e.Reload()
	if err == nil || changed || s != first || e.Current() != first {
		t.Fatalf("bad reload: %v %v %v", s == first, changed, err)
	}

	write(`@id("x") @approval("auto") permit (principal, action == Action::"s3:PutObject", resource == Target::"aws-prod");`)
	s, changed, err = e.Reload()
	if err != nil || !changed || s == first || e.Current() != s || s.Len() != 3 {
		t.Fatalf("good reload: %v %v", changed, err)
	}
	if d := e.Current().Decide(Request{Principal: bot, Target: prod, Pairs: pairs("s3:PutObject x"), Duration: time.Minute}); d.Outcome != "auto" {
		t.Errorf("%+v", d)
	}
	// the old set is still usable by whoever holds it
	if d := first.Decide(Request{Principal: bot, Target: prod, Pairs: pairs("s3:PutObject x"), Duration: time.Minute}); d.Outcome != "deny" {
		t.Errorf("%+v", d)
	}
}

func TestEngineConcurrentDecideAndReload(t *testing.T) {
	dir := writeDir(t, map[string]string{"a.cedar": designPolicies})
	e, err := NewEngine(dir, known)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 20 {
			body := "permit (principal, action == Action::\"s3:PutObject\", resource == Target::\"aws-prod\");"
			if i%2 == 1 {
				body = "syntax error"
			}
			_ = os.WriteFile(filepath.Join(dir, "b.cedar"), []byte(body), 0o600)
			_, _, _ = e.Reload()
		}
	}()
	req := Request{Principal: bot, Target: prod, Pairs: pairs("s3:GetObject arn:aws:s3:::logs/app/*"), Duration: time.Minute}
	for {
		select {
		case <-done:
			return
		default:
		}
		if d := e.Current().Decide(req); d.Outcome != "auto" {
			t.Fatalf("%+v", d)
		}
	}
}

// Entities are remembered per Set by identity name; a changed owner or
// group list must not reuse the remembered entity.
func TestDecideIdentityChanges(t *testing.T) {
	s := mustLoad(t, map[string]string{"a.cedar": designPolicies, "b.cedar": `forbid (principal, action, resource) when { resource.account == "999" };`})
	req := Request{Principal: bot, Target: prod, Pairs: pairs("s3:GetObject arn:aws:s3:::logs/app/*"), Duration: time.Minute}
	moved := req
	moved.Principal = Principal{Kind: "agent", Name: bot.Name, Owner: "data-team"}
	joined := req
	joined.Principal = Principal{Kind: "agent", Name: bot.Name, Owner: "data-team", Groups: []string{"sre-team"}}
	asHuman := req
	asHuman.Principal = Principal{Kind: "human", Name: bot.Name, Owner: "sre-team"} // a human's owner is not a group
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 50 {
				for _, c := range []struct {
					req  Request
					want string
				}{{req, "auto"}, {moved, "deny"}, {joined, "auto"}, {asHuman, "deny"}} {
					if d := s.Decide(c.req); d.Outcome != c.want {
						t.Errorf("%+v: %s, want %s (%s)", c.req.Principal, d.Outcome, c.want, d.Explanation)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	// A different account on the same target name is not remembered either.
	d := s.Decide(Request{Principal: bot, Target: Target{Name: "aws-prod", Account: "999"}, Pairs: req.Pairs, Duration: time.Minute})
	if d.Outcome != "deny" {
		t.Errorf("%+v", d)
	}
}

// TestDecideHugeDuration: a duration near the largest time.Duration must
// not wrap to a negative duration_seconds that passes an upper limit.
// Callers cap durations first; Decide must not depend on it.
func TestDecideHugeDuration(t *testing.T) {
	s := mustLoad(t, map[string]string{"a.cedar": designPolicies})
	for _, d := range []time.Duration{math.MaxInt64, math.MaxInt64 - time.Second + 2, 901 * time.Second} {
		dec := s.Decide(Request{Principal: bot, Target: prod, Pairs: pairs("s3:GetObject arn:aws:s3:::logs/app/*"), Duration: d, Reason: "r"})
		if dec.Outcome != OutcomeDeny {
			t.Errorf("duration %v (%d s): %s, want deny: %s", d, durationSeconds(d), dec.Outcome, dec.Explanation)
		}
	}
	for d, want := range map[time.Duration]int64{1: 1, time.Second: 1, 900*time.Second + 1: 901, math.MaxInt64: 9223372037, -1500 * time.Millisecond: -1} {
		if got := durationSeconds(d); got != want {
			t.Errorf("durationSeconds(%d) = %d, want %d", d, got, want)
		}
	}
}

// TestNamingAgentByName: a condition on principal.name singles agents out
// as Agent::"x" does: compared with a name (==, !=, either way round), a
// set of names (contains, containsAny, containsAll) or matched against a
// pattern (like). A use of principal.name that Airlock cannot resolve to
// names (compared with another attribute) counts as naming every name.
// A policy whose principal cannot be an agent asking for access (one for
// Action::"approve" alone, whose principal is the approver, or for Human
// principals) names no agent, whatever it says of principal.name.
// Before, NamingAgent saw only Agent::"x", and a person could add an agent
// that a principal.name policy was written for and be served by it.
func TestNamingAgentByName(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "a.cedar"), []byte(`
@id("eq")
permit (principal is Agent, action == Action::"s3:GetObject", resource == Target::"aws-prod") when { principal.name == "release-bot" };
@id("eq-reversed")
permit (principal, action == Action::"s3:GetObject", resource) when { "deploy-bot" == principal["name"] };
@id("not-eq")
forbid (principal, action, resource) when { principal.name != "canary-bot" && context.duration_seconds > 60 };
@id("like")
permit (principal, action == Action::"s3:GetObject", resource) when { principal.name like "ci-*" };
@id("contains")
permit (principal, action == Action::"s3:GetObject", resource) when { ["a-bot", "b-bot"].contains(principal.name) };
@id("contains-any")
permit (principal, action == Action::"s3:GetObject", resource) when { [principal.name].containsAny(["c-bot"]) };
@id("groups-only")
permit (principal in Group::"sre-team", action == Action::"s3:GetObject", resource) when { principal has name };
@id("approvers")
permit (principal in Group::"sre-leads", action == Action::"approve", resource) when { principal.name != context.requester && principal.name != "other" };
@id("people")
permit (principal is Human, action == Action::"s3:GetObject", resource) when { principal.name == context.reason || principal.name == "other" };
`), 0o600); err != nil {
		t.Fatal(err)
	}
	set, err := Load(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string][]string{
		"release-bot": {"eq"}, "deploy-bot": {"eq-reversed"}, "canary-bot": {"not-eq"},
		"ci-runner": {"like"}, "a-bot": {"contains"}, "b-bot": {"contains"}, "c-bot": {"contains-any"},
		"other": nil, "xci-runner": nil,
	} {
		if got := set.NamingAgent(name); !slices.Equal(got, want) {
			t.Errorf("NamingAgent(%q) = %v, want %v", name, got, want)
		}
	}

	if err := os.WriteFile(filepath.Join(dir, "b.cedar"), []byte(`
@id("unresolved")
permit (principal, action == Action::"s3:GetObject", resource) when { principal.name == context.reason };
`), 0o600); err != nil {
		t.Fatal(err)
	}
	if set, err = Load(dir, nil); err != nil {
		t.Fatal(err)
	}
	if got := set.NamingAgent("other"); !slices.Equal(got, []string{"unresolved"}) {
		t.Errorf("NamingAgent(\"other\") with principal.name compared with context.reason = %v, want [unresolved]", got)
	}
}

// TestNamingAgent: the policies that name an agent, in scope or condition,
// and none for a name they do not.
func TestNamingAgent(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "a.cedar"), []byte(`
@id("one")
permit (principal == Agent::"release-bot", action == Action::"s3:GetObject", resource == Target::"aws-prod");
@id("two")
forbid (principal, action, resource) when { principal in [Agent::"release-bot", Agent::"canary-bot"] };
@id("three")
permit (principal in Group::"sre-team", action == Action::"s3:GetObject", resource == Target::"aws-prod");
`), 0o600); err != nil {
		t.Fatal(err)
	}
	set, err := Load(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string][]string{"release-bot": {"one", "two"}, "canary-bot": {"two"}, "sre-team": nil, "other": nil} {
		if got := set.NamingAgent(name); !slices.Equal(got, want) {
			t.Errorf("NamingAgent(%q) = %v, want %v", name, got, want)
		}
	}
}
