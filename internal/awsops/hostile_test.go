package awsops

import (
	"bytes"
	"net/http"
	"strings"
	"testing"

	"github.com/airlock-dev/airlock/internal/scope"
)

func cborReq(op string, body []byte) *Request {
	h := http.Header{}
	h.Set("Smithy-Protocol", "rpc-v2-cbor")
	h.Set("Content-Type", "application/cbor")
	return &Request{Service: "monitoring", Region: region, Account: account, Method: "POST",
		Path: "/service/GraniteServiceVersion20100801/operation/" + op, Header: h, Body: body}
}

func lambdaReq(method, path, query string) *Request {
	return &Request{Service: "lambda", Region: region, Account: account, Method: method, Path: path, RawQuery: query, Header: http.Header{}}
}

// TestHostileRefused lists requests an agent could craft to reach more
// than the checks say; each must be refused.
func TestHostileRefused(t *testing.T) {
	deep := strings.Repeat(`{"a":`, 20) + `{"k":1,"k":2}` + strings.Repeat(`}`, 20)
	twoTargets := jsonReq("dynamodb", "DynamoDB_20120810.GetItem", `{"TableName":"orders"}`)
	twoTargets.Header.Add("X-Amz-Target", "DynamoDB_20120810.DeleteTable")
	formCT := jsonReq("sqs", "AmazonSQS.SendMessage", `{"QueueUrl":"https://sqs.us-east-1.amazonaws.com/111122223333/jobs","MessageBody":"&Action=DeleteQueue&"}`)
	formCT.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	actionInQuery := jsonReq("sqs", "AmazonSQS.SendMessage", `{"QueueUrl":"https://sqs.us-east-1.amazonaws.com/111122223333/jobs"}`)
	actionInQuery.RawQuery = "Action=DeleteQueue"
	encodedAction := jsonReq("sqs", "AmazonSQS.SendMessage", `{"QueueUrl":"https://sqs.us-east-1.amazonaws.com/111122223333/jobs"}`)
	encodedAction.RawQuery = "Acti%6Fn=DeleteQueue"
	badEscape := jsonReq("sqs", "AmazonSQS.SendMessage", `{"QueueUrl":"https://sqs.us-east-1.amazonaws.com/111122223333/jobs"}`)
	badEscape.RawQuery = "x=%zz"
	encodedOperation := cborReq("ListMetrics", []byte{0xa0})
	encodedOperation.RawQuery = "%4Fperation=DeleteAlarms"
	gz := jsonReq("dynamodb", "DynamoDB_20120810.GetItem", `{"TableName":"orders"}`)
	gz.Header.Set("Content-Encoding", "gzip")
	both := jsonReq("monitoring", "GraniteServiceVersion20100801.ListMetrics", `{}`)
	both.Header.Set("Smithy-Protocol", "rpc-v2-cbor")
	big := jsonReq("dynamodb", "DynamoDB_20120810.GetItem", `{"TableName":"orders","Key":{"id":{"S":"`+strings.Repeat("x", MaxBody)+`"}}}`)
	many := jsonReq("ssm", "AmazonSSM.GetParameters", `{"Names":["a"`+strings.Repeat(`,"a"`, maxNodes)+`]}`)
	queryAndBody := queryReq("sqs", "Action=SendMessage&QueueUrl=https%3A%2F%2Fsqs.us-east-1.amazonaws.com%2F111122223333%2Fjobs")
	queryAndBody.RawQuery = "Action=DeleteQueue"
	pathQueue := queryReq("sqs", "Action=SendMessage&QueueUrl=https%3A%2F%2Fsqs.us-east-1.amazonaws.com%2F111122223333%2Fjobs")
	pathQueue.Path = "/111122223333/other"
	cborAsJSON := cborReq("ListMetrics", []byte{0xa0})
	cborAsJSON.Header.Set("Content-Type", "application/json")
	cborOther := cborReq("ListMetrics", []byte{0xa0})
	cborOther.Service = "logs"

	cases := []struct {
		name string
		r    *Request
		code string
	}{
		{"target for another service", jsonReq("logs", "DynamoDB_20120810.DeleteTable", `{"TableName":"orders"}`), "AccessDeniedException"},
		{"target of an unknown service", jsonReq("dynamodb", "Evil_1.GetItem", `{}`), "AccessDeniedException"},
		{"control character in the target", jsonReq("dynamodb", "DynamoDB_20120810.Get\x1b[2KItem", `{}`), "ValidationException"},
		{"control character in the Action", queryReq("sts", "Action=Get%1B%5B2KCallerIdentity"), "ValidationError"},
		{"bidi override in the Action", queryReq("sts", "Action=Get%E2%80%AECallerIdentity"), "ValidationError"},
		{"control character in a CBOR operation", cborReq("List\x1bMetrics", []byte{0xa0}), "ValidationException"},
		{"target without operation", jsonReq("dynamodb", "DynamoDB_20120810", `{}`), "SerializationException"},
		{"target with two dots", jsonReq("dynamodb", "DynamoDB_20120810.GetItem.x", `{}`), "SerializationException"},
		{"two X-Amz-Target headers", twoTargets, "SerializationException"},
		{"X-Amz-Target and Smithy-Protocol", both, "SerializationException"},
		{"JSON target with a form content type", formCT, "SerializationException"},
		{"JSON target with a query Action", actionInQuery, "SerializationException"},
		{"JSON target with a percent-encoded query Action", encodedAction, "SerializationException"},
		{"CBOR call with a percent-encoded query Operation", encodedOperation, "SerializationException"},
		{"JSON target with an undecodable query", badEscape, "SerializationException"},
		{"JSON target with a path naming another queue", func() *Request {
			r := jsonReq("sqs", "AmazonSQS.SendMessage", `{"QueueUrl":"https://sqs.us-east-1.amazonaws.com/111122223333/jobs"}`)
			r.Path = "/111122223333/payroll"
			return r
		}(), "ValidationException"},
		{"gzip body", gz, "ValidationException"},
		{"body over MaxBody", big, "RequestEntityTooLarge"},
		{"more values than kept", many, "ValidationException"},
		{"duplicate key at the top", jsonReq("dynamodb", "DynamoDB_20120810.GetItem", `{"TableName":"orders","TableName":"secrets"}`), "SerializationException"},
		{"duplicate key escaped", jsonReq("dynamodb", "DynamoDB_20120810.GetItem", `{"TableName":"orders","Table\u004eame":"secrets"}`), "SerializationException"},
		{"duplicate key in a batch", jsonReq("dynamodb", "DynamoDB_20120810.BatchGetItem", `{"RequestItems":{"orders":{"Keys":[]},"orders":{"Keys":[]}}}`), "SerializationException"},
		{"duplicate key deep in a skipped member", jsonReq("dynamodb", "DynamoDB_20120810.PutItem", `{"TableName":"orders","Item":`+deep+`}`), "SerializationException"},
		{"duplicate key in a kept nested object", jsonReq("dynamodb", "DynamoDB_20120810.TransactGetItems", `{"TransactItems":[{"Get":{"TableName":"orders","TableName":"secrets"}}]}`), "SerializationException"},
		{"member differing in case", jsonReq("dynamodb", "DynamoDB_20120810.GetItem", `{"TableName":"orders","tableName":"secrets"}`), "SerializationException"},
		{"member differing by Unicode folding", jsonReq("secretsmanager", "secretsmanager.GetSecretValue", `{"SecretId":"app","ſecretId":"prod"}`), "SerializationException"},
		{"malformed JSON", jsonReq("dynamodb", "DynamoDB_20120810.GetItem", `{"TableName":"orders"`), "SerializationException"},
		{"two JSON objects", jsonReq("dynamodb", "DynamoDB_20120810.GetItem", `{"TableName":"orders"}{"TableName":"secrets"}`), "SerializationException"},
		{"JSON array body", jsonReq("dynamodb", "DynamoDB_20120810.GetItem", `[{"TableName":"orders"}]`), "SerializationException"},
		{"invalid UTF-8 in JSON", jsonReq("dynamodb", "DynamoDB_20120810.GetItem", "{\"TableName\":\"ord\xffers\"}"), "SerializationException"},
		{"TableName not a string", jsonReq("dynamodb", "DynamoDB_20120810.GetItem", `{"TableName":["orders"]}`), "SerializationException"},
		{"missing TableName", jsonReq("dynamodb", "DynamoDB_20120810.GetItem", `{}`), "ValidationException"},
		{"table name with Unicode", jsonReq("dynamodb", "DynamoDB_20120810.GetItem", `{"TableName":"ordérs"}`), "ValidationException"},
		{"table ARN of another account", jsonReq("dynamodb", "DynamoDB_20120810.GetItem", `{"TableName":"arn:aws:dynamodb:us-east-1:444455556666:table/orders"}`), "AccessDeniedException"},
		{"table ARN of another region", jsonReq("dynamodb", "DynamoDB_20120810.GetItem", `{"TableName":"arn:aws:dynamodb:eu-west-1:111122223333:table/orders"}`), "AccessDeniedException"},
		{"table ARN of another partition", jsonReq("dynamodb", "DynamoDB_20120810.GetItem", `{"TableName":"arn:aws-cn:dynamodb:us-east-1:111122223333:table/orders"}`), "AccessDeniedException"},
		{"index ARN as a table", jsonReq("dynamodb", "DynamoDB_20120810.GetItem", `{"TableName":"arn:aws:dynamodb:us-east-1:111122223333:table/orders/index/x"}`), "ValidationException"},
		{"transact element with two operations", jsonReq("dynamodb", "DynamoDB_20120810.TransactWriteItems", `{"TransactItems":[{"Put":{"TableName":"orders"},"Delete":{"TableName":"secrets"}}]}`), "ValidationException"},
		{"batch ARN of another account", jsonReq("dynamodb", "DynamoDB_20120810.BatchWriteItem", `{"RequestItems":{"orders":[],"arn:aws:dynamodb:us-east-1:444455556666:table/orders":[]}}`), "AccessDeniedException"},
		{"log group with Unicode", jsonReq("logs", "Logs_20140328.FilterLogEvents", `{"logGroupName":"/app/wéb"}`), "ValidationException"},
		{"log group with a colon", jsonReq("logs", "Logs_20140328.FilterLogEvents", `{"logGroupName":"/app/web:log-stream:x"}`), "ValidationException"},
		{"log stream with a control character", jsonReq("logs", "Logs_20140328.GetLogEvents", `{"logGroupName":"/app/web","logStreamName":"a\u001b[2Kb"}`), "ValidationException"},
		{"log stream with a C1 control", jsonReq("logs", "Logs_20140328.GetLogEvents", `{"logGroupName":"/app/web","logStreamName":"a\u0085b"}`), "ValidationException"},
		{"log group name and identifier", jsonReq("logs", "Logs_20140328.FilterLogEvents", `{"logGroupName":"/app/web","logGroupIdentifier":"/app/secret"}`), "ValidationException"},
		{"log group ARN of another region", jsonReq("logs", "Logs_20140328.FilterLogEvents", `{"logGroupIdentifier":"arn:aws:logs:eu-west-1:111122223333:log-group:/app/web"}`), "AccessDeniedException"},
		{"log group ARN of another account in a query", jsonReq("logs", "Logs_20140328.StartQuery", `{"logGroupIdentifiers":["/app/web","arn:aws:logs:us-east-1:444455556666:log-group:/app/web"],"queryString":"x"}`), "AccessDeniedException"},
		{"query naming no log group", jsonReq("logs", "Logs_20140328.StartQuery", `{"queryString":"SOURCE logGroups() | fields @message"}`), "AccessDeniedException"},
		{"log group list of numbers", jsonReq("logs", "Logs_20140328.StartQuery", `{"logGroupNames":[1],"queryString":"x"}`), "SerializationException"},
		{"parameter ARN of another account", jsonReq("ssm", "AmazonSSM.GetParameter", `{"Name":"arn:aws:ssm:us-east-1:444455556666:parameter/app/db"}`), "AccessDeniedException"},
		{"parameter name with Unicode", jsonReq("ssm", "AmazonSSM.GetParameter", `{"Name":"/app/dé"}`), "ValidationException"},
		{"parameter path without slash", jsonReq("ssm", "AmazonSSM.GetParametersByPath", `{"Path":"app"}`), "ValidationException"},
		{"empty Names", jsonReq("ssm", "AmazonSSM.GetParameters", `{"Names":[]}`), "ValidationException"},
		{"secret ARN of another account", jsonReq("secretsmanager", "secretsmanager.GetSecretValue", `{"SecretId":"arn:aws:secretsmanager:us-east-1:444455556666:secret:prod/db-AbCdEf"}`), "AccessDeniedException"},
		{"key ARN of another region", jsonReq("kms", "TrentService.Decrypt", `{"KeyId":"arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"}`), "AccessDeniedException"},
		{"queue of another account", jsonReq("sqs", "AmazonSQS.SendMessage", `{"QueueUrl":"https://sqs.us-east-1.amazonaws.com/444455556666/jobs"}`), "AccessDeniedException"},
		{"queue host of another region", jsonReq("sqs", "AmazonSQS.ReceiveMessage", `{"QueueUrl":"https://sqs.eu-west-1.amazonaws.com/111122223333/jobs"}`), "AccessDeniedException"},
		{"queue URL with extra path", jsonReq("sqs", "AmazonSQS.DeleteMessage", `{"QueueUrl":"https://sqs.us-east-1.amazonaws.com/111122223333/jobs/x"}`), "ValidationException"},
		{"queue owner of another account", jsonReq("sqs", "AmazonSQS.GetQueueUrl", `{"QueueName":"jobs","QueueOwnerAWSAccountId":"444455556666"}`), "AccessDeniedException"},
		{"query: duplicate Action", queryReq("sts", "Action=GetCallerIdentity&Action=AssumeRole&Version=2011-06-15"), "MalformedQueryString"},
		{"query: Action in query and body", queryAndBody, "MalformedQueryString"},
		{"query: keys differing in case", queryReq("sts", "Action=GetCallerIdentity&action=AssumeRole"), "MalformedQueryString"},
		{"query: bad escape", queryReq("sts", "Action=GetCaller%zzIdentity"), "MalformedQueryString"},
		{"query: semicolon", queryReq("sts", "Action=GetCallerIdentity;Action=AssumeRole"), "MalformedQueryString"},
		{"query: no Action", queryReq("sts", "Version=2011-06-15"), "ValidationError"},
		{"query: JSON content type", func() *Request {
			r := queryReq("sqs", `Action=ListQueues`)
			r.Header.Set("Content-Type", "application/x-amz-json-1.0")
			return r
		}(), "MalformedQueryString"},
		{"query: path and QueueUrl differ", pathQueue, "ValidationError"},
		{"query: list with a gap", queryReq("monitoring", "Action=DescribeAlarms&AlarmNames.member.1=a&AlarmNames.member.3=b"), "ValidationError"},
		{"query: list in two styles", queryReq("monitoring", "Action=DescribeAlarms&AlarmNames.member.1=a&AlarmNames.1=b"), "ValidationError"},
		{"query: topic of another region", queryReq("sns", "Action=Publish&TopicArn=arn%3Aaws%3Asns%3Aeu-west-1%3A111122223333%3Aalerts&Message=x"), "AccessDenied"},
		{"query: JSON-only service", queryReq("dynamodb", "Action=DeleteTable&TableName=orders"), "MalformedQueryString"},
		{"sts AssumeRole", queryReq("sts", "Action=AssumeRole&Version=2011-06-15&RoleArn=arn%3Aaws%3Aiam%3A%3A111122223333%3Arole%2Fadmin&RoleSessionName=x"), "AccessDenied"},
		{"cbor: duplicate map key", cborReq("DescribeAlarms", []byte{0xa2, 0x6a, 'A', 'l', 'a', 'r', 'm', 'N', 'a', 'm', 'e', 's', 0x80, 0x6a, 'A', 'l', 'a', 'r', 'm', 'N', 'a', 'm', 'e', 's', 0x80}), "SerializationException"},
		{"cbor: truncated", cborReq("ListMetrics", []byte{0xa1, 0x69, 'N', 'a', 'm', 'e'}), "SerializationException"},
		{"cbor: huge array length", cborReq("ListMetrics", []byte{0xa1, 0x61, 'x', 0x9b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}), "SerializationException"},
		{"cbor: indefinite map without break", cborReq("ListMetrics", []byte{0xbf, 0x61, 'x', 0x01}), "SerializationException"},
		{"cbor: integer map key", cborReq("ListMetrics", []byte{0xa1, 0x01, 0x01}), "SerializationException"},
		{"cbor: deep nesting", cborReq("ListMetrics", append([]byte{0xa1, 0x61, 'x'}, bytes.Repeat([]byte{0x81}, 200)...)), "SerializationException"},
		{"cbor: trailing data", cborReq("ListMetrics", []byte{0xa0, 0xa0}), "SerializationException"},
		{"cbor: invalid UTF-8 text", cborReq("ListMetrics", []byte{0xa1, 0x69, 'N', 'a', 'm', 'e', 's', 'p', 'a', 'c', 'e', 0x61, 0xff}), "SerializationException"},
		{"cbor: not a map", cborReq("ListMetrics", []byte{0x80}), "SerializationException"},
		{"cbor: wrong content type", cborAsJSON, "SerializationException"},
		{"cbor: signed for another service", cborOther, "AccessDeniedException"},
		{"cbor: unknown service path", func() *Request {
			r := cborReq("ListMetrics", nil)
			r.Path = "/service/DynamoDB_20120810/operation/GetItem"
			return r
		}(), "AccessDeniedException"},
		{"cbor: path naming two operations", func() *Request {
			r := cborReq("GetMetricData", []byte{0xa0})
			r.Path = "/service/GraniteServiceVersion20100801/operation/DeleteAlarms" + r.Path
			return r
		}(), "SerializationException"},
		{"cbor: path naming a second operation in its prefix", func() *Request {
			r := cborReq("GetMetricData", []byte{0xa0})
			r.Path = "/x/operation/DeleteAlarms" + r.Path
			return r
		}(), "SerializationException"},
		{"lambda: encoded slash in the name", lambdaReq("POST", "/2015-03-31/functions/a/b/invocations", ""), "AccessDeniedException"},
		{"lambda: dot segment", lambdaReq("GET", "/2015-03-31/functions/..", ""), "InvalidParameterValueException"},
		{"lambda: ARN of another account", lambdaReq("POST", "/2015-03-31/functions/arn:aws:lambda:us-east-1:444455556666:function:resize/invocations", ""), "AccessDeniedException"},
		{"lambda: partial ARN of another account", lambdaReq("POST", "/2015-03-31/functions/444455556666:function:resize/invocations", ""), "AccessDeniedException"},
		{"lambda: qualifiers differ", lambdaReq("POST", "/2015-03-31/functions/resize:prod/invocations", "Qualifier=dev"), "InvalidParameterValueException"},
		{"lambda: duplicate Qualifier", lambdaReq("POST", "/2015-03-31/functions/resize/invocations", "Qualifier=prod&Qualifier=dev"), "InvalidRequestContentException"},
		{"lambda: unmapped call", lambdaReq("DELETE", "/2015-03-31/functions/resize", ""), "AccessDeniedException"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := mustRefuse(t, tc.r, tc.code)
			t.Log(e)
			if len(e.Msg) > 600 {
				t.Errorf("message of %d bytes", len(e.Msg))
			}
			for _, r := range e.Error() {
				if r < 0x20 || r == 0x7f {
					t.Fatalf("control character in error %q", e.Error())
				}
			}
		})
	}
}

