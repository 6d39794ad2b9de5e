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

// createTableNeeds runs CreateTable of name, with what set adds to the
// input, against dynalite: under a grant of CreateTable (and
// DescribeTable) on the table alone it must be refused for want on
// wantRes, leaving no table behind; with the statements of more added it
// must not be refused.
func createTableNeeds(t *testing.T, name string, set func(*dynamodb.CreateTableInput), want, wantRes string, more ...string) {
	t.Helper()
	url := startDynalite(t)
	e := newSvcEnv(t, func(o *Options) { o.Targets[0].Endpoints["dynamodb"] = url })
	table := "arn:aws:dynamodb:" + testRegion + ":" + testAccount + ":table/" + name
	ctx := context.Background()
	create := func(db *dynamodb.Client) error {
		in := &dynamodb.CreateTableInput{
			TableName:            aws.String(name),
			AttributeDefinitions: []ddbtypes.AttributeDefinition{{AttributeName: aws.String("id"), AttributeType: ddbtypes.ScalarAttributeTypeS}},
			KeySchema:            []ddbtypes.KeySchemaElement{{AttributeName: aws.String("id"), KeyType: ddbtypes.KeyTypeHash}},
			BillingMode:          ddbtypes.BillingModePayPerRequest,
		}
		set(in)
		_, err := db.CreateTable(ctx, in)
		return err
	}
	db := dynamodb.NewFromConfig(e.cfg(e.grant("dynamodb:CreateTable,dynamodb:DescribeTable " + table)))
	if err := create(db); apiCode(err) != "AccessDeniedException" || !strings.Contains(apiMessage(err), want+" on "+wantRes) {
		t.Fatalf("CreateTable under a CreateTable grant: %v (want AccessDenied for %s on %s)", err, want, wantRes)
	}
	var nf *ddbtypes.ResourceNotFoundException
	if _, err := db.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(name)}); !errors.As(err, &nf) {
		t.Fatalf("DescribeTable after the refused CreateTable: %v (want ResourceNotFoundException)", err)
	}
	all := e.grant(append([]string{"dynamodb:CreateTable " + table}, more...)...)
	if err := create(dynamodb.NewFromConfig(e.cfg(all))); apiCode(err) == "AccessDeniedException" {
		t.Fatalf("CreateTable under a grant of %v too: %v", more, err)
	}
}

// TestServiceDynaliteCreateTablePolicy: CreateTable with a ResourcePolicy
// attaches a resource-based policy to the new table, which AWS authorizes
// with dynamodb:PutResourcePolicy as well; a grant of CreateTable alone
// does not create the table, a grant of both does.
func TestServiceDynaliteCreateTablePolicy(t *testing.T) {
	table := "arn:aws:dynamodb:" + testRegion + ":" + testAccount + ":table/shared"
	policy := `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::444455556666:root"},"Action":"dynamodb:*","Resource":"` + table + `"}]}`
	createTableNeeds(t, "shared", func(in *dynamodb.CreateTableInput) { in.ResourcePolicy = aws.String(policy) },
		"dynamodb:PutResourcePolicy", table, "dynamodb:PutResourcePolicy "+table)
}

// TestServiceDynaliteCreateTableKMSKey: CreateTable with a customer
// managed key has DynamoDB create a KMS grant on the key for the caller,
// which AWS authorizes with kms:CreateGrant and kms:DescribeKey on the
// key; a grant of CreateTable alone does not create the table.
func TestServiceDynaliteCreateTableKMSKey(t *testing.T) {
	key := "arn:aws:kms:" + testRegion + ":" + testAccount + ":key/1234abcd-12ab-34cd-56ef-1234567890ab"
	createTableNeeds(t, "sealed", func(in *dynamodb.CreateTableInput) {
		in.SSESpecification = &ddbtypes.SSESpecification{Enabled: aws.Bool(true), SSEType: ddbtypes.SSETypeKms, KMSMasterKeyId: aws.String(key)}
	}, "kms:CreateGrant", key, "kms:CreateGrant,kms:DescribeKey "+key)
}

// TestServiceDynaliteCreateTableTags: CreateTable with Tags tags the new
// table, and under attribute-based access control a tag grants access to
// it (aws:ResourceTag conditions in the account's policies), beyond the
// grant's end: it also needs dynamodb:TagResource on the table, as
// tagging it afterwards would. A grant of CreateTable alone does not
// create the table (dynalite ignores the tags, but creates it).
func TestServiceDynaliteCreateTableTags(t *testing.T) {
	table := "arn:aws:dynamodb:" + testRegion + ":" + testAccount + ":table/tagged"
	createTableNeeds(t, "tagged", func(in *dynamodb.CreateTableInput) {
		in.Tags = []ddbtypes.Tag{{Key: aws.String("team"), Value: aws.String("finance")}}
	}, "dynamodb:TagResource", table, "dynamodb:TagResource "+table)
}
