package awsgw

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/ssm"

	"github.com/airlock-dev/airlock/internal/policy"
	"github.com/airlock-dev/airlock/internal/scope"
)

// A listing names every key under its prefix, so only a statement whose
// pattern covers all of them may allow it. An exact "s3:ListBucket
// arn:aws:s3:::logs/" was matched as the bare prefix "" and listed the
// whole bucket, while a policy's forbid on part of the bucket saw an exact
// resource that overlapped nothing and let the request through on an
// auto-approving permit. Against versitygw, with the request decided by the
// real policy engine first.
func TestListingNeedsPrefixPattern(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "p.cedar"), []byte(`
@id("list-logs") @approval("auto")
permit (principal in Group::"sre-team", action == Action::"s3:ListBucket", resource == Target::"aws-prod")
when { context.resource like "arn:aws:s3:::logs/*" };
@id("no-secrets")
forbid (principal, action, resource) when { context.resource like "arn:aws:s3:::logs/secret*" };
`), 0o600); err != nil {
		t.Fatal(err)
	}
	set, err := policy.Load(dir, func(string) bool { return true })
	if err != nil {
		t.Fatal(err)
	}
	decide := func(stmt string) string {
		sc, err := scope.Parse([]string{stmt})
		if err != nil {
			t.Fatal(err)
		}
		return set.Decide(policy.Request{Principal: policy.Principal{Kind: "agent", Name: "log-triage-bot", Owner: "sre-team"},
			Target: policy.Target{Name: "aws-prod"}, Pairs: sc.Pairs(), Duration: time.Minute}).Outcome
	}
	if got := decide("s3:ListBucket arn:aws:s3:::logs/*"); got != policy.OutcomeDeny {
		t.Fatalf("listing logs/* was decided %q, want the forbid's deny", got)
	}

	e := newVersityEnv(t) // holds logs/secret.txt
	ctx := context.Background()
	for _, tc := range []struct {
		stmt, prefix   string
		versions, auto bool
	}{
		{stmt: "s3:ListBucket arn:aws:s3:::logs/", auto: true},
		{stmt: "s3:ListBucket arn:aws:s3:::logs/s", prefix: "s", auto: true},
		{stmt: "s3:ListBucketVersions arn:aws:s3:::logs/", versions: true},
	} {
		// The policy grants the exact ListBucket statements without a
		// person: the gateway must then not read them as the prefix.
		if got := decide(tc.stmt); tc.auto && got != policy.OutcomeAuto {
			t.Fatalf("%s decided %q; the test expects the policy to auto-grant it", tc.stmt, got)
		}
		cl := e.client(e.grant(tc.stmt))
		var keys []string
		var err error
		if tc.versions {
			var out *s3.ListObjectVersionsOutput
			if out, err = cl.ListObjectVersions(ctx, &s3.ListObjectVersionsInput{Bucket: aws.String("logs"), Prefix: aws.String(tc.prefix)}); err == nil {
				for _, v := range out.Versions {
					keys = append(keys, aws.ToString(v.Key))
				}
			}
		} else {
			var out *s3.ListObjectsV2Output
			if out, err = cl.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String("logs"), Prefix: aws.String(tc.prefix)}); err == nil {
				for _, o := range out.Contents {
					keys = append(keys, aws.ToString(o.Key))
				}
			}
		}
		if err == nil || !strings.HasPrefix(errCode(err), "AccessDenied") {
			t.Errorf("grant %q listing prefix %q: got keys %q, err %v; want AccessDenied", tc.stmt, tc.prefix, keys, errCode(err))
		}
	}

	// A pattern that covers the listing still lists, and the whole bucket
	// is listed by a grant on every key in it.
	for _, tc := range []struct{ stmt, prefix string }{
		{"s3:ListBucket arn:aws:s3:::logs/*", ""},
		{"s3:ListBucket arn:aws:s3:::logs/s*", "s"},
		{"s3:ListBucket arn:aws:s3:::logs/*", "secret"},
	} {
		out, err := e.client(e.grant(tc.stmt)).ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String("logs"), Prefix: aws.String(tc.prefix)})
		if err != nil || len(out.Contents) != 1 || aws.ToString(out.Contents[0].Key) != "secret.txt" {
			t.Errorf("grant %q listing prefix %q: %v, want secret.txt", tc.stmt, tc.prefix, errCode(err))
		}
	}
}

// GetParametersByPath reads every parameter under its path, so it too
// needs a statement covering the whole path. The statement naming
// "parameter/app/" exactly was matched by the check's bare
// "parameter/app/" and read /app/secret/*, past a forbid on it that saw
// an exact resource overlapping nothing. SSM cannot run here: its
// upstream is the SigV4-verifying fake.
func TestParametersByPathNeedsPattern(t *testing.T) {
	const arnBase = "arn:aws:ssm:" + testRegion + ":" + testAccount + ":"
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "p.cedar"), []byte(`
@id("read-app") @approval("auto")
permit (principal in Group::"sre-team", action == Action::"ssm:GetParametersByPath", resource == Target::"aws-prod")
when { context.resource like "`+arnBase+`parameter/app/*" };
@id("no-secrets")
forbid (principal, action, resource) when { context.resource like "`+arnBase+`parameter/app/secret/*" };
`), 0o600); err != nil {
		t.Fatal(err)
	}
	set, err := policy.Load(dir, func(string) bool { return true })
	if err != nil {
		t.Fatal(err)
	}
	exact := "ssm:GetParametersByPath " + arnBase + "parameter/app/"
	sc, err := scope.Parse([]string{exact})
	if err != nil {
		t.Fatal(err)
	}
	if d := set.Decide(policy.Request{Principal: policy.Principal{Kind: "agent", Name: "log-triage-bot", Owner: "sre-team"},
		Target: policy.Target{Name: "aws-prod"}, Pairs: sc.Pairs(), Duration: time.Minute}); d.Outcome != policy.OutcomeAuto {
		t.Fatalf("%s decided %q; the test expects the policy to auto-grant it", exact, d.Outcome)
	}

	e := newSvcEnv(t)
	ctx := context.Background()
	in := &ssm.GetParametersByPathInput{Path: aws.String("/app"), Recursive: aws.Bool(true)}
	_, err = ssm.NewFromConfig(e.cfg(e.grant(exact))).GetParametersByPath(ctx, in)
	if apiCode(err) != "AccessDeniedException" {
		t.Fatalf("GetParametersByPath /app under %q: err %v, want AccessDeniedException", exact, apiCode(err))
	}
	e.upstreamSaw(t, "ssm", 0)
	out, err := ssm.NewFromConfig(e.cfg(e.grant("ssm:GetParametersByPath "+arnBase+"parameter/app/*"))).GetParametersByPath(ctx, in)
	if err != nil || len(out.Parameters) == 0 {
		t.Fatalf("GetParametersByPath /app under parameter/app/*: %v", apiCode(err))
	}
	e.upstreamSaw(t, "ssm", 1)
}
