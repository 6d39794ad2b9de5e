package awsgw

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go"

	"github.com/airlock-dev/airlock/internal/awsfake"
	"github.com/airlock-dev/airlock/internal/gateway"
)

// fakeServices are the services awsfake answers, each at its own URL.
var fakeServices = []string{"logs", "ssm", "lambda", "ec2", "sts", "sqs", "dynamodb"}

// svcEnv is a gateway whose target sends every service but S3 to a
// SigV4-verifying fake of that service.
type svcEnv struct {
	*env
	fakes map[string]*awsfake.Server
}

func newSvcEnv(t *testing.T, opts ...envOpt) *svcEnv {
	t.Helper()
	fakes := map[string]*awsfake.Server{}
	eps := map[string]string{}
	for _, svc := range fakeServices {
		f := awsfake.Start(svc, testRegion, upstreamAK, upstreamSK)
		t.Cleanup(f.Close)
		fakes[svc], eps[svc] = f, f.URL
	}
	opts = append([]envOpt{func(o *Options) { o.Targets[0].Endpoints = eps }}, opts...)
	e := newEnv(t, opts...)
	return &svcEnv{env: e, fakes: fakes}
}

// cfg is an SDK configuration with g's credentials, aimed at the gateway.
func (e *svcEnv) cfg(g *gateway.Grant) aws.Config {
	return aws.Config{
		Region:           testRegion,
		BaseEndpoint:     aws.String(e.srv.URL),
		Credentials:      credentials.NewStaticCredentialsProvider(g.CredentialID, g.Secret, g.SessionToken),
		RetryMaxAttempts: 1,
		HTTPClient:       e.srv.Client(),
	}
}

// upstreamSaw checks that svc's fake verified exactly n requests, each
// signed with the target's key for that service and region.
func (e *svcEnv) upstreamSaw(t *testing.T, svc string, n int) []awsfake.Request {
	t.Helper()
	got := e.fakes[svc].Requests()
	if len(got) != n {
		t.Fatalf("%s upstream saw %d requests, want %d (rejected: %v)", svc, len(got), n, e.fakes[svc].Rejected())
	}
	for _, r := range got {
		if r.AccessKeyID != upstreamAK || r.Service != svc || r.Region != testRegion {
			t.Fatalf("%s upstream request signed by %s for %s/%s", svc, r.AccessKeyID, r.Service, r.Region)
		}
		if r.Header.Get("X-Amz-Security-Token") != "" {
			t.Fatalf("the agent's session token reached the upstream")
		}
	}
	return got
}

// svcARN is the ARN of res in svc for the test target's region and
// account.
func svcARN(svc, res string) string {
	return "arn:aws:" + svc + ":" + testRegion + ":" + testAccount + ":" + res
}

func apiCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	if err == nil {
		return ""
	}
	return err.Error()
}

func apiMessage(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorMessage()
	}
	return ""
}

// lastRequest is the last request record of g.
func (e *svcEnv) lastRequest(t *testing.T, g *gateway.Grant) gateway.Call {
	t.Helper()
	rs := e.requests(g)
	if len(rs) == 0 {
		t.Fatal("no request recorded")
	}
	return rs[len(rs)-1]
}

