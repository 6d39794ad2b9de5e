package awsgw

import (
	"context"
	"net/http"
	"net/http/httptrace"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/ec2"

	"github.com/airlock-dev/airlock/internal/gateway"
)

// TestServiceGrantEndAtLastFlushKeepsConnection is
// TestGrantEndAtLastFlushKeepsConnection for services other than S3: a
// grant that ends right after the flush that sends a call's last bytes,
// while the client has already sent its next call, of another grant, on
// the same connection, must not reset that connection. For a JSON service
// (DynamoDB, dynalite upstream) and a Query one (EC2, awsfake upstream).
func TestServiceGrantEndAtLastFlushKeepsConnection(t *testing.T) {
	dynalite := startDynalite(t)
	e := newSvcEnv(t, func(o *Options) { o.Targets[0].Endpoints["dynamodb"] = dynalite })
	scope := []string{"dynamodb:CreateTable,dynamodb:DescribeTable,dynamodb:GetItem,dynamodb:PutItem arn:aws:dynamodb:" + testRegion + ":" + testAccount + ":table/orders",
		"ec2:DescribeInstances *"}
	setup := e.grant(scope...)
	var hookMu sync.Mutex
	var hook func(c *call, ctx context.Context, cc *clientCut)
	e.gw.afterServiceFlush = func(c *call, ctx context.Context, cc *clientCut) {
		hookMu.Lock()
		h := hook
		hookMu.Unlock()
		if h != nil {
			h(c, ctx, cc)
		}
	}

	ctx := context.Background()
	db := dynamodb.NewFromConfig(e.cfg(setup))
	if _, err := db.CreateTable(ctx, &dynamodb.CreateTableInput{
		TableName:            aws.String("orders"),
		AttributeDefinitions: []ddbtypes.AttributeDefinition{{AttributeName: aws.String("id"), AttributeType: ddbtypes.ScalarAttributeTypeS}},
		KeySchema:            []ddbtypes.KeySchemaElement{{AttributeName: aws.String("id"), KeyType: ddbtypes.KeyTypeHash}},
		BillingMode:          ddbtypes.BillingModePayPerRequest,
	}); err != nil {
		t.Fatalf("CreateTable: %v", err)
	}
	if err := dynamodb.NewTableExistsWaiter(db).Wait(ctx, &dynamodb.DescribeTableInput{TableName: aws.String("orders")}, 10*time.Second, func(o *dynamodb.TableExistsWaiterOptions) { o.MinDelay = 50 * time.Millisecond }); err != nil {
		t.Fatalf("waiting for the table: %v", err)
	}
	item := map[string]ddbtypes.AttributeValue{"id": &ddbtypes.AttributeValueMemberS{Value: "o1"}}

	for _, tt := range []struct {
		name        string
		first, next func(ctx context.Context, cfg aws.Config) error // next is not replayable: a POST
	}{
		{"json", func(ctx context.Context, cfg aws.Config) error {
			_, err := dynamodb.NewFromConfig(cfg).GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String("orders"), Key: item})
			return err
		}, func(ctx context.Context, cfg aws.Config) error {
			_, err := dynamodb.NewFromConfig(cfg).PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String("orders"), Item: item})
			return err
		}},
		{"query", func(ctx context.Context, cfg aws.Config) error {
			_, err := ec2.NewFromConfig(cfg).DescribeInstances(ctx, &ec2.DescribeInstancesInput{})
			return err
		}, func(ctx context.Context, cfg aws.Config) error {
			_, err := ec2.NewFromConfig(cfg).DescribeInstances(ctx, &ec2.DescribeInstancesInput{})
			return err
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			g1, g2 := e.grant(scope...), e.grant(scope...)
			wrote := make(chan struct{}) // g2's request is on the wire
			var once sync.Once
			hookMu.Lock()
			hook = func(c *call, callCtx context.Context, cc *clientCut) {
				if c.gr.ID != g1.ID {
					return
				}
				once.Do(func() {
					// g1's answer is out and the client has sent g2's
					// call on the same connection; now g1's grant ends,
					// and its session's cut runs before the handler
					// goes on (or finds the cut disarmed).
					e.endWhenSent(g1, wrote, func() bool {
						if callCtx.Err() == nil {
							return false
						}
						cc.mu.Lock()
						defer cc.mu.Unlock()
						return cc.cut || cc.done
					})
				})
			}
			hookMu.Unlock()
			// One connection for both grants' clients, as an SDK's shared pool.
			tr := &http.Transport{MaxConnsPerHost: 1, MaxIdleConnsPerHost: 1}
			defer tr.CloseIdleConnections()
			cfg := func(g *gateway.Grant) aws.Config {
				c := e.cfg(g)
				c.HTTPClient = &http.Client{Transport: tr}
				return c
			}
			if err := tt.first(ctx, cfg(g1)); err != nil {
				t.Fatalf("the call delivered before its grant ended: %v", err)
			}
			var wroteOnce sync.Once
			trace := httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
				WroteRequest: func(httptrace.WroteRequestInfo) { wroteOnce.Do(func() { close(wrote) }) },
			})
			if err := tt.next(trace, cfg(g2)); err != nil {
				t.Fatalf("the next call on the same connection, under another grant: %v", err)
			}
			// The first call was delivered whole: its result says so.
			if res := e.results(g1, 1); res[0].Status != "200" || res[0].Error != "" {
				t.Fatalf("result of the delivered call: %+v", res[0])
			}
		})
	}
}
