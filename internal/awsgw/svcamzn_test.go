package awsgw

import (
	"context"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// TestServiceAmznTargetNotForwarded: a signed call whose X-Amz-Target the
// grant allows, carrying an X-Amzn-Target that names another operation,
// is refused rather than forwarded with a second operation name an
// upstream front end could route by.
func TestServiceAmznTargetNotForwarded(t *testing.T) {
	e := newSvcEnv(t)
	g := e.grant("dynamodb:GetItem arn:aws:dynamodb:" + testRegion + ":" + testAccount + ":table/orders")
	db := dynamodb.NewFromConfig(e.cfg(g), func(o *dynamodb.Options) {
		o.APIOptions = append(o.APIOptions, smithyhttp.AddHeaderValue("X-Amzn-Target", "DynamoDB_20120810.DeleteTable"))
	})
	_, err := db.GetItem(context.Background(), &dynamodb.GetItemInput{TableName: aws.String("orders"),
		Key: map[string]ddbtypes.AttributeValue{"id": &ddbtypes.AttributeValueMemberS{Value: "o1"}}})
	if apiCode(err) != "SerializationException" {
		for _, r := range e.fakes["dynamodb"].Requests() {
			t.Logf("upstream got X-Amz-Target %q, X-Amzn-Target %q", r.Target, r.Header.Get("X-Amzn-Target"))
		}
		t.Fatalf("GetItem carrying X-Amzn-Target: %v", err)
	}
	e.upstreamSaw(t, "dynamodb", 0)
}
