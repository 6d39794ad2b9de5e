package awsops

import "strings"

var tableChars = charset("_.-")

// table returns the table ARN for a TableName, which may itself be a
// table ARN of the target's account and region.
func (m *mapper) table(name string) (string, error) {
	if strings.HasPrefix(name, "arn:") {
		t, err := m.fromARN("TableName", name, "dynamodb", "table/")
		if err != nil {
			return "", err
		}
		if strings.Contains(t, "/") {
			return "", m.failure(codeInvalid, "TableName %q is not a table ARN", esc(name))
		}
		name = t
	}
	if err := m.name("TableName", name, 1, 255, tableChars); err != nil {
		return "", err
	}
	return m.arn("dynamodb", "table/"+name), nil
}

// tableFrom reads TableName (and IndexName when index is true) and adds
// action's check: on the table, or on table/NAME/index/INDEX as IAM
// authorizes index reads.
func tableFrom(action string, index bool) func(m *mapper, in input, op *Op) error {
	return func(m *mapper, in input, op *Op) error {
		name, err := in.str("TableName")
		if err != nil {
			return err
		}
		res, err := m.table(name)
		if err != nil {
			return err
		}
		op.param("table", name)
		if index {
			idx, err := in.str("IndexName")
			if err != nil {
				return err
			}
			if idx != "" {
				if err := m.name("IndexName", idx, 3, 255, tableChars); err != nil {
					return err
				}
				res += "/index/" + idx
				op.param("index", idx)
			}
			for k, p := range map[string]string{"KeyConditionExpression": "keyCondition", "FilterExpression": "filter"} {
				v, err := in.str(k)
				if err != nil {
					return err
				}
				op.param(p, v)
			}
		}
		op.check(action, res)
		return nil
	}
}

// batchTables adds action's check on every table of RequestItems.
func batchTables(action string) func(m *mapper, in input, op *Op) error {
	return func(m *mapper, in input, op *Op) error {
		ri, err := in.member("RequestItems")
		if err != nil {
			return err
		}
		if ri == nil || ri.kind != 'o' || len(ri.obj) == 0 {
			return m.failure(codeInvalid, "RequestItems must name at least one table")
		}
		var names []string
		for _, mb := range ri.obj {
			res, err := m.table(mb.name)
			if err != nil {
				return err
			}
			op.check(action, res)
			names = append(names, mb.name)
		}
		op.paramList("tables", names)
		return nil
	}
}

// transactTables adds, for every element of TransactItems, the check of
// the action IAM authorizes it with on its table.
func transactTables(kinds map[string]string) func(m *mapper, in input, op *Op) error {
	return func(m *mapper, in input, op *Op) error {
		ti, err := in.member("TransactItems")
		if err != nil {
			return err
		}
		if ti == nil || ti.kind != 'a' || len(ti.arr) == 0 {
			return m.failure(codeInvalid, "TransactItems must list at least one item")
		}
		var names []string
		for _, it := range ti.arr {
			if it.kind != 'o' {
				return m.failure(codeMalformed, "TransactItems elements must be objects")
			}
			found := 0
			for kind, action := range kinds {
				v, err := m.get(it, kind)
				if err != nil {
					return err
				}
				if v == nil {
					continue
				}
				found++
				name, err := m.str(v, "TableName")
				if err != nil {
					return err
				}
				res, err := m.table(name)
				if err != nil {
					return err
				}
				op.check(action, res)
				names = append(names, name)
			}
			if found != 1 || len(it.obj) != 1 {
				return m.failure(codeInvalid, "each TransactItems element names exactly one operation")
			}
		}
		op.paramList("tables", names)
		return nil
	}
}

// createTable checks dynamodb:CreateTable on the table and, when the call
// attaches a resource-based policy (ResourcePolicy), also
// dynamodb:PutResourcePolicy on it, as AWS does: the policy can open the
// new table to other principals and accounts, beyond the grant's end.
// Tags likewise also need dynamodb:TagResource: under attribute-based
// access control (aws:ResourceTag conditions in the account's policies) a
// tag is a grant of access to the table, to whoever those policies name.
func createTable(m *mapper, in input, op *Op) error {
	if err := tableFrom("dynamodb:CreateTable", false)(m, in, op); err != nil {
		return err
	}
	pol, err := in.member("ResourcePolicy")
	if err != nil {
		return err
	}
	if pol != nil && pol.kind != '0' {
		op.check("dynamodb:PutResourcePolicy", op.Checks[0].Resource)
	}
	tags, err := in.member("Tags")
	if err != nil {
		return err
	}
	if tags != nil && tags.kind != '0' && (tags.kind != 'a' || len(tags.arr) > 0) {
		op.check("dynamodb:TagResource", op.Checks[0].Resource)
	}
	return tableKey(m, in, op)
}

