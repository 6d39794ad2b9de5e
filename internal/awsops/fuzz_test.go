package awsops

import (
	"errors"
	"net/http"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"
)

var (
	fuzzActionRE = regexp.MustCompile(`^[a-z][a-z0-9-]{0,31}:[A-Za-z][A-Za-z0-9]{0,127}$`)
	fuzzARNRE    = regexp.MustCompile(`^arn:aws:[a-z0-9-]+:` + region + `:` + account + `:`)
)

// FuzzMap feeds arbitrary requests to Map and checks what must hold for
// any input: no panic; a refusal is a complete *Error with nothing
// unescaped in its text; a mapping has at least one check, every action
// is service:Operation, every resource is "*" or an ARN in the target's
// region and account, params are bounded UTF-8; the same input maps the
// same way twice.
func FuzzMap(f *testing.F) {
	files, _ := filepath.Glob("testdata/cli/*.json")
	js, _ := filepath.Glob("testdata/js/*.json")
	files = append(files, js...)
	for _, file := range files {
		r := loadCLI(f, file)
		f.Add(r.Service, r.Header.Get("X-Amz-Target"), uint8(0), r.Method, r.Path, r.RawQuery, r.Header.Get("Content-Type"), r.Body)
	}
	seeds := []struct {
		svc, target                   string
		flags                         uint8
		method, path, query, ct, body string
	}{
		{"dynamodb", "DynamoDB_20120810.TransactWriteItems", 0, "POST", "/", "", "application/x-amz-json-1.0", `{"TransactItems":[{"Put":{"TableName":"orders","Item":{"a":{"S":"x"}}}},{"ConditionCheck":{"TableName":"t2","Key":{}}}]}`},
		{"dynamodb", "DynamoDB_20120810.BatchGetItem", 0, "POST", "/", "", "application/x-amz-json-1.0", `{"RequestItems":{"orders":{"Keys":[{"id":{"S":"1"}}]},"arn:aws:dynamodb:us-east-1:111122223333:table/b":{"Keys":[]}}}`},
		{"dynamodb", "DynamoDB_20120810.Query", 0, "POST", "/", "", "application/x-amz-json-1.0", `{"TableName":"orders","IndexName":"idx","KeyConditionExpression":"#a = :v"}`},
		{"logs", "Logs_20140328.GetLogEvents", 0, "POST", "/", "", "application/x-amz-json-1.1", `{"logGroupIdentifier":"arn:aws:logs:us-east-1:111122223333:log-group:/a:*","logStreamName":"ü"}`},
		{"ssm", "AmazonSSM.GetParametersByPath", 0, "POST", "/", "", "application/x-amz-json-1.1", `{"Path":"/app/","Recursive":true,"WithDecryption":true}`},
		{"kms", "TrentService.Encrypt", 0, "POST", "/", "", "application/x-amz-json-1.1", `{"KeyId":"alias/x","Plaintext":"c2VjcmV0"}`},
		{"sqs", "AmazonSQS.GetQueueUrl", 0, "POST", "/", "", "application/x-amz-json-1.0", `{"QueueName":"jobs.fifo"}`},
		{"sqs", "", 0, "POST", "/111122223333/jobs", "", "application/x-www-form-urlencoded", `Action=ReceiveMessage&Version=2012-11-05`},
		{"monitoring", "", 1, "POST", "/service/GraniteServiceVersion20100801/operation/DescribeAlarms", "", "application/cbor", "\xa1\x6aAlarmNames\x82\x61a\x62\xc3\xa4"},
		{"monitoring", "", 1, "POST", "/service/GraniteServiceVersion20100801/operation/GetMetricData", "", "application/cbor", "\xbf\x71MetricDataQueries\x9f\xa1\x62Id\x62q1\xff\xff"},
		{"lambda", "", 0, "POST", "/2015-03-31/functions/arn:aws:lambda:us-east-1:111122223333:function:f:1/invocations", "Qualifier=1", "", `{}`},
		{"lambda", "", 0, "GET", "/2015-03-31/functions/", "MaxItems=10", "", ``},
		{"kinesis", "Kinesis_20131202.GetRecords", 0, "POST", "/", "", "application/x-amz-json-1.1", `{"ShardIterator":"x","StreamARN":"arn:aws:kinesis:us-east-1:111122223333:stream/s"}`},
		{"ecs", "AmazonEC2ContainerServiceV20141113.DescribeServices", 0, "POST", "/", "", "application/x-amz-json-1.1", `{"cluster":"prod","services":["web","arn:aws:ecs:us-east-1:111122223333:service/prod/api"]}`},
		{"sns", "", 0, "POST", "/", "", "application/x-www-form-urlencoded", `Action=Publish&TargetArn=arn%3Aaws%3Asns%3Aus-east-1%3A111122223333%3Aendpoint%2FGCM%2Fapp%2Fx&Message=m`},
	}
	for _, s := range seeds {
		f.Add(s.svc, s.target, s.flags, s.method, s.path, s.query, s.ct, []byte(s.body))
	}
	f.Fuzz(func(t *testing.T, svc, target string, flags uint8, method, path, query, ct string, body []byte) {
		mk := func() *Request {
			h := http.Header{}
			if target != "" {
				h.Set("X-Amz-Target", target)
			}
			if flags&1 != 0 {
				h.Set("Smithy-Protocol", "rpc-v2-cbor")
			}
			if flags&2 != 0 {
				h.Add("X-Amz-Target", target)
			}
			if flags&4 != 0 {
				h.Set("Content-Encoding", "gzip")
			}
			if ct != "" {
				h.Set("Content-Type", ct)
			}
			return &Request{Service: svc, Region: region, Account: account, Method: method, Path: path, RawQuery: query, Header: h, Body: body}
		}
		op, err := Map(mk())
		op2, err2 := Map(mk())
		if !reflect.DeepEqual(op, op2) || (err == nil) != (err2 == nil) || (err != nil && err.Error() != err2.Error()) {
			t.Fatalf("not deterministic: %v %v / %v %v", op, err, op2, err2)
		}
		if err != nil {
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("error %T", err)
			}
			if e.Code == "" || e.Status < 400 || e.Msg == "" || e.Service != svc {
				t.Fatalf("incomplete error %+v", e)
			}
			if msg := e.Msg; !utf8.ValidString(msg) || strings.ContainsFunc(msg, func(r rune) bool { return r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || r == 0x202e }) {
				t.Fatalf("unescaped message %q", msg)
			}
			if strings.ContainsFunc(e.Operation, func(r rune) bool { return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') }) {
				t.Fatalf("operation %q in an error", e.Operation)
			}
			return
		}
		if len(op.Checks) == 0 || op.Service != svc || op.Operation == "" {
			t.Fatalf("incomplete op %+v", op)
		}
		for _, c := range op.Checks {
			if !fuzzActionRE.MatchString(c.Action) {
				t.Fatalf("action %q", c.Action)
			}
			if c.Resource != "*" && !fuzzARNRE.MatchString(c.Resource) {
				t.Fatalf("resource %q not in the target's region and account", c.Resource)
			}
			if strings.ContainsFunc(c.Resource, func(r rune) bool { return r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) }) || !utf8.ValidString(c.Resource) {
				t.Fatalf("resource %q", c.Resource)
			}
		}
		for k, v := range op.Params {
			if len(v) > MaxParam || !utf8.ValidString(v) {
				t.Fatalf("param %s: %d bytes %q", k, len(v), v)
			}
		}
	})
}
