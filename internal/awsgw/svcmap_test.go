package awsgw

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"

	"github.com/airlock-dev/airlock/internal/awsops"
)

// stubMap is a small stand-in for awsops.Map, for the gateway's own tests
// of routing, scope, recording and forwarding: it maps the operations the
// tests call, with the ARNs of docs/aws-mapping.md. The mapper's own
// coverage is tested in internal/awsops.
func stubMap(r *awsops.Request) (*awsops.Op, error) {
	arn := func(svc, res string) string { return "arn:aws:" + svc + ":" + r.Region + ":" + r.Account + ":" + res }
	deny := func(op, msg string) error {
		return &awsops.Error{Service: r.Service, Operation: op, Code: "AccessDeniedException", Status: http.StatusForbidden, Msg: msg}
	}
	op := &awsops.Op{Service: r.Service, Params: map[string]string{}}
	target := r.Header.Values("X-Amz-Target")
	if len(target) > 1 {
		return nil, deny("", "more than one X-Amz-Target")
	}
	var body map[string]any
	if len(target) == 1 {
		op.Protocol = "json"
		prefix, name, _ := strings.Cut(target[0], ".")
		op.Operation = name
		want := map[string]string{"dynamodb": "DynamoDB_20120810", "logs": "Logs_20140328", "ssm": "AmazonSSM", "sqs": "AmazonSQS", "sts": "AWSSecurityTokenServiceV20110615"}[r.Service]
		if prefix != want {
			return nil, deny(name, "X-Amz-Target "+target[0]+" is not a "+r.Service+" operation")
		}
		if err := json.Unmarshal(r.Body, &body); err != nil {
			return nil, &awsops.Error{Service: r.Service, Operation: name, Code: "SerializationException", Status: 400, Msg: "malformed JSON body"}
		}
	} else if strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") || strings.Contains(r.RawQuery, "Action=") {
		op.Protocol = "query"
		v, _ := url.ParseQuery(string(r.Body))
		if len(v) == 0 {
			v, _ = url.ParseQuery(r.RawQuery)
		}
		op.Operation = v.Get("Action")
		body = map[string]any{}
		for k := range v {
			body[k] = v.Get(k)
		}
	} else if r.Service == "lambda" {
		op.Protocol = "rest-json"
		rest := strings.TrimPrefix(r.Path, "/2015-03-31/functions")
		fn := strings.Trim(strings.TrimSuffix(rest, "/invocations"), "/")
		switch {
		case strings.HasSuffix(rest, "/invocations") && r.Method == "POST":
			op.Operation = "Invoke"
		case fn == "" && r.Method == "GET":
			op.Operation = "ListFunctions"
			op.ReadOnly = true
			op.Checks = []awsops.Check{{Action: "lambda:ListFunctions", Resource: "*"}}
			return op, nil
		case r.Method == "GET":
			op.Operation, op.ReadOnly = "GetFunction", true
		}
		op.Params["function"] = fn
		op.Checks = []awsops.Check{{Action: "lambda:" + op.Operation, Resource: arn("lambda", "function:"+fn)}}
		return op, nil
	}
	s := func(k string) string { v, _ := body[k].(string); return v }
	add := func(action, res string) {
		op.Checks = append(op.Checks, awsops.Check{Action: r.Service + ":" + action, Resource: res})
	}
	switch r.Service + " " + op.Operation {
	case "dynamodb GetItem", "dynamodb Query", "dynamodb DescribeTable", "dynamodb Scan":
		op.ReadOnly = true
		fallthrough
	case "dynamodb PutItem", "dynamodb CreateTable", "dynamodb DeleteTable":
		add(op.Operation, arn("dynamodb", "table/"+s("TableName")))
		op.Params["table"] = s("TableName")
	case "dynamodb BatchWriteItem":
		items, _ := body["RequestItems"].(map[string]any)
		for t := range items {
			add("BatchWriteItem", arn("dynamodb", "table/"+t))
		}
	case "dynamodb ListTables":
		op.ReadOnly = true
		add("ListTables", "*")
	case "logs FilterLogEvents", "logs GetLogEvents", "logs DescribeLogStreams":
		op.ReadOnly = true
		add(op.Operation, arn("logs", "log-group:"+s("logGroupName")))
		op.Params["log_group"] = s("logGroupName")
		if f := s("filterPattern"); f != "" {
			op.Params["filter_pattern"] = f
		}
	case "logs DescribeLogGroups":
		op.ReadOnly = true
		add(op.Operation, arn("logs", "log-group:*"))
	case "ssm GetParameter":
		op.ReadOnly, op.SecretResult = true, true
		add(op.Operation, arn("ssm", "parameter/"+strings.TrimPrefix(s("Name"), "/")))
		op.Params["names"] = s("Name")
	case "ssm GetParameters":
		op.ReadOnly, op.SecretResult = true, true
		names, _ := body["Names"].([]any)
		for _, n := range names {
			name, _ := n.(string)
			add(op.Operation, arn("ssm", "parameter/"+strings.TrimPrefix(name, "/")))
		}
	case "ec2 DescribeInstances", "ec2 DescribeRegions":
		op.ReadOnly = true
		add(op.Operation, "*")
	case "sts GetCallerIdentity":
		op.ReadOnly, op.Local = true, true
		add(op.Operation, "*")
	case "sqs SendMessage", "sqs ReceiveMessage", "sqs DeleteMessage":
		u, err := url.Parse(s("QueueUrl"))
		if err != nil || u.Path == "" {
			return nil, deny(op.Operation, "no QueueUrl")
		}
		parts := strings.Split(strings.Trim(u.Path, "/"), "/")
		add(op.Operation, arn("sqs", parts[len(parts)-1]))
		op.Params["queue"] = parts[len(parts)-1]
	default:
		return nil, deny(op.Operation, "not mapped")
	}
	if len(op.Checks) == 0 {
		return nil, deny(op.Operation, "no resource")
	}
	return op, nil
}
