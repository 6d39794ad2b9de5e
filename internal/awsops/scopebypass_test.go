package awsops

import (
	"bytes"
	"slices"
	"testing"
)

// TestQueryOperationAlias: the AWS Query protocol names a call's
// operation in Action or, "for backward compatibility with other AWS
// Query APIs", in Operation (AWS's Query API guides). A form carrying
// both could be checked as the read its Action names while the service
// runs the Operation; a JSON or CBOR call carrying Operation in its query
// string could be taken as a Query call by SQS, which speaks both.
func TestQueryOperationAlias(t *testing.T) {
	const q = "QueueUrl=https%3A%2F%2Fsqs.us-east-1.amazonaws.com%2F111122223333%2Fjobs"
	jsonOp := jsonReq("sqs", "AmazonSQS.GetQueueAttributes", `{"QueueUrl":"https://sqs.us-east-1.amazonaws.com/111122223333/jobs"}`)
	jsonOp.RawQuery = "Operation=DeleteQueue"
	cborOp := cborReq("ListMetrics", []byte{0xa0})
	cborOp.RawQuery = "operation=DeleteAlarms"
	for name, r := range map[string]*Request{
		"sqs form":       queryReq("sqs", "Action=GetQueueAttributes&Operation=DeleteQueue&"+q),
		"ec2 form":       queryReq("ec2", "Action=DescribeInstances&Operation=TerminateInstances&InstanceId.1=i-0123456789abcdef0"),
		"lower case":     queryReq("sqs", "Action=GetQueueAttributes&operation=DeleteQueue&"+q),
		"sts form":       queryReq("sts", "Action=GetCallerIdentity&Operation=GetSessionToken"),
		"json query":     jsonOp,
		"cbor query":     cborOp,
		"only Operation": queryReq("sqs", "Operation=DeleteQueue&"+q),
	} {
		t.Run(name, func(t *testing.T) { mustRefuse(t, r, "") })
	}
	mustMap(t, queryReq("sqs", "Action=GetQueueAttributes&"+q))
}

// TestQueryCaseVariants: a form key that differs only in case from one
// the mapper reads is refused, as the JSON decoder refuses such members:
// the mapper would read nothing (a Publish to a phone number, checked on
// "*"; DescribeAlarms on every alarm) where a service that matched names
// without regard to case would read a topic or alarm list.
func TestQueryCaseVariants(t *testing.T) {
	for name, r := range map[string]*Request{
		"topicArn":            queryReq("sns", "Action=Publish&PhoneNumber=%2B15555550100&topicArn=arn%3Aaws%3Asns%3Aus-east-1%3A111122223333%3Aother&Message=x"),
		"queueurl":            queryReq("sqs", "Action=SendMessage&QueueUrl=https%3A%2F%2Fsqs.us-east-1.amazonaws.com%2F111122223333%2Fjobs&queueurl=https%3A%2F%2Fsqs.us-east-1.amazonaws.com%2F111122223333%2Fother"),
		"alarmNames list":     queryReq("monitoring", "Action=DescribeAlarms&AlarmNamePrefix=app&alarmNames.member.1=db"),
		"ALARMNAMES.member.1": queryReq("monitoring", "Action=DescribeAlarms&AlarmNames.member.1=app&ALARMNAMES.member.2=db"),
	} {
		t.Run(name, func(t *testing.T) { mustRefuse(t, r, "") })
	}
	op := mustMap(t, queryReq("monitoring", "Action=DescribeAlarms&AlarmNames.member.1=app"))
	if want := []Check{{"cloudwatch:DescribeAlarms", "arn:aws:cloudwatch:us-east-1:111122223333:alarm:app"}}; !slices.Equal(op.Checks, want) {
		t.Errorf("checks %v, want %v", op.Checks, want)
	}
}