// TestServiceClientsGo drives every service through the gateway with the
// Go SDK v2's own clients: each call is verified, mapped, scoped,
// recorded and re-signed for the upstream with the target's keys.
func TestServiceClientsGo(t *testing.T) {
	e := newSvcEnv(t)
	arn := svcARN
	g := e.grant(
		"logs:FilterLogEvents,logs:GetLogEvents "+arn("logs", "log-group:/app/api"),
		"ssm:GetParameter,ssm:GetParameters "+arn("ssm", "parameter/app/db/*"),
		"lambda:InvokeFunction,lambda:GetFunction "+arn("lambda", "function:triage-helper"),
		"lambda:ListFunctions *",
		"ec2:DescribeInstances *",
		"sts:GetCallerIdentity *",
		"sqs:SendMessage,sqs:ReceiveMessage,sqs:DeleteMessage "+arn("sqs", "jobs"),
		"dynamodb:GetItem,dynamodb:PutItem "+arn("dynamodb", "table/orders"),
	)
	ctx := context.Background()
	cfg := e.cfg(g)

	logs := cloudwatchlogs.NewFromConfig(cfg)
	fl, err := logs.FilterLogEvents(ctx, &cloudwatchlogs.FilterLogEventsInput{LogGroupName: aws.String("/app/api"), FilterPattern: aws.String("ERROR")})
	if err != nil || len(fl.Events) != 2 || !strings.Contains(*fl.Events[0].Message, "payment timeout") {
		t.Fatalf("FilterLogEvents: %v %+v", err, fl)
	}
	rec := e.lastRequest(t, g)
	if !rec.Allowed || rec.Action != "logs:FilterLogEvents" || rec.Resource != arn("logs", "log-group:/app/api") ||
		rec.Params["service"] != "logs" || rec.Params["operation"] != "FilterLogEvents" || rec.Params["filterPattern"] != "ERROR" || rec.Params["logGroup"] != "/app/api" {
		t.Fatalf("record %+v", rec)
	}
	up := e.upstreamSaw(t, "logs", 1)
	if up[0].Target != "Logs_20140328.FilterLogEvents" || !bytes.Contains(up[0].Body, []byte(`"/app/api"`)) {
		t.Fatalf("upstream got %+v", up[0])
	}
	_, err = logs.FilterLogEvents(ctx, &cloudwatchlogs.FilterLogEventsInput{LogGroupName: aws.String("/app/payments")})
	if apiCode(err) != "AccessDeniedException" || !strings.Contains(apiMessage(err), "logs FilterLogEvents needs logs:FilterLogEvents on "+arn("logs", "log-group:/app/payments")) {
		t.Fatalf("other log group: %v", err)
	}
	e.upstreamSaw(t, "logs", 1)
	if rec := e.lastRequest(t, g); rec.Allowed || rec.Resource != arn("logs", "log-group:/app/payments") {
		t.Fatalf("denied record %+v", rec)
	}

	sm := ssm.NewFromConfig(cfg)
	gp, err := sm.GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String("/app/db/url")})
	if err != nil || *gp.Parameter.Value != "value-of-/app/db/url" {
		t.Fatalf("GetParameter: %v", err)
	}
	_, err = sm.GetParameters(ctx, &ssm.GetParametersInput{Names: []string{"/app/db/url", "/app/payments/key"}})
	if apiCode(err) != "AccessDeniedException" || !strings.Contains(apiMessage(err), "parameter/app/payments/key") {
		t.Fatalf("GetParameters naming a second parameter: %v", err)
	}
	e.upstreamSaw(t, "ssm", 1)

	lm := lambda.NewFromConfig(cfg)
	inv, err := lm.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String("triage-helper"), Payload: []byte(`{"order":42}`)})
	if err != nil || !strings.Contains(string(inv.Payload), `"received":12`) {
		t.Fatalf("Invoke: %v %+v", err, inv)
	}
	if _, err := lm.GetFunction(ctx, &lambda.GetFunctionInput{FunctionName: aws.String("triage-helper")}); err != nil {
		t.Fatalf("GetFunction: %v", err)
	}
	if _, err := lm.ListFunctions(ctx, &lambda.ListFunctionsInput{}); err != nil {
		t.Fatalf("ListFunctions: %v", err)
	}
	if _, err := lm.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String("deploy-prod")}); apiCode(err) != "AccessDeniedException" {
		t.Fatalf("Invoke of another function: %v", err)
	}
	e.upstreamSaw(t, "lambda", 3)

	ec := ec2.NewFromConfig(cfg)
	di, err := ec.DescribeInstances(ctx, &ec2.DescribeInstancesInput{})
	if err != nil || len(di.Reservations) != 1 || *di.Reservations[0].Instances[0].InstanceId != "i-1234567890abcdef0" {
		t.Fatalf("DescribeInstances: %v", err)
	}
	if _, err := ec.DescribeRegions(ctx, &ec2.DescribeRegionsInput{}); apiCode(err) != "UnauthorizedOperation" {
		t.Fatalf("DescribeRegions outside the scope: %v", err)
	}
	e.upstreamSaw(t, "ec2", 1)

	id, err := sts.NewFromConfig(cfg).GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	if err != nil || *id.Account != testAccount || *id.UserId != g.ID || *id.Arn != "arn:aws:sts::"+testAccount+":assumed-role/airlock/log-triage-bot" {
		t.Fatalf("GetCallerIdentity: %v %+v", err, id)
	}
	e.upstreamSaw(t, "sts", 0)
	if rec := e.lastRequest(t, g); rec.Action != "sts:GetCallerIdentity" || rec.Params["answered_by"] != "airlock" {
		t.Fatalf("GetCallerIdentity record %+v", rec)
	}

	q := sqs.NewFromConfig(cfg)
	queue := aws.String("https://sqs." + testRegion + ".amazonaws.com/" + testAccount + "/jobs")
	if _, err := q.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: queue, MessageBody: aws.String("reindex")}); err != nil {
		t.Fatalf("SendMessage: %v", err)
	}
	rm, err := q.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: queue})
	if err != nil || len(rm.Messages) != 1 {
		t.Fatalf("ReceiveMessage: %v", err)
	}
	if _, err := q.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: queue, ReceiptHandle: rm.Messages[0].ReceiptHandle}); err != nil {
		t.Fatalf("DeleteMessage: %v", err)
	}
	if _, err := q.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String("https://sqs." + testRegion + ".amazonaws.com/" + testAccount + "/payments"), MessageBody: aws.String("x")}); apiCode(err) != "AccessDenied" { // Query-compatible: the Query code

		t.Fatalf("SendMessage to another queue: %v", err)
	}
	e.upstreamSaw(t, "sqs", 3)

	db := dynamodb.NewFromConfig(cfg)
	it, err := db.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String("orders"), Key: map[string]ddbtypes.AttributeValue{"id": &ddbtypes.AttributeValueMemberS{Value: "42"}}})
	if err != nil || it.Item["status"].(*ddbtypes.AttributeValueMemberS).Value != "shipped" {
		t.Fatalf("GetItem: %v", err)
	}
	if _, err := db.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String("customers"), Key: map[string]ddbtypes.AttributeValue{"id": &ddbtypes.AttributeValueMemberS{Value: "1"}}}); apiCode(err) != "AccessDeniedException" {
		t.Fatalf("GetItem on another table: %v", err)
	}
	e.upstreamSaw(t, "dynamodb", 1)

	// Every forwarded call has a result with its status and sizes.
	res := e.results(g, 11)
	for _, r := range res {
		if r.Status == "" || r.Params["request_id"] == "" {
			t.Fatalf("result %+v", r)
		}
	}
	for _, c := range e.auth.Calls(g.ID) {
		if c.Kind == "request" && c.Params["operation"] == "GetParameter" && c.Allowed {
			for k, v := range c.Params {
				if strings.Contains(v, "value-of-") {
					t.Fatalf("a parameter's value was recorded in %s", k)
				}
			}
		}
	}
}

