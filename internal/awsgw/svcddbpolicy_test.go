package awsgw

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// TestServiceDynaliteCreateTablePolicy: CreateTable with a ResourcePolicy
// attaches a resource-based policy to the new table, which AWS authorizes
// with dynamodb:PutResourcePolicy as well; a grant of CreateTable alone
// does not create the table, a grant of both does.
func TestServiceDynaliteCreateTablePolicy(t *testing.T) {
	url := startDynalite(t)
	e := newSvcEnv(t, func(o *Options) { o.Targets[0].Endpoints["dynamodb"] = url })
	table := "arn:aws:dynamodb:" + testRegion + ":" + testAccount + ":table/shared"
	ctx := context.Background()
	policy := `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::444455556666:root"},"Action":"dynamodb:*","Resource":"` + table + `"}]}`
	create := func(db *dynamodb.Client) error {
		_, err := db.CreateTable(ctx, &dynamodb.CreateTableInput{
			TableName:            aws.String("shared"),
			AttributeDefinitions: []ddbtypes.AttributeDefinition{{AttributeName: aws.String("id"), AttributeType: ddbtypes.ScalarAttributeTypeS}},
			KeySchema:            []ddbtypes.KeySchemaElement{{AttributeName: aws.String("id"), KeyType: ddbtypes.KeyTypeHash}},
			BillingMode:          ddbtypes.BillingModePayPerRequest,
			ResourcePolicy:       aws.String(policy),
		})
		return err
	}
	g := e.grant("dynamodb:CreateTable,dynamodb:DescribeTable " + table)
	db := dynamodb.NewFromConfig(e.cfg(g))
	if err := create(db); apiCode(err) != "AccessDeniedException" || !strings.Contains(apiMessage(err), "dynamodb:PutResourcePolicy on "+table) {
		t.Fatalf("CreateTable with a ResourcePolicy under a CreateTable grant: %v", err)
	}
	var nf *ddbtypes.ResourceNotFoundException
	if _, err := db.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String("shared")}); !errors.As(err, &nf) {
		t.Fatalf("DescribeTable after the refused CreateTable: %v (want ResourceNotFoundException)", err)
	}
	both := e.grant("dynamodb:CreateTable,dynamodb:PutResourcePolicy " + table)
	if err := create(dynamodb.NewFromConfig(e.cfg(both))); err != nil {
		t.Fatalf("CreateTable with a ResourcePolicy under a grant of both: %v", err)
	}
}

// TestServiceDynaliteCreateTableKMSKey: CreateTable with a customer
// managed key has DynamoDB create a KMS grant on the key for the caller,
// which AWS authorizes with kms:CreateGrant and kms:DescribeKey on the
// key; a grant of CreateTable alone does not create the table.
func TestServiceDynaliteCreateTableKMSKey(t *testing.T) {
	url := startDynalite(t)
	e := newSvcEnv(t, func(o *Options) { o.Targets[0].Endpoints["dynamodb"] = url })
	table := "arn:aws:dynamodb:" + testRegion + ":" + testAccount + ":table/sealed"
	key := "arn:aws:kms:" + testRegion + ":" + testAccount + ":key/1234abcd-12ab-34cd-56ef-1234567890ab"
	ctx := context.Background()
	create := func(db *dynamodb.Client) error {
		_, err := db.CreateTable(ctx, &dynamodb.CreateTableInput{
			TableName:            aws.String("sealed"),
			AttributeDefinitions: []ddbtypes.AttributeDefinition{{AttributeName: aws.String("id"), AttributeType: ddbtypes.ScalarAttributeTypeS}},
			KeySchema:            []ddbtypes.KeySchemaElement{{AttributeName: aws.String("id"), KeyType: ddbtypes.KeyTypeHash}},
			BillingMode:          ddbtypes.BillingModePayPerRequest,
			SSESpecification:     &ddbtypes.SSESpecification{Enabled: aws.Bool(true), SSEType: ddbtypes.SSETypeKms, KMSMasterKeyId: aws.String(key)},
		})
		return err
	}
	g := e.grant("dynamodb:CreateTable,dynamodb:DescribeTable " + table)
	db := dynamodb.NewFromConfig(e.cfg(g))
	if err := create(db); apiCode(err) != "AccessDeniedException" || !strings.Contains(apiMessage(err), "kms:CreateGrant on "+key) {
		t.Fatalf("CreateTable with a KMS key under a CreateTable grant: %v", err)
	}
	var nf *ddbtypes.ResourceNotFoundException
	if _, err := db.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String("sealed")}); !errors.As(err, &nf) {
		t.Fatalf("DescribeTable after the refused CreateTable: %v (want ResourceNotFoundException)", err)
	}
	all := e.grant("dynamodb:CreateTable "+table, "kms:CreateGrant,kms:DescribeKey "+key)
	if err := create(dynamodb.NewFromConfig(e.cfg(all))); apiCode(err) == "AccessDeniedException" {
		t.Fatalf("CreateTable with a KMS key under a grant of all three: %v", err)
	}
}