// TestUnmappedNamesServiceAndOperation checks that a call nobody mapped
// is refused with a message a human can act on.
func TestUnmappedNamesServiceAndOperation(t *testing.T) {
	for _, r := range []*Request{
		jsonReq("dynamodb", "DynamoDB_20120810.DeleteTable", `{"TableName":"orders"}`),
		queryReq("iam", "Action=CreateAccessKey&Version=2010-05-08"),
		queryReq("ec2", "Action=TerminateInstances&Version=2016-11-15&InstanceId.1=i-1"),
		jsonReq("logs", "Logs_20140328.DeleteLogGroup", `{"logGroupName":"/app/web"}`),
	} {
		e := mustRefuse(t, r, "")
		if e.Status != http.StatusForbidden || !strings.Contains(e.Error(), r.Service) {
			t.Errorf("%v: status %d", e, e.Status)
		}
		if op := e.Operation; op == "" || !strings.Contains(e.Error(), op) {
			t.Errorf("%v: no operation", e)
		}
	}
	mustRefuse(t, &Request{Service: "route53", Method: "GET", Path: "/2013-04-01/hostedzone", Header: http.Header{}}, "")
}

// TestBatchNamingSecondTable shows what the checks are for: a grant on
// one table does not cover a batch, a transaction or a parameter list
// that also names another.
func TestBatchNamingSecondTable(t *testing.T) {
	sc, err := scope.Parse([]string{
		"dynamodb:BatchWriteItem,dynamodb:PutItem,dynamodb:GetItem " + ddb + "orders",
		"ssm:GetParameters arn:aws:ssm:us-east-1:111122223333:parameter/app/*",
	})
	if err != nil {
		t.Fatal(err)
	}
	allowed := func(op *Op) bool {
		for _, c := range op.Checks {
			if !sc.Allows(c.Action, c.Resource) {
				return false
			}
		}
		return true
	}
	for _, tc := range []struct {
		r    *Request
		want bool
	}{
		{jsonReq("dynamodb", "DynamoDB_20120810.BatchWriteItem", `{"RequestItems":{"orders":[{"PutRequest":{"Item":{}}}]}}`), true},
		{jsonReq("dynamodb", "DynamoDB_20120810.BatchWriteItem", `{"RequestItems":{"orders":[{"PutRequest":{"Item":{}}}],"audit":[{"DeleteRequest":{"Key":{}}}]}}`), false},
		{jsonReq("dynamodb", "DynamoDB_20120810.TransactWriteItems", `{"TransactItems":[{"Put":{"TableName":"orders","Item":{}}}]}`), true},
		{jsonReq("dynamodb", "DynamoDB_20120810.TransactWriteItems", `{"TransactItems":[{"Put":{"TableName":"orders","Item":{}}},{"Put":{"TableName":"orders-archive","Item":{}}}]}`), false},
		{jsonReq("dynamodb", "DynamoDB_20120810.GetItem", `{"TableName":"`+ddb+`orders"}`), true},
		{jsonReq("dynamodb", "DynamoDB_20120810.Query", `{"TableName":"orders","IndexName":"by-customer"}`), false},
		{jsonReq("ssm", "AmazonSSM.GetParameters", `{"Names":["/app/a","app/b"]}`), true},
		{jsonReq("ssm", "AmazonSSM.GetParameters", `{"Names":["/app/a","/prod/db"]}`), false},
	} {
		op := mustMap(t, tc.r)
		if got := allowed(op); got != tc.want {
			t.Errorf("%s %s: allowed %v, want %v (checks %v)", op.Operation, tc.r.Body, got, tc.want, op.Checks)
		}
	}
}