// tableKey adds, for a table encrypted with a customer managed KMS key
// (SSESpecification.KMSMasterKeyId), kms:CreateGrant and kms:DescribeKey
// on the key: DynamoDB describes the key and creates a grant on it on
// the caller's behalf, which AWS authorizes with the caller's own
// permissions on the key. A key of another account is refused.
func tableKey(m *mapper, in input, op *Op) error {
	sse, err := in.member("SSESpecification")
	if err != nil || sse == nil || sse.kind == '0' {
		return err
	}
	if sse.kind != 'o' {
		return m.failure(codeMalformed, "member SSESpecification must be an object")
	}
	id, err := m.str(sse, "KMSMasterKeyId")
	if err != nil || id == "" {
		return err
	}
	res, err := m.kmsKey(id, op)
	if err != nil {
		return err
	}
	op.check("kms:CreateGrant", res)
	op.check("kms:DescribeKey", res)
	return nil
}

func everything(action string) func(m *mapper, in input, op *Op) error {
	return func(m *mapper, in input, op *Op) error {
		op.check(action, "*")
		return nil
	}
}

func init() {
	const tableRes = "`arn:aws:dynamodb:R:A:table/NAME`"
	const idx = tableRes + ", or `…/index/INDEX` with IndexName"
	const each = tableRes + " for every table in RequestItems"
	register("dynamodb", map[string]*spec{
		"GetItem":    {protos: pJSON, readOnly: true, fn: tableFrom("dynamodb:GetItem", false), actions: "dynamodb:GetItem", resources: tableRes, params: "table"},
		"Query":      {protos: pJSON, readOnly: true, fn: tableFrom("dynamodb:Query", true), actions: "dynamodb:Query", resources: idx, params: "table, index, keyCondition, filter"},
		"Scan":       {protos: pJSON, readOnly: true, fn: tableFrom("dynamodb:Scan", true), actions: "dynamodb:Scan", resources: idx, params: "table, index, filter"},
		"PutItem":    {protos: pJSON, fn: tableFrom("dynamodb:PutItem", false), actions: "dynamodb:PutItem", resources: tableRes, params: "table"},
		"UpdateItem": {protos: pJSON, fn: tableFrom("dynamodb:UpdateItem", false), actions: "dynamodb:UpdateItem", resources: tableRes, params: "table"},
		"DeleteItem": {protos: pJSON, fn: tableFrom("dynamodb:DeleteItem", false), actions: "dynamodb:DeleteItem", resources: tableRes, params: "table"},
		"BatchGetItem": {protos: pJSON, readOnly: true, fn: batchTables("dynamodb:BatchGetItem"),
			actions: "dynamodb:BatchGetItem", resources: each, params: "tables"},
		"BatchWriteItem": {protos: pJSON, fn: batchTables("dynamodb:BatchWriteItem"),
			actions: "dynamodb:BatchWriteItem", resources: each, params: "tables"},
		"TransactGetItems": {protos: pJSON, readOnly: true, fn: transactTables(map[string]string{"Get": "dynamodb:GetItem"}),
			actions: "dynamodb:GetItem per item", resources: tableRes + " of every item", params: "tables"},
		"TransactWriteItems": {protos: pJSON, fn: transactTables(map[string]string{"Put": "dynamodb:PutItem", "Update": "dynamodb:UpdateItem",
			"Delete": "dynamodb:DeleteItem", "ConditionCheck": "dynamodb:ConditionCheckItem"}),
			actions: "dynamodb:PutItem, UpdateItem, DeleteItem or ConditionCheckItem per item", resources: tableRes + " of every item", params: "tables"},
		"DescribeTable":     {protos: pJSON, readOnly: true, fn: tableFrom("dynamodb:DescribeTable", false), actions: "dynamodb:DescribeTable", resources: tableRes, params: "table"},
		"CreateTable":       {protos: pJSON, fn: createTable, actions: "dynamodb:CreateTable; with ResourcePolicy also dynamodb:PutResourcePolicy; with Tags also dynamodb:TagResource; with SSESpecification.KMSMasterKeyId also kms:CreateGrant and kms:DescribeKey", resources: tableRes + "; the KMS key as for KMS calls", params: "table, keyId"},
		"ListTables":        {protos: pJSON, readOnly: true, fn: everything("dynamodb:ListTables"), actions: "dynamodb:ListTables", resources: "`*`"},
		"DescribeEndpoints": {protos: pJSON, readOnly: true, fn: everything("dynamodb:DescribeEndpoints"), actions: "dynamodb:DescribeEndpoints", resources: "`*`"},
	})
}
