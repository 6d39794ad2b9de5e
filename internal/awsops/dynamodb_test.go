package awsops

import (
	"slices"
	"testing"
)

// TestCreateTableResourcePolicy: a CreateTable that attaches a
// resource-based policy needs dynamodb:PutResourcePolicy on the table too.
func TestCreateTableResourcePolicy(t *testing.T) {
	const target = "DynamoDB_20120810.CreateTable"
	for body, want := range map[string][]Check{
		`{"TableName":"t"}`:                                                            {{"dynamodb:CreateTable", ddb + "t"}},
		`{"TableName":"t","ResourcePolicy":null}`:                                      {{"dynamodb:CreateTable", ddb + "t"}},
		`{"TableName":"t","ResourcePolicy":"{}"}`:                                      {{"dynamodb:CreateTable", ddb + "t"}, {"dynamodb:PutResourcePolicy", ddb + "t"}},
		`{"TableName":"` + ddb + `t","ResourcePolicy":"{\"Version\":\"2012-10-17\"}"}`: {{"dynamodb:CreateTable", ddb + "t"}, {"dynamodb:PutResourcePolicy", ddb + "t"}},
	} {
		op := mustMap(t, jsonReq("dynamodb", target, body))
		sortChecks(op.Checks)
		if !slices.Equal(op.Checks, want) {
			t.Errorf("%s: checks %v, want %v", body, op.Checks, want)
		}
	}
	mustRefuse(t, jsonReq("dynamodb", target, `{"TableName":"t","resourcePolicy":"{}"}`), "SerializationException")
}