// TestUnicodeNames: AWS allows Unicode in log stream and alarm names, so
// does the mapper; it never allows control characters.
func TestUnicodeNames(t *testing.T) {
	op := mustMap(t, jsonReq("logs", "Logs_20140328.GetLogEvents", `{"logGroupName":"/app/web","logStreamName":"Zürich‮2"}`))
	if op.Checks[0].Resource != lg+"/app/web:log-stream:Zürich\u202e2" {
		t.Errorf("resource %q", op.Checks[0].Resource)
	}
	op = mustMap(t, queryReq("monitoring", "Action=DescribeAlarms&AlarmNames.member.1=%E6%97%A5%E6%9C%AC"))
	if op.Checks[0].Resource != "arn:aws:cloudwatch:us-east-1:111122223333:alarm:日本" {
		t.Errorf("resource %q", op.Checks[0].Resource)
	}
	mustRefuse(t, queryReq("monitoring", "Action=DescribeAlarms&AlarmNames.member.1=a%0Ab"), "ValidationError")
}

func TestParamsBounded(t *testing.T) {
	long := strings.Repeat("é", 3*MaxParam)
	op := mustMap(t, jsonReq("logs", "Logs_20140328.FilterLogEvents", `{"logGroupName":"/app/web","filterPattern":"`+long+`"}`))
	p := op.Params["filterPattern"]
	if len(p) > MaxParam || !strings.Contains(p, "bytes)") {
		t.Fatalf("filterPattern param of %d bytes: %q", len(p), p)
	}
	names := make([]string, 50)
	for i := range names {
		names[i] = `"/g/` + strings.Repeat("x", 100) + `"`
	}
	op = mustMap(t, jsonReq("logs", "Logs_20140328.StartQuery", `{"logGroupNames":[`+strings.Join(names, ",")+`],"queryString":"x"}`))
	if len(op.Checks) != 1 || len(op.Params["logGroups"]) > MaxParam {
		t.Fatalf("checks %d, logGroups param %d bytes", len(op.Checks), len(op.Params["logGroups"]))
	}
}