// rawCall sends a hand-made request signed for service as an SDK would
// (the body's digest signed, not sent).
func (e *svcEnv) rawCall(t *testing.T, g *gateway.Grant, service, region, host string, header http.Header, body []byte) (int, http.Header, []byte) {
	t.Helper()
	return e.rawRequest(t, g, "POST", "/", service, region, host, header, body)
}

// rawRequest is rawCall with a method and a path (and query string).
func (e *svcEnv) rawRequest(t *testing.T, g *gateway.Grant, method, pathQuery, service, region, host string, header http.Header, body []byte) (int, http.Header, []byte) {
	t.Helper()
	req, _ := http.NewRequest(method, e.srv.URL+pathQuery, bytes.NewReader(body))
	for k, v := range header {
		req.Header[k] = v
	}
	if host != "" {
		req.Host = host
	}
	sum := sha256.Sum256(body)
	creds := aws.Credentials{AccessKeyID: g.CredentialID, SecretAccessKey: g.Secret, SessionToken: g.SessionToken}
	if err := v4.NewSigner().SignHTTP(context.Background(), creds, req, hex.EncodeToString(sum[:]), service, region, time.Now()); err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b
}

func jsonHeader(target string) http.Header {
	return http.Header{"Content-Type": {"application/x-amz-json-1.0"}, "X-Amz-Target": {target}}
}

