package awsops

import "testing"

func TestSmoke(t *testing.T) {
	op := mustMap(t, jsonReq("dynamodb", "DynamoDB_20120810.GetItem", `{"TableName":"orders","Key":{"id":{"S":"1"}}}`))
	t.Logf("%+v", op)
	op = mustMap(t, jsonReq("logs", "Logs_20140328.FilterLogEvents", `{"logGroupName":"/app/web","filterPattern":"ERROR"}`))
	t.Logf("%+v", op)
	op = mustMap(t, queryReq("sts", "Action=GetCallerIdentity&Version=2011-06-15"))
	t.Logf("%+v", op)
	t.Log(mustRefuse(t, queryReq("sts", "Action=AssumeRole&Version=2011-06-15"), "AccessDenied"))
	t.Log(mustRefuse(t, jsonReq("dynamodb", "DynamoDB_20120810.GetItem", `{"TableName":"orders","Key":{"id":{"S":"1"},"id":{"S":"2"}}}`), ""))
	t.Log(mustRefuse(t, jsonReq("dynamodb", "DynamoDB_20120810.GetItem", `{"TableName":"orders","tablename":"x"}`), ""))
}
