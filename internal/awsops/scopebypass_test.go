package awsops

import (
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