// TestServiceHostile sends what no SDK would, and checks each is refused
// in the service's error shape and never reaches the upstream.
func TestServiceHostile(t *testing.T) {
	e := newSvcEnv(t)
	table := func(n string) string { return "arn:aws:dynamodb:" + testRegion + ":" + testAccount + ":table/" + n }
	g := e.grant("dynamodb:GetItem,dynamodb:BatchWriteItem " + table("orders"))
	getOrders := []byte(`{"TableName":"orders","Key":{"id":{"S":"1"}}}`)

	tests := []struct {
		name, service, region, host string
		header                      http.Header
		body                        []byte
		status                      int
		code                        string
	}{
		{"allowed", "dynamodb", testRegion, "", jsonHeader("DynamoDB_20120810.GetItem"), getOrders, 200, ""},
		{"target of another service", "dynamodb", testRegion, "", jsonHeader("Logs_20140328.FilterLogEvents"), []byte(`{"logGroupName":"/app/api"}`), 403, "AccessDeniedException"},
		{"duplicate targets", "dynamodb", testRegion, "", http.Header{"Content-Type": {"application/x-amz-json-1.0"}, "X-Amz-Target": {"DynamoDB_20120810.GetItem", "DynamoDB_20120810.DeleteTable"}}, getOrders, 400, "SerializationException"},
		{"batch naming a second table", "dynamodb", testRegion, "", jsonHeader("DynamoDB_20120810.BatchWriteItem"),
			[]byte(`{"RequestItems":{"orders":[{"PutRequest":{"Item":{"id":{"S":"1"}}}}],"customers":[{"DeleteRequest":{"Key":{"id":{"S":"1"}}}}]}}`), 403, "AccessDeniedException"},
		{"JSON with a duplicate key naming a second table", "dynamodb", testRegion, "", jsonHeader("DynamoDB_20120810.GetItem"), []byte(`{"TableName":"orders","TableName":"customers","Key":{"id":{"S":"1"}}}`), 400, "SerializationException"},
		{"unicode look-alike table name", "dynamodb", testRegion, "", jsonHeader("DynamoDB_20120810.GetItem"), []byte(`{"TableName":"ord\u0435rs","Key":{"id":{"S":"1"}}}`), 400, "ValidationException"},
		{"malformed body", "dynamodb", testRegion, "", jsonHeader("DynamoDB_20120810.GetItem"), []byte(`{"TableName":"orders",`), 400, "SerializationException"},
		{"oversized body", "dynamodb", testRegion, "", jsonHeader("DynamoDB_20120810.GetItem"), append(append([]byte(`{"TableName":"orders","Pad":"`), bytes.Repeat([]byte("x"), 1<<20)...), '"', '}'), 413, "RequestEntityTooLargeException"},
		{"credential scope for another region", "dynamodb", "eu-west-1", "", jsonHeader("DynamoDB_20120810.GetItem"), getOrders, 400, "InvalidSignatureException"},
		{"signed host of a non-AWS domain", "dynamodb", testRegion, "evil.example.com", jsonHeader("DynamoDB_20120810.GetItem"), getOrders, 403, "AccessDeniedException"},
		{"signed host of the real service", "dynamodb", testRegion, "dynamodb.us-east-1.amazonaws.com", jsonHeader("DynamoDB_20120810.GetItem"), getOrders, 403, "AccessDeniedException"},
	}
	forwarded := 0
	for _, tt := range tests {
		status, h, body := e.rawCall(t, g, tt.service, tt.region, tt.host, tt.header, tt.body)
		if tt.status == 200 {
			forwarded++
		}
		if status != tt.status {
			t.Errorf("%s: status %d, want %d: %s", tt.name, status, tt.status, body)
			continue
		}
		if tt.code == "" {
			continue
		}
		var j struct {
			Type    string `json:"__type"`
			Message string `json:"message"`
		}
		if err := json.Unmarshal(body, &j); err != nil || j.Type != tt.code || h.Get("X-Amzn-Errortype") != tt.code || j.Message == "" {
			t.Errorf("%s: %s %q %v", tt.name, h.Get("X-Amzn-Errortype"), body, err)
		}
	}
	e.upstreamSaw(t, "dynamodb", forwarded)
	if len(e.auth.Rejections()) < 3 {
		t.Errorf("rejections recorded: %+v", e.auth.Rejections())
	}
}

