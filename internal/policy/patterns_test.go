package policy

import (
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/cedar-policy/cedar-go"
	"github.com/cedar-policy/cedar-go/types"
)

// TestResourceTestsCoverThePattern: a test on context.resource that
// restricts (a forbid's when, a permit's unless, a !, !=) holds when it
// holds for any resource the requested pattern covers, so that asking for
// a broader prefix does not step around it.
func TestResourceTestsCoverThePattern(t *testing.T) {
	s := mustLoad(t, map[string]string{"a.cedar": `
@id("logs") @approval("auto")
permit (principal in Group::"sre-team", action == Action::"s3:GetObject", resource == Target::"aws-prod")
when { context.resource like "arn:aws:s3:::logs/*" };

@id("no-secret-logs")
forbid (principal, action, resource) when { context.resource like "arn:aws:s3:::logs/secret/*" };

@id("no-key")
forbid (principal, action, resource) when { "arn:aws:s3:::logs/keys/root.pem" == context.resource };

@id("scratch-but-private") @approval("auto")
permit (principal in Group::"sre-team", action == Action::"s3:PutObject", resource == Target::"aws-prod")
when { context.resource like "arn:aws:s3:::scratch/*" && !(context.resource like "arn:aws:s3:::scratch/private/*") };

@id("tmp-but-lock") @approval("auto")
permit (principal in Group::"sre-team", action == Action::"s3:DeleteObject", resource == Target::"aws-prod")
when { context.resource like "arn:aws:s3:::tmp/*" && context.resource != "arn:aws:s3:::tmp/lock" };

@id("reports-unless-hr") @approval("auto")
permit (principal in Group::"sre-team", action == Action::"s3:ListBucket", resource == Target::"aws-prod")
when { context.resource like "arn:aws:s3:::reports/*" } unless { context.resource like "arn:aws:s3:::reports/hr/*" };

@id("leads") permit (principal in Group::"sre-leads", action == Action::"approve", resource);
@id("no-approving-secret-logs")
forbid (principal, action == Action::"approve", resource) when { context.resource like "arn:aws:s3:::logs/secret/*" };
`})
	for _, tc := range []struct {
		stmt, want string
	}{
		{"s3:GetObject arn:aws:s3:::logs/app/*", OutcomeAuto},
		{"s3:GetObject arn:aws:s3:::logs/*", OutcomeDeny},        // covers logs/secret/ and logs/keys/root.pem
		{"s3:GetObject arn:aws:s3:::logs/s*", OutcomeDeny},       // covers logs/secret/
		{"s3:GetObject arn:aws:s3:::logs/secret/a", OutcomeDeny}, // plainly inside
		{"s3:GetObject arn:aws:s3:::logs/keys/*", OutcomeDeny},   // covers the key
		{"s3:GetObject arn:aws:s3:::logs/keys/root.pem", OutcomeDeny},
		{"s3:GetObject arn:aws:s3:::logs/keys/other.pem", OutcomeAuto},
		{"s3:GetObject arn:aws:s3:::logs/secretive/*", OutcomeAuto},
		{"s3:PutObject arn:aws:s3:::scratch/*", OutcomeDeny}, // covers scratch/private/
		{"s3:PutObject arn:aws:s3:::scratch/p*", OutcomeDeny},
		{"s3:PutObject arn:aws:s3:::scratch/public/*", OutcomeAuto},
		{"s3:DeleteObject arn:aws:s3:::tmp/*", OutcomeDeny}, // covers tmp/lock
		{"s3:DeleteObject arn:aws:s3:::tmp/l*", OutcomeDeny},
		{"s3:DeleteObject arn:aws:s3:::tmp/x/*", OutcomeAuto},
		{"s3:DeleteObject arn:aws:s3:::tmp/lock2", OutcomeAuto},
		{"s3:ListBucket arn:aws:s3:::reports/*", OutcomeDeny}, // covers reports/hr/
		{"s3:ListBucket arn:aws:s3:::reports/h*", OutcomeDeny},
		{"s3:ListBucket arn:aws:s3:::reports/ops/*", OutcomeAuto},
	} {
		d := s.Decide(Request{Principal: bot, Target: prod, Pairs: pairs(tc.stmt), Duration: time.Minute, Reason: "r"})
		if d.Outcome != tc.want {
			t.Errorf("%s: %s, want %s: %s", tc.stmt, d.Outcome, tc.want, d.Explanation)
		}
	}
	// Approve checks read context.resource the same way.
	if ok, _, _ := s.MayApprove(alice, "log-triage-bot", prod, pairs("s3:GetObject arn:aws:s3:::logs/app/*"), time.Minute, "r"); !ok {
		t.Error("alice may not approve logs/app/*")
	}
	if ok, _, why := s.MayApprove(alice, "log-triage-bot", prod, pairs("s3:GetObject arn:aws:s3:::logs/*"), time.Minute, "r"); ok || !strings.Contains(why, "no-approving-secret-logs") {
		t.Errorf("alice may approve logs/*, which covers logs/secret/: %v %q", ok, why)
	}
}

