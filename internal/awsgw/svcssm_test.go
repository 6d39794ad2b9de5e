package awsgw

import (
	"context"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
)

// TestServiceSSMSecretReference: a grant on every SSM parameter does not
// read Secrets Manager secrets through Parameter Store's
// /aws/reference/secretsmanager/ path, which AWS authorizes on the secret
// as well; a grant that also covers the secret does.
func TestServiceSSMSecretReference(t *testing.T) {
	e := newSvcEnv(t)
	arn := func(svc, res string) string {
		return "arn:aws:" + svc + ":" + testRegion + ":" + testAccount + ":" + res
	}
	ctx := context.Background()
	params := e.grant("ssm:GetParameter,ssm:GetParameters " + arn("ssm", "parameter/*"))
	sm := ssm.NewFromConfig(e.cfg(params))
	_, err := sm.GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String("/aws/reference/secretsmanager/prod/db"), WithDecryption: aws.Bool(true)})
	if apiCode(err) != "AccessDeniedException" || !strings.Contains(apiMessage(err), "secretsmanager:GetSecretValue on "+arn("secretsmanager", "secret:prod/db")) {
		t.Fatalf("GetParameter of a secret reference under a parameters-only grant: %v", err)
	}
	_, err = sm.GetParameters(ctx, &ssm.GetParametersInput{Names: []string{"/app/db/url", "/aws/reference/secretsmanager/prod/db"}, WithDecryption: aws.Bool(true)})
	if apiCode(err) != "AccessDeniedException" {
		t.Fatalf("GetParameters naming a secret reference under a parameters-only grant: %v", err)
	}
	e.upstreamSaw(t, "ssm", 0)

	both := e.grant("ssm:GetParameter "+arn("ssm", "parameter/aws/reference/secretsmanager/prod/db"),
		"secretsmanager:GetSecretValue "+arn("secretsmanager", "secret:prod/db"))
	if _, err := ssm.NewFromConfig(e.cfg(both)).GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String("/aws/reference/secretsmanager/prod/db"), WithDecryption: aws.Bool(true)}); err != nil {
		t.Fatalf("GetParameter of a secret reference under a grant on both: %v", err)
	}
	e.upstreamSaw(t, "ssm", 1)
}