// TestServiceReadHeldUntilDurable: a read's answer is discarded, and the
// call refused, when its record cannot be written.
func TestServiceReadHeldUntilDurable(t *testing.T) {
	e := newSvcEnv(t)
	g := e.grant("logs:FilterLogEvents arn:aws:logs:" + testRegion + ":" + testAccount + ":log-group:/app/api")
	logs := cloudwatchlogs.NewFromConfig(e.cfg(g))
	if _, err := logs.FilterLogEvents(context.Background(), &cloudwatchlogs.FilterLogEventsInput{LogGroupName: aws.String("/app/api")}); err != nil {
		t.Fatal(err)
	}
	e.auth.FailRecords(true)
	out, err := logs.FilterLogEvents(context.Background(), &cloudwatchlogs.FilterLogEventsInput{LogGroupName: aws.String("/app/api")})
	if apiCode(err) != "ServiceUnavailableException" || out != nil {
		t.Fatalf("unrecorded read: %v %+v", err, out)
	}
}

// TestServiceOwnErrorHeldUntilDurable: the gateway's own answer to a read
// (here: its upstream could not be reached) waits for the read's record
// too, as S3's does: when the record fails, the client is told only that,
// not news of the upstream, and no result is recorded for a call the log
// does not hold.
func TestServiceOwnErrorHeldUntilDurable(t *testing.T) {
	e := newSvcEnv(t)
	g := e.grant("logs:FilterLogEvents arn:aws:logs:" + testRegion + ":" + testAccount + ":log-group:/app/api")
	logs := cloudwatchlogs.NewFromConfig(e.cfg(g))
	if _, err := logs.FilterLogEvents(context.Background(), &cloudwatchlogs.FilterLogEventsInput{LogGroupName: aws.String("/app/api")}); err != nil {
		t.Fatal(err)
	}
	e.fakes["logs"].Close()
	e.auth.FailRecords(true)
	_, err := logs.FilterLogEvents(context.Background(), &cloudwatchlogs.FilterLogEventsInput{LogGroupName: aws.String("/app/api")})
	var ae smithy.APIError
	if !errors.As(err, &ae) || ae.ErrorCode() != "ServiceUnavailableException" || !strings.Contains(ae.ErrorMessage(), "could not record this call") {
		t.Fatalf("an unrecorded read whose upstream is down: %v, want ServiceUnavailableException saying the call could not be recorded", err)
	}
}