// TestLoadRefusesUndecidableResourceTests: a test on context.resource
// whose sense cannot be told could be stepped around by a broader prefix
// whichever way it is read, so Load refuses it.
func TestLoadRefusesUndecidableResourceTests(t *testing.T) {
	for _, body := range []string{
		`forbid (principal, action, resource) when { if context.resource like "arn:aws:s3:::a/*" then true else false };`,
		`forbid (principal, action, resource) when { (context.resource like "arn:aws:s3:::a/*") == true };`,
		`forbid (principal, action, resource) when { ["arn:aws:s3:::a/x"].contains(context.resource) };`,
		`forbid (principal, action, resource) when { context.resource == principal.name };`,
		`permit (principal, action, resource) when { {r: context.resource}.r like "arn:aws:s3:::a/*" };`,
	} {
		_, err := Load(writeDir(t, map[string]string{"a.cedar": body}), known)
		if err == nil || !strings.Contains(err.Error(), "context.resource") {
			t.Errorf("%s: %v", body, err)
		}
	}
	// What permits ordinarily do still loads, untouched.
	s := mustLoad(t, map[string]string{"a.cedar": designPolicies + `
permit (principal, action, resource) when { context.resource == "arn:aws:s3:::a/x" || (context.resource like "arn:aws:s3:::b/*" && context has resource) };`})
	if len(s.tests) != 0 {
		t.Errorf("%d tests rewritten in permits that only allow", len(s.tests))
	}
}

// TestOverlapsAgainstCedar checks resourceTest.overlaps against Cedar's
// own matcher on every short completion of a prefix: a prefix overlaps a
// like pattern iff some string that starts with it matches.
func TestOverlapsAgainstCedar(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 7))
	alphabet := []string{"a", "b", "/"}
	var completions []string
	var grow func(string)
	grow = func(s string) {
		completions = append(completions, s)
		if len(s) < 5 {
			for _, c := range alphabet {
				grow(s + c)
			}
		}
	}
	grow("")
	for range 3000 {
		var comps []any
		for range r.IntN(6) {
			if r.IntN(3) == 0 {
				comps = append(comps, types.Wildcard{})
			} else {
				comps = append(comps, pick(r, alphabet))
			}
		}
		pat := types.NewPattern(comps...)
		toks, err := patternTokens(pat)
		if err != nil {
			t.Fatal(err)
		}
		test := newLikeTest(toks)
		var prefix strings.Builder
		for range r.IntN(5) {
			prefix.WriteString(pick(r, alphabet))
		}
		p := prefix.String()
		want := false
		for _, c := range completions {
			want = want || pat.Match(cedar.String(p+c))
		}
		if got := test.overlaps(p + "*"); got != want {
			t.Fatalf("pattern %s, prefix %q: overlaps %v, want %v", pat.MarshalCedar(), p, got, want)
		}
		if got, want := test.overlaps(p), pat.Match(cedar.String(p)); got != want {
			t.Fatalf("pattern %s, exact %q: overlaps %v, want %v", pat.MarshalCedar(), p, got, want)
		}
	}
}