func TestDescribeAlarmsPrefix(t *testing.T) {
	sc, _ := scope.Parse([]string{"cloudwatch:DescribeAlarms arn:aws:cloudwatch:us-east-1:111122223333:alarm:prod-*"})
	ok := mustMap(t, queryReq("monitoring", "Action=DescribeAlarms&AlarmNamePrefix=prod-web"))
	all := mustMap(t, queryReq("monitoring", "Action=DescribeAlarms"))
	if !sc.Allows(ok.Checks[0].Action, ok.Checks[0].Resource) || sc.Allows(all.Checks[0].Action, all.Checks[0].Resource) {
		t.Fatalf("prefix %v, all %v", ok.Checks, all.Checks)
	}
}

// TestFoldKey: foldKey equality is strings.EqualFold.
func TestFoldKey(t *testing.T) {
	for _, p := range [][2]string{{"SecretId", "ſecretId"}, {"TableName", "tablename"}, {"Key", "\u212aey"}, {"Name", "Names"}, {"ß", "ẞ"}, {"a", "b"}} {
		if got, want := foldKey(p[0]) == foldKey(p[1]), strings.EqualFold(p[0], p[1]); got != want {
			t.Errorf("%q %q: foldKey equal %v, EqualFold %v", p[0], p[1], got, want)
		}
	}
}

