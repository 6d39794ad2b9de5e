package awsops

import "slices"

// actions are the IAM actions the mapped operations check, spelled as
// IAM documents them (dynamodb:GetItem): a grant's scope must name them
// exactly so, since the gateway compares actions as strings. EC2's
// Describe* calls check "ec2:" and the operation's own name, which
// ec2DescribeOperations lists. TestActionsListed keeps this list equal
// to the action names this package's code spells.
var actions = []string{
	"cloudwatch:DescribeAlarms", "cloudwatch:GetMetricData", "cloudwatch:GetMetricStatistics", "cloudwatch:ListMetrics",
	"dynamodb:BatchGetItem", "dynamodb:BatchWriteItem", "dynamodb:ConditionCheckItem", "dynamodb:CreateTable", "dynamodb:DeleteItem", "dynamodb:DescribeEndpoints", "dynamodb:DescribeTable", "dynamodb:GetItem", "dynamodb:ListTables", "dynamodb:PutItem", "dynamodb:PutResourcePolicy", "dynamodb:Query", "dynamodb:Scan", "dynamodb:TagResource", "dynamodb:UpdateItem",
	"ecs:DescribeClusters", "ecs:DescribeServices", "ecs:ListClusters", "ecs:ListServices",
	"kinesis:DescribeStream", "kinesis:DescribeStreamSummary", "kinesis:GetRecords", "kinesis:GetShardIterator", "kinesis:ListShards", "kinesis:ListStreams", "kinesis:PutRecord", "kinesis:PutRecords",
	"kms:CreateGrant", "kms:Decrypt", "kms:DescribeKey", "kms:Encrypt",
	"lambda:GetFunction", "lambda:GetFunctionConfiguration", "lambda:InvokeFunction", "lambda:ListFunctions",
	"logs:DescribeLogGroups", "logs:DescribeLogStreams", "logs:FilterLogEvents", "logs:GetLogEvents", "logs:GetLogGroupFields", "logs:GetQueryResults", "logs:PutLogEvents", "logs:StartQuery", "logs:StopQuery", "logs:Unmask",
	"secretsmanager:DescribeSecret", "secretsmanager:GetSecretValue", "secretsmanager:ListSecrets",
	"sns:ListTopics", "sns:Publish",
	"sqs:ChangeMessageVisibility", "sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:GetQueueUrl", "sqs:ListQueues", "sqs:ReceiveMessage", "sqs:SendMessage",
	"ssm:DescribeParameters", "ssm:GetParameter", "ssm:GetParameters", "ssm:GetParametersByPath",
	"sts:GetCallerIdentity",
}

// Actions lists the IAM actions the mapped operations check, sorted:
// EC2's Describe* actions (ec2:DescribeInstances) among them, although
// the gateway serves a Describe* operation that ec2DescribeOperations
// does not list too.
func Actions() []string {
	out := slices.Clone(actions)
	for _, o := range ec2DescribeOperations {
		out = append(out, "ec2:"+o)
	}
	slices.Sort(out)
	return out
}
