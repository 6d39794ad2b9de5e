package config

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/airlock-dev/airlock/internal/awsops"
)

func TestEndpoints(t *testing.T) {
	inConfigDir(t)
	ok := `data_dir: d
policies: policies
targets:
  - name: a
    kind: aws
    account: "111122223333"
    endpoints: { dynamodb: "http://127.0.0.1:8000", logs: "https://vpce-1.logs.us-east-1.vpce.amazonaws.com/" }
    credentials: {role_arn: "arn:aws:iam::111122223333:role/r"}
`
	if err := os.WriteFile("airlock.yaml", []byte(ok), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := Load("airlock.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Targets[0].Endpoints; len(got) != 2 || got["dynamodb"] != "http://127.0.0.1:8000" {
		t.Fatalf("endpoints %v", got)
	}

	bad := `data_dir: d
policies: policies
targets:
  - name: a
    kind: aws
    account: "1"
    endpoints:
      dynamodb: http://db.internal:8000
      Logs: https://x
      s3: https://s3.example
      sqs: ftp://127.0.0.1
      ssm: https://u:p@127.0.0.1
      sts: https://127.0.0.1/path
    credentials: {role_arn: "arn:aws:iam::111122223333:role/r"}
  - name: p
    kind: postgres
    account: dev
    upstream: postgres://u@h/db?sslmode=verify-full
    endpoints: { logs: https://x }
`
	if err := os.WriteFile("airlock.yaml", []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = Load("airlock.yaml")
	var errs *Errors
	if !errors.As(err, &errs) {
		t.Fatalf("Load: %v", err)
	}
	checkErrors(t, errs, []loc{
		{"airlock.yaml:8:17: targets[0].endpoints.dynamodb", "plain http:// is allowed only to a loopback address"},
		{"airlock.yaml:9:13: targets[0].endpoints.Logs", "not an AWS service signing name"},
		{"airlock.yaml:10:11: targets[0].endpoints.s3", "target's endpoint key"},
		{"airlock.yaml:11:12: targets[0].endpoints.sqs", "must be an https:// URL"},
		{"airlock.yaml:12:12: targets[0].endpoints.ssm", "must not contain credentials"},
		{"airlock.yaml:13:12: targets[0].endpoints.sts", "must be a base URL"},
		{"airlock.yaml:19:16: targets[1].endpoints", "only aws targets have endpoints"},
	})
}

// TestEndpointsOnlyServedServices: a service name the gateway does not map
// was accepted and did nothing, since calls to that service are refused;
// a typo ("dynamodbb") thus left DynamoDB's calls going to AWS's own
// endpoint instead of the VPC endpoint or emulator meant. It is now a
// problem naming the services served, with a suggestion.
func TestEndpointsOnlyServedServices(t *testing.T) {
	inConfigDir(t)
	// withEndpoints is a file whose one aws target has these endpoints:
	// lines.
	withEndpoints := func(lines string) []byte {
		return []byte("data_dir: d\npolicies: policies\ntargets:\n  - name: a\n    kind: aws\n    account: \"1\"\n    endpoints:\n" +
			lines + "    credentials: {role_arn: \"arn:aws:iam::111122223333:role/r\"}\n")
	}
	_, err := Parse("airlock.yaml", withEndpoints(
		"      dynamodb: http://127.0.0.1:8000\n      dynamodbb: http://127.0.0.1:8000\n      codecommit: https://git-codecommit.example\n"))
	var errs *Errors
	if !errors.As(err, &errs) {
		t.Fatalf("Parse: %v", err)
	}
	checkErrors(t, errs, []loc{
		{"airlock.yaml:9:18: targets[0].endpoints.dynamodbb", `"dynamodbb" is not a service the AWS gateway serves (did you mean "dynamodb"?); it serves`},
		{"airlock.yaml:10:19: targets[0].endpoints.codecommit", `"codecommit" is not a service the AWS gateway serves; it serves dynamodb, ec2,`},
	})
	// Every service the gateway maps is accepted.
	var b strings.Builder
	for _, svc := range awsops.Services() {
		fmt.Fprintf(&b, "      %s: http://127.0.0.1:8000\n", svc)
	}
	if _, err := Parse("airlock.yaml", withEndpoints(b.String())); err != nil {
		t.Errorf("the served services: %v", err)
	}
}

// TestS3EndpointPlainHTTP: an aws target's endpoint (S3 or an S3-compatible
// server) receives the gateway's calls signed with the target's own
// credentials and every object's bytes. It loaded as plain http:// to any
// host; now, as endpoints and sts_endpoint, only to a loopback address.
func TestS3EndpointPlainHTTP(t *testing.T) {
	const target = "data_dir: d\npolicies: policies\ntargets:\n  - name: s3\n    kind: aws\n    account: \"111122223333\"\n" +
		"    credentials: {role_arn: \"arn:aws:iam::111122223333:role/airlock-gateway\"}\n    endpoint: "
	for _, ep := range []string{"http://s3.internal:7070", "http://10.0.0.5:9000", "HTTP://s3.example.com", "http://localhost.example.com"} {
		inConfigDir(t)
		_, err := Parse("airlock.yaml", []byte(target+ep+"\n"))
		checkErrors(t, asErrors(t, err), []loc{{"airlock.yaml:8:15: targets[0].endpoint", "plain http:// is allowed only to a loopback address; use https://"}})
	}
	for _, ep := range []string{"https://s3.internal:7070", "http://127.0.0.1:7070", "http://localhost:7070", "http://[::1]:7070"} {
		inConfigDir(t)
		if _, err := Parse("airlock.yaml", []byte(target+ep+"\n")); err != nil {
			t.Errorf("endpoint %s: %v", ep, err)
		}
	}
}

// asErrors is err as configuration problems, failing the test otherwise.
func asErrors(t *testing.T, err error) *Errors {
	t.Helper()
	var errs *Errors
	if !errors.As(err, &errs) {
		t.Fatalf("want configuration problems, got %v", err)
	}
	return errs
}