// TestDescribeLogGroupsLinkedAccounts: with CloudWatch cross-account
// observability, DescribeLogGroups in a monitoring account lists the log
// groups of linked source accounts when includeLinkedAccounts is true
// (those in accountIdentifiers, or all of them), and of the groups
// logGroupIdentifiers names by ARN (CloudWatch Logs API reference,
// DescribeLogGroups). The check is on the target account's
// log-group::log-stream: only, so those forms are refused.
func TestDescribeLogGroupsLinkedAccounts(t *testing.T) {
	const target = "Logs_20140328.DescribeLogGroups"
	for _, body := range []string{
		`{"includeLinkedAccounts":true}`,
		`{"includeLinkedAccounts":true,"accountIdentifiers":["444455556666"]}`,
		`{"accountIdentifiers":["444455556666"]}`,
		`{"logGroupIdentifiers":["arn:aws:logs:us-east-1:444455556666:log-group:/secret/audit"]}`,
		`{"IncludeLinkedAccounts":true}`,
	} {
		mustRefuse(t, jsonReq("logs", target, body), "")
	}
	for _, body := range []string{
		`{}`,
		`{"logGroupNamePrefix":"/app","includeLinkedAccounts":false}`,
		`{"includeLinkedAccounts":false,"accountIdentifiers":["111122223333"]}`,
		`{"logGroupIdentifiers":["/app/api","arn:aws:logs:us-east-1:111122223333:log-group:/app/web"]}`,
	} {
		op := mustMap(t, jsonReq("logs", target, body))
		if want := []Check{{"logs:DescribeLogGroups", "arn:aws:logs:us-east-1:111122223333:log-group::log-stream:"}}; !slices.Equal(op.Checks, want) {
			t.Errorf("%s: checks %v, want %v", body, op.Checks, want)
		}
	}
}

// cborText encodes a CBOR text string shorter than 256 bytes.
func cborText(s string) []byte {
	if len(s) < 24 {
		return append([]byte{0x60 | byte(len(s))}, s...)
	}
	return append([]byte{0x78, byte(len(s))}, s...)
}

// TestMetricsLinkedAccounts: in a monitoring account of CloudWatch
// cross-account observability, GetMetricData reads a query's metric from
// the source account its AccountId names, and ListMetrics lists the
// metrics of linked accounts with IncludeLinkedAccounts or OwningAccount
// (CloudWatch API reference, MetricDataQuery and ListMetrics). The grant
// is for the target's account: another account is refused, in all three
// protocols CloudWatch speaks.
func TestMetricsLinkedAccounts(t *testing.T) {
	const other = "444455556666"
	gmd := func(acct string) []byte {
		b := []byte{0xa1}
		b = append(b, cborText("MetricDataQueries")...)
		b = append(b, 0x81, 0xa2)
		b = append(b, cborText("Id")...)
		b = append(b, cborText("q1")...)
		b = append(b, cborText("AccountId")...)
		return append(b, cborText(acct)...)
	}
	linked := append(append([]byte{0xa1}, cborText("IncludeLinkedAccounts")...), 0xf5)
	owning := append(append([]byte{0xa1}, cborText("OwningAccount")...), cborText(other)...)
	const jt = "GraniteServiceVersion20100801."
	for name, r := range map[string]*Request{
		"query GetMetricData":       queryReq("monitoring", "Action=GetMetricData&MetricDataQueries.member.1.Id=q1&MetricDataQueries.member.1.AccountId="+other+"&MetricDataQueries.member.1.Expression=SUM(METRICS())"),
		"query accountid case":      queryReq("monitoring", "Action=GetMetricData&MetricDataQueries.member.1.Id=q1&MetricDataQueries.member.1.accountId="+other),
		"query list without member": queryReq("monitoring", "Action=GetMetricData&MetricDataQueries.1.Id=q1&MetricDataQueries.1.AccountId="+other),
		"query member case":         queryReq("monitoring", "Action=GetMetricData&MetricDataQueries.Member.1.Id=q1&MetricDataQueries.Member.1.AccountId="+other),
		"json GetMetricData":        jsonReq("monitoring", jt+"GetMetricData", `{"MetricDataQueries":[{"Id":"a","AccountId":"111122223333"},{"Id":"b","AccountId":"`+other+`"}]}`),
		"cbor GetMetricData":        cborReq("GetMetricData", gmd(other)),
		// A tag (55799, "self-described CBOR", which decoders skip) on
		// the query's map, on the list, and on the AccountId string.
		"cbor tagged query map":    cborReq("GetMetricData", bytes.Replace(gmd(other), []byte{0x81, 0xa2}, []byte{0x81, 0xd9, 0xd9, 0xf7, 0xa2}, 1)),
		"cbor tagged list":         cborReq("GetMetricData", bytes.Replace(gmd(other), []byte{0x81, 0xa2}, []byte{0xd9, 0xd9, 0xf7, 0x81, 0xa2}, 1)),
		"cbor tagged account":      cborReq("GetMetricData", append(bytes.TrimSuffix(gmd(other), cborText(other)), append([]byte{0xd9, 0xd9, 0xf7}, cborText(other)...)...)),
		"query IncludeLinked":      queryReq("monitoring", "Action=ListMetrics&IncludeLinkedAccounts=true"),
		"query OwningAccount":      queryReq("monitoring", "Action=ListMetrics&OwningAccount="+other),
		"json IncludeLinked":       jsonReq("monitoring", jt+"ListMetrics", `{"IncludeLinkedAccounts":true}`),
		"json OwningAccount":       jsonReq("monitoring", jt+"ListMetrics", `{"OwningAccount":"`+other+`"}`),
		"cbor IncludeLinked":       cborReq("ListMetrics", linked),
		"cbor OwningAccount":       cborReq("ListMetrics", owning),
		"query includelinked case": queryReq("monitoring", "Action=ListMetrics&includeLinkedAccounts=true"),
		"json owningaccount case":  jsonReq("monitoring", jt+"ListMetrics", `{"owningAccount":"`+other+`"}`),
	} {
		t.Run(name, func(t *testing.T) { mustRefuse(t, r, "") })
	}
	for name, r := range map[string]*Request{
		"query own account": queryReq("monitoring", "Action=GetMetricData&MetricDataQueries.member.1.Id=q1&MetricDataQueries.member.1.AccountId=111122223333"),
		"json own account":  jsonReq("monitoring", jt+"GetMetricData", `{"MetricDataQueries":[{"Id":"a","AccountId":"111122223333"},{"Id":"b"}]}`),
		"cbor own account":  cborReq("GetMetricData", gmd(account)),
		"json not linked":   jsonReq("monitoring", jt+"ListMetrics", `{"IncludeLinkedAccounts":false,"OwningAccount":"111122223333"}`),
	} {
		t.Run(name, func(t *testing.T) {
			op := mustMap(t, r)
			if len(op.Checks) != 1 || op.Checks[0].Resource != "*" {
				t.Errorf("checks %v", op.Checks)
			}
		})
	}
}

