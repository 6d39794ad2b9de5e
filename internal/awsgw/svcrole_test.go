package awsgw

import (
	"context"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/airlock-dev/airlock/internal/scope"
)

// The session policy AWS enforces as a second wall covers every service's
// actions, and a Logs group under both the names IAM evaluates.
func TestSessionPolicyServices(t *testing.T) {
	sc, err := scope.Parse([]string{
		"dynamodb:GetItem,dynamodb:Query arn:aws:dynamodb:us-east-1:111122223333:table/orders",
		"logs:FilterLogEvents arn:aws:logs:us-east-1:111122223333:log-group:/app/api",
		"logs:GetLogEvents arn:aws:logs:us-east-1:111122223333:log-group:/app/*",
		"ec2:DescribeInstances *",
	})
	if err != nil {
		t.Fatal(err)
	}
	got, err := SessionPolicy(sc)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"Version":"2012-10-17","Statement":[` +
		`{"Effect":"Allow","Action":["dynamodb:GetItem","dynamodb:Query"],"Resource":["arn:aws:dynamodb:us-east-1:111122223333:table/orders"]},` +
		`{"Effect":"Allow","Action":["logs:FilterLogEvents"],"Resource":["arn:aws:logs:us-east-1:111122223333:log-group:/app/api"]},` +
		`{"Effect":"Allow","Action":["logs:FilterLogEvents"],"Resource":["arn:aws:logs:us-east-1:111122223333:log-group:/app/api:*"]},` +
		`{"Effect":"Allow","Action":["logs:GetLogEvents"],"Resource":["arn:aws:logs:us-east-1:111122223333:log-group:/app/*"]},` +
		`{"Effect":"Allow","Action":["ec2:DescribeInstances"],"Resource":["*"]}]}`
	if got != want {
		t.Fatalf("policy\n got %s\nwant %s", got, want)
	}
}

// With role_arn, a DynamoDB call goes upstream signed with the grant's own
// role credentials, whose session policy names the table.
func TestServiceAssumeRole(t *testing.T) {
	var fs *fakeSTS
	e := newSvcEnv(t, func(o *Options) {
		fs = newFakeSTS(t, nil)
		o.Targets[0].RoleARN = "arn:aws:iam::111122223333:role/airlock-gateway"
		o.Targets[0].STSEndpoint = fs.srv.URL
	})
	fs.up = e.up
	e.fakes["dynamodb"].SetFallback(e.up.lookup)
	g := e.grant("dynamodb:GetItem arn:aws:dynamodb:us-east-1:111122223333:table/orders")
	_, err := dynamodb.NewFromConfig(e.cfg(g)).GetItem(context.Background(), &dynamodb.GetItemInput{
		TableName: aws.String("orders"), Key: map[string]ddbtypes.AttributeValue{"id": &ddbtypes.AttributeValueMemberS{Value: "1"}}})
	if err != nil {
		t.Fatalf("GetItem: %v", err)
	}
	calls := fs.assumed()
	if len(calls) != 1 || !strings.Contains(calls[0].Get("Policy"), `"Action":["dynamodb:GetItem"],"Resource":["arn:aws:dynamodb:us-east-1:111122223333:table/orders"]`) {
		t.Fatalf("AssumeRole: %v", calls)
	}
	up := e.fakes["dynamodb"].Requests()
	if len(up) != 1 || up[0].AccessKeyID != "ASIATEMP1" || up[0].Header.Get("X-Amz-Security-Token") != "temp-token-1" {
		t.Fatalf("upstream: %+v", up)
	}
}
