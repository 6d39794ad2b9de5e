package awsgw

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/airlock-dev/airlock/internal/testenv"
)

// startDynalite runs dynalite (testenv.Dynalite) until t ends.
func startDynalite(t *testing.T) string {
	t.Helper()
	return testenv.Dynalite(t, "../../e2e/dynalite")
}

// TestServiceDynalite: DynamoDB through the gateway to a real DynamoDB
// implementation, under a scope on one table.
func TestServiceDynalite(t *testing.T) {
	url := startDynalite(t)
	e := newSvcEnv(t, func(o *Options) { o.Targets[0].Endpoints["dynamodb"] = url })
	table := func(n string) string { return "arn:aws:dynamodb:" + testRegion + ":" + testAccount + ":table/" + n }
	g := e.grant("dynamodb:CreateTable,dynamodb:DescribeTable,dynamodb:PutItem,dynamodb:GetItem,dynamodb:Query,dynamodb:BatchWriteItem " + table("orders"))
	ctx := context.Background()
	db := dynamodb.NewFromConfig(e.cfg(g))
	create := func(name string) error {
		_, err := db.CreateTable(ctx, &dynamodb.CreateTableInput{
			TableName:            aws.String(name),
			AttributeDefinitions: []ddbtypes.AttributeDefinition{{AttributeName: aws.String("customer"), AttributeType: ddbtypes.ScalarAttributeTypeS}, {AttributeName: aws.String("id"), AttributeType: ddbtypes.ScalarAttributeTypeS}},
			KeySchema:            []ddbtypes.KeySchemaElement{{AttributeName: aws.String("customer"), KeyType: ddbtypes.KeyTypeHash}, {AttributeName: aws.String("id"), KeyType: ddbtypes.KeyTypeRange}},
			BillingMode:          ddbtypes.BillingModePayPerRequest,
		})
		return err
	}
	if err := create("orders"); err != nil {
		t.Fatalf("CreateTable orders: %v", err)
	}
	if err := create("customers"); apiCode(err) != "AccessDeniedException" || !strings.Contains(apiMessage(err), "dynamodb CreateTable needs dynamodb:CreateTable on "+table("customers")) {
		t.Fatalf("CreateTable customers: %v", err)
	}
	if err := dynamodb.NewTableExistsWaiter(db).Wait(ctx, &dynamodb.DescribeTableInput{TableName: aws.String("orders")}, 10*time.Second, func(o *dynamodb.TableExistsWaiterOptions) { o.MinDelay = 50 * time.Millisecond }); err != nil {
		t.Fatalf("waiting for the table: %v", err)
	}
	item := func(id string) map[string]ddbtypes.AttributeValue {
		return map[string]ddbtypes.AttributeValue{"customer": &ddbtypes.AttributeValueMemberS{Value: "c1"}, "id": &ddbtypes.AttributeValueMemberS{Value: id}}
	}
	if _, err := db.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String("orders"), Item: item("o1")}); err != nil {
		t.Fatalf("PutItem: %v", err)
	}
	// A batch naming a second table is refused whole: nothing is written.
	_, err := db.BatchWriteItem(ctx, &dynamodb.BatchWriteItemInput{RequestItems: map[string][]ddbtypes.WriteRequest{
		"orders":    {{PutRequest: &ddbtypes.PutRequest{Item: item("o2")}}},
		"customers": {{PutRequest: &ddbtypes.PutRequest{Item: item("c9")}}},
	}})
	if apiCode(err) != "AccessDeniedException" || !strings.Contains(apiMessage(err), table("customers")) {
		t.Fatalf("BatchWriteItem mixing tables: %v", err)
	}
	if _, err := db.BatchWriteItem(ctx, &dynamodb.BatchWriteItemInput{RequestItems: map[string][]ddbtypes.WriteRequest{
		"orders": {{PutRequest: &ddbtypes.PutRequest{Item: item("o3")}}},
	}}); err != nil {
		t.Fatalf("BatchWriteItem on orders: %v", err)
	}
	q, err := db.Query(ctx, &dynamodb.QueryInput{TableName: aws.String("orders"), KeyConditionExpression: aws.String("customer = :c"),
		ExpressionAttributeValues: map[string]ddbtypes.AttributeValue{":c": &ddbtypes.AttributeValueMemberS{Value: "c1"}}})
	if err != nil || q.Count != 2 {
		t.Fatalf("Query: %v (count %d; want o1 and o3, not the refused batch's o2)", err, q.Count)
	}
	var recorded []string
	for _, c := range e.requests(g) {
		recorded = append(recorded, fmt.Sprintf("%v %s %s %s", c.Allowed, c.Params["operation"], c.Action, c.Resource))
	}
	all := strings.Join(recorded, "\n")
	for _, want := range []string{"true CreateTable dynamodb:CreateTable " + table("orders"), "false CreateTable dynamodb:CreateTable " + table("customers"),
		"false BatchWriteItem dynamodb:BatchWriteItem " + table("customers"), "true Query dynamodb:Query " + table("orders")} {
		if !strings.Contains(all, want) {
			t.Errorf("recording lacks %q:\n%s", want, all)
		}
	}
}
