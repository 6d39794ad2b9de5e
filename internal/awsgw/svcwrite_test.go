package awsgw

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
)

// TestServiceWriteNotForwardedBeforeDurable: DESIGN.md's "a write is
// recorded before it is forwarded" for the services other than S3 (whose
// writes disclose_test covers). A call that can change state (DynamoDB
// PutItem, SQS SendMessage) does not reach its upstream while its record
// is being written, nor at all when the record fails: the client gets
// the service's ServiceUnavailable and the upstream sees nothing. Reads
// may travel while their record is written (TestServiceReadHeldUntilDurable),
// so a gateway that treated writes as reads would still answer the
// client the same way; only the upstream's count tells them apart.
func TestServiceWriteNotForwardedBeforeDurable(t *testing.T) {
	e := newSvcEnv(t)
	arn := svcARN
	g := e.grant(
		"dynamodb:GetItem,dynamodb:PutItem "+arn("dynamodb", "table/orders"),
		"sqs:SendMessage "+arn("sqs", "jobs"),
	)
	ctx := context.Background()
	db := dynamodb.NewFromConfig(e.cfg(g))
	q := sqs.NewFromConfig(e.cfg(g))
	key := map[string]ddbtypes.AttributeValue{"id": &ddbtypes.AttributeValueMemberS{Value: "42"}}
	put := func() error {
		_, err := db.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String("orders"), Item: key})
		return err
	}
	send := func() error {
		_, err := q.SendMessage(ctx, &sqs.SendMessageInput{
			QueueUrl:    aws.String("https://sqs." + testRegion + ".amazonaws.com/" + testAccount + "/jobs"),
			MessageBody: aws.String("reindex"),
		})
		return err
	}

	// The session starts with a recorded read, so that what fails below
	// is the write's own record, not the session's.
	if _, err := db.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String("orders"), Key: key}); err != nil {
		t.Fatalf("GetItem: %v", err)
	}
	e.upstreamSaw(t, "dynamodb", 1)

	t.Run("record fails", func(t *testing.T) {
		e.auth.FailRecords(true)
		defer e.auth.FailRecords(false)
		// DynamoDB's own 503 is the common ServiceUnavailable (svcerr.go).
		if err := put(); apiCode(err) != "ServiceUnavailable" || !strings.Contains(apiMessage(err), "not forwarded") {
			t.Errorf("PutItem whose record failed: %v, want ServiceUnavailable saying it was not forwarded", err)
		}
		if err := send(); !strings.Contains(apiMessage(err), "not forwarded") {
			t.Errorf("SendMessage whose record failed: %v, want a refusal saying it was not forwarded", err)
		}
		e.upstreamSaw(t, "dynamodb", 1)
		e.upstreamSaw(t, "sqs", 0)
	})

	t.Run("record stalls", func(t *testing.T) {
		st := e.auth.Stall()
		defer e.auth.Unstall()
		// A failure below must not leave the call held: the env's
		// cleanup waits for it. (Only the first Release counts.)
		defer st.Release(nil)
		done := make(chan error, 1)
		go func() { done <- put() }()
		select {
		case c := <-st.Held():
			if c.Action != "dynamodb:PutItem" {
				t.Fatalf("held record is for %s, want dynamodb:PutItem", c.Action)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("no request record was held")
		}
		// The upstream would have had it within microseconds had the
		// write been forwarded alongside its record.
		select {
		case err := <-done:
			t.Fatalf("PutItem answered (%v) before its record was durable", err)
		case <-time.After(quiet):
		}
		e.upstreamSaw(t, "dynamodb", 1)
		st.Release(nil)
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("PutItem after its record: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("PutItem did not complete after its record was written")
		}
		e.upstreamSaw(t, "dynamodb", 2)
	})
}
