package awsops

import (
	"slices"
	"testing"
)

// TestSecretReferenceNeedsSecret: GetParameter and GetParameters of
// /aws/reference/secretsmanager/NAME return a Secrets Manager secret's
// value, and AWS authorizes them with secretsmanager:GetSecretValue on the
// secret as well; a grant on parameters alone must not read secrets.
func TestSecretReferenceNeedsSecret(t *testing.T) {
	const (
		par = "arn:aws:ssm:us-east-1:111122223333:parameter/"
		sec = "arn:aws:secretsmanager:us-east-1:111122223333:secret:"
	)
	for _, c := range []struct {
		target, body string
		want         []Check
	}{
		{"AmazonSSM.GetParameter", `{"Name":"/aws/reference/secretsmanager/prod/db","WithDecryption":true}`,
			[]Check{{"secretsmanager:GetSecretValue", sec + "prod/db"}, {"ssm:GetParameter", par + "aws/reference/secretsmanager/prod/db"}}},
		{"AmazonSSM.GetParameter", `{"Name":"/aws/reference/secretsmanager/prod/db:AWSPREVIOUS"}`,
			[]Check{{"secretsmanager:GetSecretValue", sec + "prod/db"}, {"ssm:GetParameter", par + "aws/reference/secretsmanager/prod/db"}}},
		{"AmazonSSM.GetParameter", `{"Name":"arn:aws:ssm:us-east-1:111122223333:parameter/aws/reference/secretsmanager/prod/db"}`,
			[]Check{{"secretsmanager:GetSecretValue", sec + "prod/db"}, {"ssm:GetParameter", par + "aws/reference/secretsmanager/prod/db"}}},
		{"AmazonSSM.GetParameter", `{"Name":"/AWS/Reference/SecretsManager/prod/db"}`,
			[]Check{{"secretsmanager:GetSecretValue", sec + "prod/db"}, {"ssm:GetParameter", par + "AWS/Reference/SecretsManager/prod/db"}}},
		{"AmazonSSM.GetParameters", `{"Names":["/app/db","/aws/reference/secretsmanager/api-key"]}`,
			[]Check{{"secretsmanager:GetSecretValue", sec + "api-key"}, {"ssm:GetParameters", par + "app/db"}, {"ssm:GetParameters", par + "aws/reference/secretsmanager/api-key"}}},
		{"AmazonSSM.GetParameter", `{"Name":"/app/aws/reference/secretsmanager/x"}`,
			[]Check{{"ssm:GetParameter", par + "app/aws/reference/secretsmanager/x"}}},
	} {
		op := mustMap(t, jsonReq("ssm", c.target, c.body))
		sortChecks(op.Checks)
		if !slices.Equal(op.Checks, c.want) {
			t.Errorf("%s %s: checks %v, want %v", c.target, c.body, op.Checks, c.want)
		}
		if !op.SecretResult {
			t.Errorf("%s %s: result not marked secret", c.target, c.body)
		}
	}
}

// TestDescribeParametersShared: DescribeParameters with "Shared": true
// lists the parameters other accounts share with the upstream's account
// through AWS RAM (SSM API reference, DescribeParameters), not the
// target account's: refused, as cross-account listings of log groups and
// metrics are. A case variant is refused too.
func TestDescribeParametersShared(t *testing.T) {
	const target = "AmazonSSM.DescribeParameters"
	for _, body := range []string{`{"Shared":true}`, `{"shared":true}`, `{"Shared":"true"}`} {
		mustRefuse(t, jsonReq("ssm", target, body), "")
	}
	for _, body := range []string{`{}`, `{"Shared":false}`, `{"ParameterFilters":[{"Key":"Path","Values":["/app"]}]}`} {
		op := mustMap(t, jsonReq("ssm", target, body))
		if want := []Check{{"ssm:DescribeParameters", "*"}}; !slices.Equal(op.Checks, want) {
			t.Errorf("%s: checks %v, want %v", body, op.Checks, want)
		}
	}
}