// TestBodyNotModified: Map reads the body in place and must leave it as
// the gateway forwards it.
func TestBodyNotModified(t *testing.T) {
	body := `{"TableName":"orders","Key":{"id":{"S":"a\u00e9\"b"}},"Names":["x"]}`
	r := jsonReq("dynamodb", "DynamoDB_20120810.GetItem", body)
	mustMap(t, r)
	mustMap(t, r)
	if string(r.Body) != body {
		t.Fatalf("body changed to %q", r.Body)
	}
}

// TestMalformedNotQuoted: the message for a malformed JSON body, form or
// query string says where it is malformed, never the bytes there. The
// decoders' own messages quote them (jsontext up to a dozen bytes of the
// value holding the error, url the bad escape), and the message is both
// answered and recorded: a body's secret (PutSecretValue's SecretString,
// a password in a form) must not reach the recording through it.
func TestMalformedNotQuoted(t *testing.T) {
	for _, tc := range []struct {
		name   string
		r      *Request
		secret string
	}{
		{"JSON lone surrogate", jsonReq("secretsmanager", "secretsmanager.PutSecretValue", `{"SecretId":"db","SecretString":"\ud800s3cr3t-value"}`), "s3cr3t"},
		{"JSON bad escape", jsonReq("ssm", "AmazonSSM.PutParameter", `{"Name":"/db","Value":"\xs3cr3t"}`), `\x`},
		{"form bad escape", queryReq("iam", "Action=ChangePassword&NewPassword=%s3cr3t"), "%s3"},
		{"lambda query bad escape", lambdaReq("GET", "/2015-03-31/functions/resize", "Qualifier=%zZs3cr3t"), "%zZ"},
	} {
		e := mustRefuse(t, tc.r, "")
		if strings.Contains(e.Error(), tc.secret) {
			t.Errorf("%s: the message quotes the body: %s", tc.name, e)
		}
	}
	e := mustRefuse(t, jsonReq("secretsmanager", "secretsmanager.PutSecretValue", `{"SecretId":"db","SecretString":"\ud800s3cr3t"}`), "SerializationException")
	if !strings.Contains(e.Msg, `"/SecretString"`) || !strings.Contains(e.Msg, "offset 33") {
		t.Errorf("the message does not say where the body is malformed: %s", e)
	}
}
