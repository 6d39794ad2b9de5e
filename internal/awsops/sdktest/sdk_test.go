// Package sdktest maps the requests the real AWS SDK for Go v2 clients
// send (captured by a transport that never reaches the network) with
// awsops.Map. It is a package of its own so that the fuzzing build of
// internal/awsops does not instrument the SDK's service modules.
package sdktest

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"regexp"
	"slices"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/awsops"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	cwtypes "github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	logtypes "github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs/types"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/aws/aws-sdk-go-v2/service/sts"
)

// capture is an HTTP transport that keeps the request an SDK would send
// and fails it, so that each SDK call yields exactly the request shape
// the real client produces.
type capture struct{ reqs []*awsops.Request }

var errCaptured = errors.New("captured")

var scopeRE = regexp.MustCompile(`Credential=[^/]+/\d{8}/([^/]+)/([^/]+)/aws4_request`)

func (c *capture) RoundTrip(r *http.Request) (*http.Response, error) {
	var body []byte
	if r.Body != nil {
		body, _ = io.ReadAll(r.Body)
	}
	m := scopeRE.FindStringSubmatch(r.Header.Get("Authorization"))
	if m == nil {
		return nil, errors.New("no SigV4 credential scope")
	}
	c.reqs = append(c.reqs, &awsops.Request{Service: m[2], Region: m[1], Account: account, Method: r.Method,
		Path: r.URL.Path, RawQuery: r.URL.RawQuery, Header: r.Header.Clone(), Body: body})
	return nil, errCaptured
}

func sdkConfig(c *capture) aws.Config {
	return aws.Config{
		Region:           region,
		Credentials:      credentials.NewStaticCredentialsProvider("AKIDEXAMPLE", "secret", ""),
		HTTPClient:       &http.Client{Transport: c},
		Retryer:          func() aws.Retryer { return aws.NopRetryer{} },
		BaseEndpoint:     aws.String("http://127.0.0.1:8701"),
		RetryMaxAttempts: 1,
	}
}

// sdkCase is one SDK call and what Map must make of it.
type sdkCase struct {
	name     string
	call     func(ctx context.Context) error
	checks   []awsops.Check
	readOnly bool
	params   map[string]string
	local    bool
	secret   bool
	refused  string // error code when Map must refuse
}

const (
	region  = "us-east-1"
	account = "111122223333"
	ddb     = "arn:aws:dynamodb:us-east-1:111122223333:table/"
	lg      = "arn:aws:logs:us-east-1:111122223333:log-group:"
)