// TestCreateTableKMSKey: a table encrypted with a customer managed key
// (SSESpecification.KMSMasterKeyId) has DynamoDB describe the key and
// create a grant on it for the caller, which needs kms:DescribeKey and
// kms:CreateGrant on the key (DynamoDB developer guide, "Key policy for a
// customer managed key"). The mapper checked dynamodb:CreateTable only,
// so a grant on a table let the upstream's credentials grant DynamoDB the
// use of any key, another account's included.
func TestCreateTableKMSKey(t *testing.T) {
	const target = "DynamoDB_20120810.CreateTable"
	const key = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
	for body, want := range map[string][]Check{
		`{"TableName":"orders","SSESpecification":{"Enabled":true,"SSEType":"KMS","KMSMasterKeyId":"1234abcd-12ab-34cd-56ef-1234567890ab"}}`: {
			{"dynamodb:CreateTable", ddb + "orders"}, {"kms:CreateGrant", key}, {"kms:DescribeKey", key}},
		`{"TableName":"orders","SSESpecification":{"Enabled":true,"SSEType":"KMS","KMSMasterKeyId":"` + key + `"}}`: {
			{"dynamodb:CreateTable", ddb + "orders"}, {"kms:CreateGrant", key}, {"kms:DescribeKey", key}},
		`{"TableName":"orders","SSESpecification":{"Enabled":true,"SSEType":"KMS","KMSMasterKeyId":"alias/tables"}}`: {
			{"dynamodb:CreateTable", ddb + "orders"}, {"kms:CreateGrant", "*"}, {"kms:DescribeKey", "*"}},
		`{"TableName":"orders","SSESpecification":{"Enabled":true,"SSEType":"KMS"}}`: {{"dynamodb:CreateTable", ddb + "orders"}},
		`{"TableName":"orders"}`: {{"dynamodb:CreateTable", ddb + "orders"}},
	} {
		op := mustMap(t, jsonReq("dynamodb", target, body))
		if !slices.Equal(op.Checks, want) {
			t.Errorf("%s: checks %v, want %v", body, op.Checks, want)
		}
	}
	for _, body := range []string{
		`{"TableName":"orders","SSESpecification":{"Enabled":true,"KMSMasterKeyId":"arn:aws:kms:us-east-1:444455556666:key/1234abcd-12ab-34cd-56ef-1234567890ab"}}`,
		`{"TableName":"orders","SSESpecification":{"Enabled":true,"kmsMasterKeyId":"1234abcd-12ab-34cd-56ef-1234567890ab"}}`,
		`{"TableName":"orders","SSESpecification":"x"}`,
	} {
		mustRefuse(t, jsonReq("dynamodb", target, body), "")
	}
}
