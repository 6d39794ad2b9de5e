package awsgw

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestServiceAWSCLI drives every service through the gateway with the
// Debian AWS CLI (v2), given only the grant's credentials and the
// gateway's address; the upstreams are awsfake's verifying fakes. The
// v1 CLI, which reads AWS_ENDPOINT_URL as `airlock exec` sets it, runs
// the README's log-triage command.
func TestServiceAWSCLI(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: the AWS CLI takes seconds per command")
	}
	e := newSvcEnv(t)
	arn := svcARN
	g := e.grant(
		"logs:FilterLogEvents "+arn("logs", "log-group:/app/api"),
		"ssm:GetParameter "+arn("ssm", "parameter/app/db/*"),
		"lambda:InvokeFunction "+arn("lambda", "function:triage-helper"),
		"ec2:DescribeInstances *",
		"sts:GetCallerIdentity *",
		"sqs:SendMessage "+arn("sqs", "jobs"),
		"dynamodb:GetItem "+arn("dynamodb", "table/orders"),
	)
	for _, cli := range awsCLIs {
		t.Run(cli.name, func(t *testing.T) {
			path := cli.find(t)
			run := func(args ...string) (string, string, error) {
				return runCLI(t, path, cli.envEndpoint, e.srv.URL, g, args...)
			}
			out, errOut, err := run("logs", "filter-log-events", "--log-group-name", "/app/api", "--filter-pattern", "ERROR")
			if err != nil || !strings.Contains(out, "payment timeout") {
				t.Fatalf("logs filter-log-events: %v\n%s%s", err, out, errOut)
			}
			_, errOut, err = run("logs", "filter-log-events", "--log-group-name", "/app/payments")
			if err == nil || !strings.Contains(errOut, "AccessDeniedException") || !strings.Contains(errOut, "log-group:/app/payments") {
				t.Fatalf("another log group: %v\n%s", err, errOut)
			}
			if cli.short {
				return
			}
			out, errOut, err = run("sts", "get-caller-identity")
			var id struct{ Account, Arn, UserId string }
			if err != nil || json.Unmarshal([]byte(out), &id) != nil || id.UserId != g.ID || id.Account != testAccount {
				t.Fatalf("sts get-caller-identity: %v\n%s%s", err, out, errOut)
			}
			out, errOut, err = run("ssm", "get-parameter", "--name", "/app/db/url")
			if err != nil || !strings.Contains(out, "value-of-/app/db/url") {
				t.Fatalf("ssm get-parameter: %v\n%s%s", err, out, errOut)
			}
			outFile := filepath.Join(t.TempDir(), "out.json")
			out, errOut, err = run("lambda", "invoke", "--function-name", "triage-helper", "--cli-binary-format", "raw-in-base64-out", "--payload", `{"order":42}`, outFile)
			if b, _ := os.ReadFile(outFile); err != nil || !strings.Contains(string(b), `"received":12`) {
				t.Fatalf("lambda invoke: %v\n%s%s%s", err, out, errOut, b)
			}
			out, errOut, err = run("ec2", "describe-instances")
			if err != nil || !strings.Contains(out, "i-1234567890abcdef0") {
				t.Fatalf("ec2 describe-instances: %v\n%s%s", err, out, errOut)
			}
			_, errOut, err = run("ec2", "describe-regions")
			if err == nil || !strings.Contains(errOut, "UnauthorizedOperation") {
				t.Fatalf("ec2 describe-regions: %v\n%s", err, errOut)
			}
			out, errOut, err = run("sqs", "send-message", "--queue-url", "https://sqs."+testRegion+".amazonaws.com/"+testAccount+"/jobs", "--message-body", "reindex")
			if err != nil || !strings.Contains(out, "MessageId") {
				t.Fatalf("sqs send-message: %v\n%s%s", err, out, errOut)
			}
			out, errOut, err = run("dynamodb", "get-item", "--table-name", "orders", "--key", `{"id":{"S":"42"}}`)
			if err != nil || !strings.Contains(out, "shipped") {
				t.Fatalf("dynamodb get-item: %v\n%s%s", err, out, errOut)
			}
			_, errOut, err = run("dynamodb", "get-item", "--table-name", "customers", "--key", `{"id":{"S":"42"}}`)
			if err == nil || !strings.Contains(errOut, "AccessDeniedException") {
				t.Fatalf("dynamodb get-item on another table: %v\n%s", err, errOut)
			}
		})
	}
}

// TestServiceUnsignedAWSCLI: the CLIs send STS AssumeRoleWithWebIdentity
// unsigned; the gateway's refusal reaches them as STS's own error for a
// call with no credentials, with its code and Airlock's message (before,
// in S3's shape, they printed "Unknown"; then S3's AccessDenied).
func TestServiceUnsignedAWSCLI(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: the AWS CLI takes seconds per command")
	}
	e := newSvcEnv(t)
	g := e.grant("sts:GetCallerIdentity *")
	for _, cli := range awsCLIs {
		t.Run(cli.name, func(t *testing.T) {
			_, errOut, err := runCLI(t, cli.find(t), cli.envEndpoint, e.srv.URL, g, "sts", "assume-role-with-web-identity",
				"--role-arn", "arn:aws:iam::"+testAccount+":role/agent", "--role-session-name", "agent", "--web-identity-token", "a-token")
			if err == nil || !strings.Contains(errOut, "(MissingAuthenticationToken)") || !strings.Contains(errOut, "Anonymous access is not allowed") {
				t.Fatalf("unsigned STS call: %v\n%s", err, errOut)
			}
		})
	}
}

// TestServiceEC2AuthFailureAWSCLI: a call to EC2 signed with the wrong
// secret reaches the CLIs as EC2's own AuthFailure (not the Query
// services' SignatureDoesNotMatch), with Airlock's message, and is not
// forwarded.
func TestServiceEC2AuthFailureAWSCLI(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: the AWS CLI takes seconds per command")
	}
	e := newSvcEnv(t)
	g := *e.grant("ec2:DescribeInstances *")
	g.Secret = "not-the-secret"
	for _, cli := range awsCLIs {
		t.Run(cli.name, func(t *testing.T) {
			_, errOut, err := runCLI(t, cli.find(t), cli.envEndpoint, e.srv.URL, &g, "ec2", "describe-instances")
			if err == nil || !strings.Contains(errOut, "(AuthFailure)") || !strings.Contains(errOut, "signature") {
				t.Fatalf("ec2 describe-instances with the wrong secret: %v\n%s", err, errOut)
			}
		})
	}
	e.upstreamSaw(t, "ec2", 0)
}