func TestSDKRequests(t *testing.T) {
	c := &capture{}
	cfg := sdkConfig(c)
	db := dynamodb.NewFromConfig(cfg)
	logs := cloudwatchlogs.NewFromConfig(cfg)
	sm := ssm.NewFromConfig(cfg)
	sec := secretsmanager.NewFromConfig(cfg)
	lam := lambda.NewFromConfig(cfg)
	e2 := ec2.NewFromConfig(cfg)
	st := sts.NewFromConfig(cfg)
	q := sqs.NewFromConfig(cfg)
	cw := cloudwatch.NewFromConfig(cfg)
	s := aws.String
	key := map[string]ddbtypes.AttributeValue{"id": &ddbtypes.AttributeValueMemberS{Value: "secret-item-value"}}
	qurl := s("https://sqs.us-east-1.amazonaws.com/111122223333/jobs")

	cases := []sdkCase{
		{name: "dynamodb GetItem", call: func(ctx context.Context) error {
			_, err := db.GetItem(ctx, &dynamodb.GetItemInput{TableName: s("orders"), Key: key})
			return err
		}, checks: []awsops.Check{ck("dynamodb:GetItem", ddb+"orders")}, readOnly: true, params: map[string]string{"table": "orders"}},
		{name: "dynamodb Query on an index", call: func(ctx context.Context) error {
			_, err := db.Query(ctx, &dynamodb.QueryInput{TableName: s("orders"), IndexName: s("by-customer"),
				KeyConditionExpression: s("customer = :c"), ExpressionAttributeValues: key})
			return err
		}, checks: []awsops.Check{ck("dynamodb:Query", ddb+"orders/index/by-customer")}, readOnly: true,
			params: map[string]string{"table": "orders", "index": "by-customer", "keyCondition": "customer = :c"}},
		{name: "dynamodb Scan", call: func(ctx context.Context) error {
			_, err := db.Scan(ctx, &dynamodb.ScanInput{TableName: s("orders")})
			return err
		}, checks: []awsops.Check{ck("dynamodb:Scan", ddb+"orders")}, readOnly: true},
		{name: "dynamodb PutItem", call: func(ctx context.Context) error {
			_, err := db.PutItem(ctx, &dynamodb.PutItemInput{TableName: s("orders"), Item: key})
			return err
		}, checks: []awsops.Check{ck("dynamodb:PutItem", ddb+"orders")}},
		{name: "dynamodb UpdateItem", call: func(ctx context.Context) error {
			_, err := db.UpdateItem(ctx, &dynamodb.UpdateItemInput{TableName: s("orders"), Key: key, UpdateExpression: s("SET a = :c"), ExpressionAttributeValues: map[string]ddbtypes.AttributeValue{":c": &ddbtypes.AttributeValueMemberN{Value: "1"}}})
			return err
		}, checks: []awsops.Check{ck("dynamodb:UpdateItem", ddb+"orders")}},
		{name: "dynamodb DeleteItem", call: func(ctx context.Context) error {
			_, err := db.DeleteItem(ctx, &dynamodb.DeleteItemInput{TableName: s("orders"), Key: key})
			return err
		}, checks: []awsops.Check{ck("dynamodb:DeleteItem", ddb+"orders")}},
		{name: "dynamodb BatchGetItem on two tables", call: func(ctx context.Context) error {
			_, err := db.BatchGetItem(ctx, &dynamodb.BatchGetItemInput{RequestItems: map[string]ddbtypes.KeysAndAttributes{
				"orders": {Keys: []map[string]ddbtypes.AttributeValue{key}}, "customers": {Keys: []map[string]ddbtypes.AttributeValue{key}}}})
			return err
		}, checks: []awsops.Check{ck("dynamodb:BatchGetItem", ddb+"customers"), ck("dynamodb:BatchGetItem", ddb+"orders")}, readOnly: true},
		{name: "dynamodb BatchWriteItem", call: func(ctx context.Context) error {
			_, err := db.BatchWriteItem(ctx, &dynamodb.BatchWriteItemInput{RequestItems: map[string][]ddbtypes.WriteRequest{
				"orders": {{PutRequest: &ddbtypes.PutRequest{Item: key}}}, "audit": {{DeleteRequest: &ddbtypes.DeleteRequest{Key: key}}}}})
			return err
		}, checks: []awsops.Check{ck("dynamodb:BatchWriteItem", ddb+"audit"), ck("dynamodb:BatchWriteItem", ddb+"orders")}},
		{name: "dynamodb TransactWriteItems", call: func(ctx context.Context) error {
			_, err := db.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: []ddbtypes.TransactWriteItem{
				{Put: &ddbtypes.Put{TableName: s("orders"), Item: key}},
				{ConditionCheck: &ddbtypes.ConditionCheck{TableName: s("customers"), Key: key, ConditionExpression: s("attribute_exists(id)")}},
				{Delete: &ddbtypes.Delete{TableName: s("carts"), Key: key}}}})
			return err
		}, checks: []awsops.Check{ck("dynamodb:ConditionCheckItem", ddb+"customers"), ck("dynamodb:DeleteItem", ddb+"carts"), ck("dynamodb:PutItem", ddb+"orders")}},
		{name: "dynamodb TransactGetItems", call: func(ctx context.Context) error {
			_, err := db.TransactGetItems(ctx, &dynamodb.TransactGetItemsInput{TransactItems: []ddbtypes.TransactGetItem{
				{Get: &ddbtypes.Get{TableName: s("orders"), Key: key}}, {Get: &ddbtypes.Get{TableName: s(ddb + "customers"), Key: key}}}})
			return err
		}, checks: []awsops.Check{ck("dynamodb:GetItem", ddb+"customers"), ck("dynamodb:GetItem", ddb+"orders")}, readOnly: true},
		{name: "dynamodb DescribeTable", call: func(ctx context.Context) error {
			_, err := db.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: s("orders")})
			return err
		}, checks: []awsops.Check{ck("dynamodb:DescribeTable", ddb+"orders")}, readOnly: true},
		{name: "dynamodb ListTables", call: func(ctx context.Context) error {
			_, err := db.ListTables(ctx, &dynamodb.ListTablesInput{})
			return err
		}, checks: []awsops.Check{ck("dynamodb:ListTables", "*")}, readOnly: true},
		{name: "dynamodb CreateTable", call: func(ctx context.Context) error {
			_, err := db.CreateTable(ctx, &dynamodb.CreateTableInput{TableName: s("orders"), BillingMode: ddbtypes.BillingModePayPerRequest,
				AttributeDefinitions: []ddbtypes.AttributeDefinition{{AttributeName: s("id"), AttributeType: ddbtypes.ScalarAttributeTypeS}},
				KeySchema:            []ddbtypes.KeySchemaElement{{AttributeName: s("id"), KeyType: ddbtypes.KeyTypeHash}}})
			return err
		}, checks: []awsops.Check{ck("dynamodb:CreateTable", ddb+"orders")}},
		{name: "logs FilterLogEvents", call: func(ctx context.Context) error {
			_, err := logs.FilterLogEvents(ctx, &cloudwatchlogs.FilterLogEventsInput{LogGroupName: s("/app/web"), FilterPattern: s("ERROR")})
			return err
		}, checks: []awsops.Check{ck("logs:FilterLogEvents", lg+"/app/web")}, readOnly: true, params: map[string]string{"logGroup": "/app/web", "filterPattern": "ERROR"}},
		{name: "logs FilterLogEvents by identifier ARN", call: func(ctx context.Context) error {
			_, err := logs.FilterLogEvents(ctx, &cloudwatchlogs.FilterLogEventsInput{LogGroupIdentifier: s(lg + "/app/web:*")})
			return err
		}, checks: []awsops.Check{ck("logs:FilterLogEvents", lg+"/app/web")}, readOnly: true},
		{name: "logs GetLogEvents", call: func(ctx context.Context) error {
			_, err := logs.GetLogEvents(ctx, &cloudwatchlogs.GetLogEventsInput{LogGroupName: s("/app/web"), LogStreamName: s("i-0abc/äpp")})
			return err
		}, checks: []awsops.Check{ck("logs:GetLogEvents", lg+"/app/web:log-stream:i-0abc/äpp")}, readOnly: true},
		{name: "logs StartQuery", call: func(ctx context.Context) error {
			_, err := logs.StartQuery(ctx, &cloudwatchlogs.StartQueryInput{LogGroupNames: []string{"/app/web", "/app/worker"},
				QueryString: s("fields @message | filter @message like /ERROR/"), StartTime: aws.Int64(1), EndTime: aws.Int64(2)})
			return err
		}, checks: []awsops.Check{ck("logs:StartQuery", lg+"/app/web"), ck("logs:StartQuery", lg+"/app/worker")}, readOnly: true,
			params: map[string]string{"logGroups": `["/app/web","/app/worker"]`}},
		{name: "logs GetQueryResults", call: func(ctx context.Context) error {
			_, err := logs.GetQueryResults(ctx, &cloudwatchlogs.GetQueryResultsInput{QueryId: s("12ab3456-12ab-123a-789e-1234567890ab")})
			return err
		}, checks: []awsops.Check{ck("logs:GetQueryResults", "*")}, readOnly: true},
		{name: "logs StopQuery", call: func(ctx context.Context) error {
			_, err := logs.StopQuery(ctx, &cloudwatchlogs.StopQueryInput{QueryId: s("12ab3456-12ab-123a-789e-1234567890ab")})
			return err
		}, checks: []awsops.Check{ck("logs:StopQuery", "*")}},
		{name: "logs DescribeLogGroups", call: func(ctx context.Context) error {
			_, err := logs.DescribeLogGroups(ctx, &cloudwatchlogs.DescribeLogGroupsInput{LogGroupNamePrefix: s("/app/")})
			return err
		}, checks: []awsops.Check{ck("logs:DescribeLogGroups", lg+":log-stream:")}, readOnly: true},
		{name: "logs DescribeLogStreams", call: func(ctx context.Context) error {
			_, err := logs.DescribeLogStreams(ctx, &cloudwatchlogs.DescribeLogStreamsInput{LogGroupName: s("/app/web")})
			return err
		}, checks: []awsops.Check{ck("logs:DescribeLogStreams", lg+"/app/web")}, readOnly: true},
		{name: "logs PutLogEvents", call: func(ctx context.Context) error {
			_, err := logs.PutLogEvents(ctx, &cloudwatchlogs.PutLogEventsInput{LogGroupName: s("/app/web"), LogStreamName: s("s1"),
				LogEvents: []logtypes.InputLogEvent{{Message: s("hello"), Timestamp: aws.Int64(1)}}})
			return err
		}, checks: []awsops.Check{ck("logs:PutLogEvents", lg+"/app/web:log-stream:s1")}},
		{name: "ssm GetParameter", call: func(ctx context.Context) error {
			_, err := sm.GetParameter(ctx, &ssm.GetParameterInput{Name: s("/app/db/password"), WithDecryption: aws.Bool(true)})
			return err
		}, checks: []awsops.Check{ck("ssm:GetParameter", "arn:aws:ssm:us-east-1:111122223333:parameter/app/db/password")}, readOnly: true, secret: true,
			params: map[string]string{"name": "/app/db/password", "withDecryption": "true"}},
		{name: "ssm GetParameters", call: func(ctx context.Context) error {
			_, err := sm.GetParameters(ctx, &ssm.GetParametersInput{Names: []string{"/app/a", "b:3"}})
			return err
		}, checks: []awsops.Check{ck("ssm:GetParameters", "arn:aws:ssm:us-east-1:111122223333:parameter/app/a"), ck("ssm:GetParameters", "arn:aws:ssm:us-east-1:111122223333:parameter/b")},
			readOnly: true, secret: true},
		{name: "ssm GetParametersByPath", call: func(ctx context.Context) error {
			_, err := sm.GetParametersByPath(ctx, &ssm.GetParametersByPathInput{Path: s("/app"), Recursive: aws.Bool(true)})
			return err
		}, checks: []awsops.Check{ck("ssm:GetParametersByPath", "arn:aws:ssm:us-east-1:111122223333:parameter/app/*")}, readOnly: true, secret: true},
		{name: "secretsmanager GetSecretValue", call: func(ctx context.Context) error {
			_, err := sec.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: s("prod/db")})
			return err
		}, checks: []awsops.Check{ck("secretsmanager:GetSecretValue", "arn:aws:secretsmanager:us-east-1:111122223333:secret:prod/db")}, readOnly: true, secret: true},
		{name: "lambda Invoke", call: func(ctx context.Context) error {
			_, err := lam.Invoke(ctx, &lambda.InvokeInput{FunctionName: s("resize"), Payload: []byte(`{"secret":"payload"}`)})
			return err
		}, checks: []awsops.Check{ck("lambda:InvokeFunction", "arn:aws:lambda:us-east-1:111122223333:function:resize")}, params: map[string]string{"function": "resize"}},
		{name: "lambda Invoke by ARN with qualifier", call: func(ctx context.Context) error {
			_, err := lam.Invoke(ctx, &lambda.InvokeInput{FunctionName: s("arn:aws:lambda:us-east-1:111122223333:function:resize:prod")})
			return err
		}, checks: []awsops.Check{ck("lambda:InvokeFunction", "arn:aws:lambda:us-east-1:111122223333:function:resize:prod")}},
		{name: "lambda Invoke partial ARN, Qualifier", call: func(ctx context.Context) error {
			_, err := lam.Invoke(ctx, &lambda.InvokeInput{FunctionName: s("111122223333:function:resize"), Qualifier: s("7")})
			return err
		}, checks: []awsops.Check{ck("lambda:InvokeFunction", "arn:aws:lambda:us-east-1:111122223333:function:resize:7")}},
		{name: "lambda GetFunction", call: func(ctx context.Context) error {
			_, err := lam.GetFunction(ctx, &lambda.GetFunctionInput{FunctionName: s("resize")})
			return err
		}, checks: []awsops.Check{ck("lambda:GetFunction", "arn:aws:lambda:us-east-1:111122223333:function:resize")}, readOnly: true},
		{name: "lambda ListFunctions", call: func(ctx context.Context) error {
			_, err := lam.ListFunctions(ctx, &lambda.ListFunctionsInput{})
			return err
		}, checks: []awsops.Check{ck("lambda:ListFunctions", "*")}, readOnly: true},
		{name: "ec2 DescribeInstances", call: func(ctx context.Context) error {
			_, err := e2.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{"i-1"}})
			return err
		}, checks: []awsops.Check{ck("ec2:DescribeInstances", "*")}, readOnly: true},
		{name: "sts GetCallerIdentity", call: func(ctx context.Context) error {
			_, err := st.GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
			return err
		}, checks: []awsops.Check{ck("sts:GetCallerIdentity", "*")}, readOnly: true, local: true},
		{name: "sts AssumeRole", call: func(ctx context.Context) error {
			_, err := st.AssumeRole(ctx, &sts.AssumeRoleInput{RoleArn: s("arn:aws:iam::111122223333:role/admin"), RoleSessionName: s("x")})
			return err
		}, refused: "AccessDenied"},
		{name: "sqs SendMessage", call: func(ctx context.Context) error {
			_, err := q.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: qurl, MessageBody: s("secret body")})
			return err
		}, checks: []awsops.Check{ck("sqs:SendMessage", "arn:aws:sqs:us-east-1:111122223333:jobs")}, params: map[string]string{"queue": "jobs"}},
		{name: "sqs ReceiveMessage", call: func(ctx context.Context) error {
			_, err := q.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: qurl})
			return err
		}, checks: []awsops.Check{ck("sqs:ReceiveMessage", "arn:aws:sqs:us-east-1:111122223333:jobs")}},
		{name: "sqs DeleteMessage", call: func(ctx context.Context) error {
			_, err := q.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: qurl, ReceiptHandle: s("rh")})
			return err
		}, checks: []awsops.Check{ck("sqs:DeleteMessage", "arn:aws:sqs:us-east-1:111122223333:jobs")}},
		{name: "sqs GetQueueUrl", call: func(ctx context.Context) error {
			_, err := q.GetQueueUrl(ctx, &sqs.GetQueueUrlInput{QueueName: s("jobs")})
			return err
		}, checks: []awsops.Check{ck("sqs:GetQueueUrl", "arn:aws:sqs:us-east-1:111122223333:jobs")}, readOnly: true},
		{name: "sqs GetQueueAttributes", call: func(ctx context.Context) error {
			_, err := q.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: qurl})
			return err
		}, checks: []awsops.Check{ck("sqs:GetQueueAttributes", "arn:aws:sqs:us-east-1:111122223333:jobs")}, readOnly: true},
		{name: "cloudwatch GetMetricData", call: func(ctx context.Context) error {
			_, err := cw.GetMetricData(ctx, &cloudwatch.GetMetricDataInput{StartTime: aws.Time(time0), EndTime: aws.Time(time0),
				MetricDataQueries: []cwtypes.MetricDataQuery{{Id: s("q1"), MetricStat: &cwtypes.MetricStat{Period: aws.Int32(60), Stat: s("Sum"),
					Metric: &cwtypes.Metric{Namespace: s("AWS/Lambda"), MetricName: s("Errors")}}}}})
			return err
		}, checks: []awsops.Check{ck("cloudwatch:GetMetricData", "*")}, readOnly: true, params: map[string]string{"queries": "1"}},
		{name: "cloudwatch ListMetrics", call: func(ctx context.Context) error {
			_, err := cw.ListMetrics(ctx, &cloudwatch.ListMetricsInput{Namespace: s("AWS/Lambda")})
			return err
		}, checks: []awsops.Check{ck("cloudwatch:ListMetrics", "*")}, readOnly: true, params: map[string]string{"namespace": "AWS/Lambda"}},
		{name: "cloudwatch DescribeAlarms", call: func(ctx context.Context) error {
			_, err := cw.DescribeAlarms(ctx, &cloudwatch.DescribeAlarmsInput{AlarmNames: []string{"high-5xx", "Äpp latency"}})
			return err
		}, checks: []awsops.Check{ck("cloudwatch:DescribeAlarms", "arn:aws:cloudwatch:us-east-1:111122223333:alarm:high-5xx"), ck("cloudwatch:DescribeAlarms", "arn:aws:cloudwatch:us-east-1:111122223333:alarm:Äpp latency")}, readOnly: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c.reqs = nil
			if err := tc.call(context.Background()); !errors.Is(err, errCaptured) {
				t.Fatalf("SDK call: %v", err)
			}
			if len(c.reqs) != 1 {
				t.Fatalf("%d requests captured", len(c.reqs))
			}
			r := c.reqs[0]
			if tc.refused != "" {
				var e *awsops.Error
				if _, err := awsops.Map(r); !errors.As(err, &e) || e.Code != tc.refused {
					t.Fatalf("Map: %v, want a %s refusal", err, tc.refused)
				}
				return
			}
			op, err := awsops.Map(r)
			if err != nil {
				t.Fatalf("Map(%s %s %s): %v", r.Method, r.Path, r.Header.Get("X-Amz-Target"), err)
			}
			got := slices.Clone(op.Checks)
			sortChecks(got)
			want := slices.Clone(tc.checks)
			sortChecks(want)
			if !slices.Equal(got, want) {
				t.Errorf("checks %v, want %v", got, want)
			}
			if op.ReadOnly != tc.readOnly || op.Local != tc.local || op.SecretResult != tc.secret {
				t.Errorf("readOnly %v local %v secret %v, want %v %v %v", op.ReadOnly, op.Local, op.SecretResult, tc.readOnly, tc.local, tc.secret)
			}
			for k, v := range tc.params {
				if op.Params[k] != v {
					t.Errorf("param %s = %q, want %q (all: %v)", k, op.Params[k], v, op.Params)
				}
			}
			for k, v := range op.Params {
				if bytes.Contains([]byte(v), []byte("secret")) {
					t.Errorf("param %s records a value: %q", k, v)
				}
			}
			t.Logf("%s %s: %s %v", op.Protocol, op.Operation, r.Header.Get("Content-Type"), op.Params)
		})
	}
}

var time0 = time.Unix(1700000000, 0)

func ck(action, resource string) awsops.Check {
	return awsops.Check{Action: action, Resource: resource}
}

func sortChecks(c []awsops.Check) {
	slices.SortFunc(c, func(a, b awsops.Check) int {
		if a.Action != b.Action {
			if a.Action < b.Action {
				return -1
			}
			return 1
		}
		if a.Resource < b.Resource {
			return -1
		}
		if a.Resource > b.Resource {
			return 1
		}
		return 0
	})
}