// TestRestrictingTestsReachContainers: a restricting test on a resource
// also holds for the requests that read its data under another ARN: a
// DynamoDB index or stream reads its table's items, a log group returns its
// streams' events (and a stream is part of its group), a Lambda version runs
// its function, an S3 object is in its bucket. Permits are unchanged: a
// permit on a table does not grant its indexes.
func TestRestrictingTestsReachContainers(t *testing.T) {
	const ddb = "arn:aws:dynamodb:us-east-1:111122223333:"
	const logs = "arn:aws:logs:us-east-1:111122223333:"
	const lambda = "arn:aws:lambda:us-east-1:111122223333:"
	s := mustLoad(t, map[string]string{"a.cedar": `
@id("reads") @approval("auto")
permit (principal in Group::"sre-team", action in [Action::"dynamodb:Query", Action::"logs:FilterLogEvents", Action::"logs:GetLogEvents", Action::"lambda:InvokeFunction", Action::"s3:GetObject", Action::"ssm:GetParametersByPath", Action::"ssm:GetParameter", Action::"secretsmanager:GetSecretValue"], resource == Target::"aws-prod")
when { context.resource like "arn:aws:dynamodb:*" || context.resource like "arn:aws:logs:*" || context.resource like "arn:aws:lambda:*" || context.resource like "arn:aws:s3:::*" || context.resource like "arn:aws:ssm:*" || context.resource like "arn:aws:secretsmanager:*" };

@id("exact-orders") @approval("auto")
permit (principal in Group::"sre-team", action == Action::"dynamodb:Scan", resource == Target::"aws-prod")
when { context.resource == "` + ddb + `table/orders" };

@id("no-payroll")
forbid (principal, action, resource) when { context.resource == "` + ddb + `table/payroll" };

@id("no-hr-like")
forbid (principal, action, resource) when { context.resource like "` + ddb + `table/hr" };

@id("no-secret-stream")
forbid (principal, action, resource) when { context.resource == "` + logs + `log-group:app:log-stream:secret" };

@id("no-audit-streams")
forbid (principal, action, resource) when { context.resource like "` + logs + `log-group:audit:log-stream:*" };

@id("no-vault-group")
forbid (principal, action, resource) when { context.resource == "` + logs + `log-group:vault" };

@id("no-pay-fn")
forbid (principal, action, resource) when { context.resource == "` + lambda + `function:pay" };

@id("no-prod-path")
forbid (principal, action, resource) when { context.resource == "arn:aws:ssm:us-east-1:111122223333:parameter/prod" };

@id("no-prod-db-secret")
forbid (principal, action, resource) when { context.resource == "arn:aws:secretsmanager:us-east-1:111122223333:secret:prod/db" };

@id("no-vault-bucket")
forbid (principal, action, resource) when { context.resource == "arn:aws:s3:::vault" };

@id("reads-unless-keys") @approval("auto")
permit (principal in Group::"sre-team", action == Action::"dynamodb:GetItem", resource == Target::"aws-prod")
when { context.resource like "arn:aws:dynamodb:*" } unless { context.resource == "` + ddb + `table/keys" };

@id("leads") permit (principal in Group::"sre-leads", action == Action::"approve", resource);
@id("no-approving-orders")
forbid (principal, action == Action::"approve", resource) when { context.resource == "` + ddb + `table/orders" };
`})
	for _, tc := range []struct {
		stmt, want string
	}{
		// DynamoDB: an index or stream is within its table.
		{"dynamodb:Query " + ddb + "table/payroll", OutcomeDeny},
		{"dynamodb:Query " + ddb + "table/payroll/index/byname", OutcomeDeny},
		{"dynamodb:Query " + ddb + "table/payroll/index/*", OutcomeDeny},
		{"dynamodb:Query " + ddb + "table/payroll/index/by*", OutcomeDeny},
		{"dynamodb:Query " + ddb + "table/payroll/stream/2026-12-05T00:00:00.000", OutcomeDeny},
		{"dynamodb:Query " + ddb + "table/hr/index/byname", OutcomeDeny},
		{"dynamodb:GetItem " + ddb + "table/keys/index/i", OutcomeDeny}, // a permit's unless
		{"dynamodb:GetItem " + ddb + "table/keyring/index/i", OutcomeAuto},
		{"dynamodb:Query " + ddb + "table/payrollx/index/byname", OutcomeAuto}, // another table
		{"dynamodb:Query " + ddb + "table/orders/index/byname", OutcomeAuto},
		// Permits are as they were: an exact table is not its index.
		{"dynamodb:Scan " + ddb + "table/orders", OutcomeAuto},
		{"dynamodb:Scan " + ddb + "table/orders/index/byname", OutcomeDeny},
		// CloudWatch Logs: a group (or group:*) covers its streams.
		{"logs:FilterLogEvents " + logs + "log-group:app", OutcomeDeny},
		{"logs:FilterLogEvents " + logs + "log-group:app:*", OutcomeDeny},
		{"logs:GetLogEvents " + logs + "log-group:app:log-stream:*", OutcomeDeny},
		{"logs:GetLogEvents " + logs + "log-group:app:log-stream:secret", OutcomeDeny},
		{"logs:GetLogEvents " + logs + "log-group:app:log-stream:public", OutcomeAuto},
		{"logs:FilterLogEvents " + logs + "log-group:audit", OutcomeDeny},
		{"logs:FilterLogEvents " + logs + "log-group:vault", OutcomeDeny},
		{"logs:GetLogEvents " + logs + "log-group:vault:log-stream:s", OutcomeDeny},
		{"logs:FilterLogEvents " + logs + "log-group:vault:*", OutcomeDeny},
		{"logs:FilterLogEvents " + logs + "log-group:vaults", OutcomeAuto},
		{"logs:FilterLogEvents " + logs + "log-group:other", OutcomeAuto},
		{"logs:FilterLogEvents " + logs + "log-group:app2", OutcomeAuto},
		// Lambda: a version or alias runs its function.
		{"lambda:InvokeFunction " + lambda + "function:pay", OutcomeDeny},
		{"lambda:InvokeFunction " + lambda + "function:pay:prod", OutcomeDeny},
		{"lambda:InvokeFunction " + lambda + "function:pay:*", OutcomeDeny},
		{"lambda:InvokeFunction " + lambda + "function:payroll:prod", OutcomeAuto},
		// SSM: a parameter is within its paths, as IAM reads them.
		{"ssm:GetParametersByPath arn:aws:ssm:us-east-1:111122223333:parameter/prod/*", OutcomeDeny},
		{"ssm:GetParameter arn:aws:ssm:us-east-1:111122223333:parameter/prod/db/password", OutcomeDeny},
		{"ssm:GetParameter arn:aws:ssm:us-east-1:111122223333:parameter/production/db", OutcomeAuto},
		{"ssm:GetParametersByPath arn:aws:ssm:us-east-1:111122223333:parameter/dev/*", OutcomeAuto},
		// Secrets Manager: a full ARN is its secret's name.
		{"secretsmanager:GetSecretValue arn:aws:secretsmanager:us-east-1:111122223333:secret:prod/db-AbCdEf", OutcomeDeny},
		{"secretsmanager:GetSecretValue arn:aws:secretsmanager:us-east-1:111122223333:secret:prod/db-*", OutcomeDeny},
		{"secretsmanager:GetSecretValue arn:aws:secretsmanager:us-east-1:111122223333:secret:prod/dbx-AbCdEf", OutcomeAuto},
		// S3: an object is in its bucket.
		{"s3:GetObject arn:aws:s3:::vault/key", OutcomeDeny},
		{"s3:GetObject arn:aws:s3:::vault/*", OutcomeDeny},
		{"s3:GetObject arn:aws:s3:::vaults/key", OutcomeAuto},
	} {
		d := s.Decide(Request{Principal: bot, Target: prod, Pairs: pairs(tc.stmt), Duration: time.Minute, Reason: "r"})
		if d.Outcome != tc.want {
			t.Errorf("%s: %s, want %s: %s", tc.stmt, d.Outcome, tc.want, d.Explanation)
		}
	}
	// Approve checks read the containers the same way.
	if ok, _, why := s.MayApprove(alice, "log-triage-bot", prod, pairs("dynamodb:Query "+ddb+"table/orders/index/byname"), time.Minute, "r"); ok || !strings.Contains(why, "no-approving-orders") {
		t.Errorf("alice may approve a Query on an index of orders: %v %q", ok, why)
	}
	if ok, _, why := s.MayApprove(alice, "log-triage-bot", prod, pairs("dynamodb:Query "+ddb+"table/ordersx/index/byname"), time.Minute, "r"); !ok {
		t.Errorf("alice may not approve a Query on another table's index: %q", why)
	}
}
