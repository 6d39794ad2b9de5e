package awsops

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// cliRequest is a request a real client sent to a local listener,
// recorded in testdata/cli (the Debian AWS CLI 2.9.19 with
// --endpoint-url) and testdata/js (the AWS SDK for JavaScript v3,
// clients 3.1164, with endpoint set); signature headers are dropped and
// the service comes from the file name.
type cliRequest struct {
	Method, Path, Body string
	Headers            map[string]string
}

func loadCLI(t testing.TB, file string) *Request {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var c cliRequest
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	h := http.Header{}
	for k, v := range c.Headers {
		h.Set(k, v)
	}
	svc, _, _ := strings.Cut(filepath.Base(file), "-")
	if svc == "cloudwatch" {
		svc = "monitoring"
	}
	path, query, _ := strings.Cut(c.Path, "?")
	return &Request{Service: svc, Region: region, Account: account, Method: c.Method, Path: path, RawQuery: query, Header: h, Body: []byte(c.Body)}
}

func TestCLIRequests(t *testing.T) {
	want := map[string][]Check{
		"cloudwatch-describe-alarms":      {{"cloudwatch:DescribeAlarms", "arn:aws:cloudwatch:us-east-1:111122223333:alarm:a"}, {"cloudwatch:DescribeAlarms", "arn:aws:cloudwatch:us-east-1:111122223333:alarm:b"}},
		"cloudwatch-get-metric-data":      {{"cloudwatch:GetMetricData", "*"}},
		"dynamodb-batch-write-item":       {{"dynamodb:BatchWriteItem", ddb + "audit"}, {"dynamodb:BatchWriteItem", ddb + "orders"}},
		"dynamodb-get-item":               {{"dynamodb:GetItem", ddb + "orders"}},
		"ec2-describe-instances":          {{"ec2:DescribeInstances", "*"}},
		"kms-decrypt":                     {{"kms:Decrypt", "*"}},
		"lambda-invoke":                   {{"lambda:InvokeFunction", "arn:aws:lambda:us-east-1:111122223333:function:resize"}},
		"logs-filter-log-events":          {{"logs:FilterLogEvents", lg + "/app/web"}},
		"logs-start-query":                {{"logs:StartQuery", lg + "/app/web"}, {"logs:StartQuery", lg + "/app/worker"}},
		"secretsmanager-get-secret-value": {{"secretsmanager:GetSecretValue", "arn:aws:secretsmanager:us-east-1:111122223333:secret:prod/db"}},
		"sns-publish":                     {{"sns:Publish", "arn:aws:sns:us-east-1:111122223333:alerts"}},
		"sqs-send-message":                {{"sqs:SendMessage", "arn:aws:sqs:us-east-1:111122223333:jobs"}},
		"ssm-get-parameter":               {{"ssm:GetParameter", "arn:aws:ssm:us-east-1:111122223333:parameter/app/db"}},
		"sts-get-caller-identity":         {{"sts:GetCallerIdentity", "*"}},
	}
	checkRecorded(t, "testdata/cli", want)
}

func TestJSRequests(t *testing.T) {
	want := map[string][]Check{
		"cloudwatch-describe-alarms":    {{"cloudwatch:DescribeAlarms", "arn:aws:cloudwatch:us-east-1:111122223333:alarm:high-5xx"}},
		"cloudwatch-get-metric-data":    {{"cloudwatch:GetMetricData", "*"}},
		"dynamodb-batch-write-item":     {{"dynamodb:BatchWriteItem", ddb + "audit"}, {"dynamodb:BatchWriteItem", ddb + "orders"}},
		"dynamodb-get-item":             {{"dynamodb:GetItem", ddb + "orders"}},
		"dynamodb-query-index":          {{"dynamodb:Query", ddb + "orders/index/by-customer"}},
		"dynamodb-transact-write-items": {{"dynamodb:PutItem", ddb + "orders"}, {"dynamodb:UpdateItem", ddb + "carts"}},
		"lambda-invoke":                 {{"lambda:InvokeFunction", "arn:aws:lambda:us-east-1:111122223333:function:resize:prod"}},
		"logs-filter-log-events":        {{"logs:FilterLogEvents", lg + "/app/web"}},
		"logs-get-log-events":           {{"logs:GetLogEvents", lg + "/app/web:log-stream:i-1"}},
		"logs-start-query":              {{"logs:StartQuery", lg + "/app/web"}},
		"sqs-receive-message":           {{"sqs:ReceiveMessage", "arn:aws:sqs:us-east-1:111122223333:jobs"}},
		"sqs-send-message":              {{"sqs:SendMessage", "arn:aws:sqs:us-east-1:111122223333:jobs"}},
		"ssm-get-parameters":            {{"ssm:GetParameters", "arn:aws:ssm:us-east-1:111122223333:parameter/app/a"}, {"ssm:GetParameters", "arn:aws:ssm:us-east-1:111122223333:parameter/app/b"}},
		"sts-get-caller-identity":       {{"sts:GetCallerIdentity", "*"}},
	}
	checkRecorded(t, "testdata/js", want)
}

// checkRecorded maps every recorded request in dir and compares its
// checks with want (by file name); no param may hold a value.
func checkRecorded(t *testing.T, dir string, want map[string][]Check) {
	files, _ := filepath.Glob(dir + "/*.json")
	if len(files) != len(want) {
		t.Fatalf("%d recorded requests, %d expectations", len(files), len(want))
	}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".json")
		t.Run(name, func(t *testing.T) {
			op := mustMap(t, loadCLI(t, f))
			got, w := slices.Clone(op.Checks), slices.Clone(want[name])
			sortChecks(got)
			sortChecks(w)
			if !slices.Equal(got, w) {
				t.Fatalf("checks %v, want %v", got, w)
			}
			for k, v := range op.Params {
				if strings.Contains(v, "hi") && (name == "sqs-send-message" || name == "sns-publish") || strings.Contains(v, "secret") {
					t.Errorf("param %s records a value: %q", k, v)
				}
			}
		})
	}
}
