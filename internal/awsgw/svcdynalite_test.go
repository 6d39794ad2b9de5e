package awsgw

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/airlock-dev/airlock/internal/testenv"
)

// startDynalite runs dynalite (e2e/dynalite, npm ci), an implementation
// of DynamoDB's API, in memory on a free loopback port, and returns its
// URL. dynalite checks that requests are signed, not the signature: the
// gateway's re-signing is checked by awsfake.
func startDynalite(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs("../../e2e/dynalite")
	if err != nil {
		t.Fatal(err)
	}
	bin := testenv.Tool(t, filepath.Join(dir, "node_modules", ".bin", "dynalite"), "run: (cd e2e/dynalite && npm ci)")
	testenv.Tool(t, "node", "install it with: apt-get install nodejs npm")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	cmd := exec.Command(bin, "--host", "127.0.0.1", "--port", fmt.Sprint(port), "--createTableMs", "0", "--deleteTableMs", "0")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	for i := 0; ; i++ {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			break
		}
		if i == 100 {
			t.Fatalf("dynalite did not listen on %s: %v", addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return "http://" + addr
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
