package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/airlock-dev/airlock/internal/testenv"
)

// TestDynamoIndexWithinForbiddenTable: a forbid on a DynamoDB table stops
// a Query on one of its indexes, which returns the same items. Through the
// real airlock binary, the AWS gateway and the Debian AWS CLI against
// dynalite: with the forbid, `airlock exec` is refused naming it and the
// query never runs; with the forbid removed (SIGHUP), the same exec reads
// the item through the index.
func TestDynamoIndexWithinForbiddenTable(t *testing.T) {
	cli := testenv.AWSCLI(t)
	url := testenv.Dynalite(t, "dynalite")
	const upKey, upSecret = "AKIDUPSTREAMDDB", "upstream-ddb-secret-never-logged"
	ctx := context.Background()
	db := dynamodb.NewFromConfig(aws.Config{Region: "us-east-1", BaseEndpoint: aws.String(url),
		Credentials: credentials.NewStaticCredentialsProvider(upKey, upSecret, "")})
	if _, err := db.CreateTable(ctx, &dynamodb.CreateTableInput{
		TableName: aws.String("payroll"),
		AttributeDefinitions: []ddbtypes.AttributeDefinition{
			{AttributeName: aws.String("id"), AttributeType: ddbtypes.ScalarAttributeTypeS},
			{AttributeName: aws.String("name"), AttributeType: ddbtypes.ScalarAttributeTypeS},
		},
		KeySchema: []ddbtypes.KeySchemaElement{{AttributeName: aws.String("id"), KeyType: ddbtypes.KeyTypeHash}},
		GlobalSecondaryIndexes: []ddbtypes.GlobalSecondaryIndex{{
			IndexName:  aws.String("byname"),
			KeySchema:  []ddbtypes.KeySchemaElement{{AttributeName: aws.String("name"), KeyType: ddbtypes.KeyTypeHash}},
			Projection: &ddbtypes.Projection{ProjectionType: ddbtypes.ProjectionTypeAll},
		}},
		BillingMode: ddbtypes.BillingModePayPerRequest,
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String("payroll"), Item: map[string]ddbtypes.AttributeValue{
		"id": &ddbtypes.AttributeValueMemberS{Value: "e1"}, "name": &ddbtypes.AttributeValueMemberS{Value: "ada"},
		"salary": &ddbtypes.AttributeValueMemberN{Value: "987654"},
	}}); err != nil {
		t.Fatal(err)
	}

	e := writeSetupWith(t, setup{awsListen: testenv.FreeAddr(t), awsKey: upKey, awsSecret: upSecret,
		awsEndpoints: "{ dynamodb: " + url + " }",
		policies: `
@id("sre-queries-tables") @approval("auto")
permit (principal in Group::"sre-team", action == Action::"dynamodb:Query", resource == Target::"aws-prod")
when { context.resource like "arn:aws:dynamodb:us-east-1:111122223333:table/*" };
`})
	forbid := filepath.Join(e.dir, "policies", "payroll.cedar")
	write(t, forbid, `@id("no-payroll")
forbid (principal, action, resource) when { context.resource == "arn:aws:dynamodb:us-east-1:111122223333:table/payroll" };
`)
	e.start(t)
	query := func() result {
		return airlock(t, e.addr, e.bot.Key, "exec", "aws-prod",
			"--allow", "dynamodb:Query arn:aws:dynamodb:us-east-1:111122223333:table/payroll/index/byname",
			"--for", "5m", "--reason", "find ada", "--", "sh", "-c",
			cli+` --endpoint-url "$AWS_ENDPOINT_URL" dynamodb query --table-name payroll --index-name byname`+
				` --key-condition-expression "#n = :n" --expression-attribute-names '{"#n":"name"}'`+
				` --expression-attribute-values '{":n":{"S":"ada"}}' --query "Items[].salary.N" --output text`)
	}
	if ex := query(); ex.code == 0 || strings.Contains(ex.stdout, "987654") || !strings.Contains(ex.stderr, "no-payroll") {
		t.Fatalf("Query on payroll's index under a forbid on payroll: exit %d\nstdout %q\nstderr %s", ex.code, ex.stdout, ex.stderr)
	}

	loads := strings.Count(e.stderr.String(), "policies loaded")
	if err := os.Remove(forbid); err != nil {
		t.Fatal(err)
	}
	if err := e.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	for i := 0; strings.Count(e.stderr.String(), "policies loaded") == loads; i++ {
		if i == 200 {
			t.Fatalf("the policies were not reloaded; server log:\n%s", e.stderr)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if ex := query(); ex.code != 0 || ex.stdout != "987654\n" {
		t.Fatalf("Query on payroll's index without the forbid: exit %d\nstdout %q\nstderr %s\nserver: %s", ex.code, ex.stdout, ex.stderr, e.stderr)
	}
	if strings.Contains(e.stderr.String(), upSecret) {
		t.Fatal("the server logged the upstream secret")
	}
}
