package awsfake

import (
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"strings"
)

func xmlEscapeText(w io.Writer, s string) error { return xml.EscapeText(w, []byte(s)) }

const (
	jsonCT10 = "application/x-amz-json-1.0"
	jsonCT11 = "application/x-amz-json-1.1"
)

// Account is the account id in the fake's ARNs and answers.
const Account = "111122223333"

type handler func(s *Server, w http.ResponseWriter, r *Request)

// handlers answer "service Operation" with the documented response shape.
var handlers = map[string]handler{
	// CloudWatch Logs (JSON 1.1, Logs_20140328.*).
	"logs FilterLogEvents": func(s *Server, w http.ResponseWriter, r *Request) {
		p := params(r)
		group := str(p, "logGroupName")
		writeJSON(w, jsonCT11, map[string]any{
			"events": []map[string]any{
				{"logStreamName": "api-1", "timestamp": epoch.UnixMilli(), "message": "ERROR payment timeout order=42 (" + group + ")", "ingestionTime": epoch.UnixMilli() + 5, "eventId": "37134448277055698880077459798531820155718120468741079040"},
				{"logStreamName": "api-2", "timestamp": epoch.UnixMilli() + 1000, "message": "ERROR payment timeout order=43", "ingestionTime": epoch.UnixMilli() + 1005, "eventId": "37134448277055698880077459798531820155718120468741079041"},
			},
			"searchedLogStreams": []map[string]any{{"logStreamName": "api-1", "searchedCompletely": true}},
		})
	},
	"logs GetLogEvents": func(s *Server, w http.ResponseWriter, r *Request) {
		writeJSON(w, jsonCT11, map[string]any{
			"events":            []map[string]any{{"timestamp": epoch.UnixMilli(), "message": "started", "ingestionTime": epoch.UnixMilli() + 3}},
			"nextForwardToken":  "f/37134448277055698880077459798531820155718120468741079040/s",
			"nextBackwardToken": "b/37134448277055698880077459798531820155718120468741079040/s",
		})
	},
	"logs DescribeLogGroups": func(s *Server, w http.ResponseWriter, r *Request) {
		writeJSON(w, jsonCT11, map[string]any{"logGroups": []map[string]any{
			{"logGroupName": "/app/api", "creationTime": epoch.UnixMilli(), "metricFilterCount": 0, "storedBytes": 1024,
				"arn": "arn:aws:logs:" + s.Region + ":" + Account + ":log-group:/app/api:*"},
		}})
	},
	"logs DescribeLogStreams": func(s *Server, w http.ResponseWriter, r *Request) {
		writeJSON(w, jsonCT11, map[string]any{"logStreams": []map[string]any{
			{"logStreamName": "api-1", "creationTime": epoch.UnixMilli(), "storedBytes": 0,
				"arn": "arn:aws:logs:" + s.Region + ":" + Account + ":log-group:/app/api:log-stream:api-1"},
		}})
	},
	"logs StartQuery": func(s *Server, w http.ResponseWriter, r *Request) {
		writeJSON(w, jsonCT11, map[string]any{"queryId": "12ab3456-12ab-123a-789e-1234567890ab"})
	},
	"logs GetQueryResults": func(s *Server, w http.ResponseWriter, r *Request) {
		writeJSON(w, jsonCT11, map[string]any{
			"status":     "Complete",
			"results":    [][]map[string]string{{{"field": "@timestamp", "value": "2026-01-02 03:04:05.000"}, {"field": "@message", "value": "ERROR payment timeout"}}},
			"statistics": map[string]float64{"recordsMatched": 1, "recordsScanned": 120, "bytesScanned": 9000},
		})
	},
	"logs PutLogEvents": func(s *Server, w http.ResponseWriter, r *Request) {
		writeJSON(w, jsonCT11, map[string]any{"nextSequenceToken": "49590302891239823749823749823749823749823749823749823742"})
	},

	// SSM Parameter Store (JSON 1.1, AmazonSSM.*).
	"ssm GetParameter": func(s *Server, w http.ResponseWriter, r *Request) {
		p := params(r)
		writeJSON(w, jsonCT11, map[string]any{"Parameter": parameter(s, str(p, "Name"))})
	},
	"ssm GetParameters": func(s *Server, w http.ResponseWriter, r *Request) {
		p := params(r)
		var out []map[string]any
		names, _ := p["Names"].([]any)
		for _, n := range names {
			name, _ := n.(string)
			out = append(out, parameter(s, name))
		}
		writeJSON(w, jsonCT11, map[string]any{"Parameters": out, "InvalidParameters": []string{}})
	},
	"ssm GetParametersByPath": func(s *Server, w http.ResponseWriter, r *Request) {
		p := params(r)
		path := strings.TrimSuffix(str(p, "Path"), "/")
		writeJSON(w, jsonCT11, map[string]any{"Parameters": []map[string]any{parameter(s, path+"/url"), parameter(s, path+"/pool-size")}})
	},

	// Lambda (REST-JSON).
	"lambda ListFunctions": func(s *Server, w http.ResponseWriter, r *Request) {
		writeJSON(w, "application/json", map[string]any{"Functions": []map[string]any{function(s, "triage-helper")}})
	},
	"lambda GetFunction": func(s *Server, w http.ResponseWriter, r *Request) {
		name := strings.TrimPrefix(r.Path, "/2015-03-31/functions/")
		writeJSON(w, "application/json", map[string]any{
			"Configuration": function(s, name),
			"Code":          map[string]string{"RepositoryType": "S3", "Location": "https://awslambda-" + s.Region + "-tasks.s3." + s.Region + ".amazonaws.com/snapshots/" + Account + "/" + name},
		})
	},
	"lambda Invoke": func(s *Server, w http.ResponseWriter, r *Request) {
		w.Header().Set("X-Amz-Executed-Version", "$LATEST")
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"statusCode":200,"received":%d}`, len(r.Body))
	},

	// EC2 (its own Query dialect).
	"ec2 DescribeInstances": func(s *Server, w http.ResponseWriter, r *Request) {
		writeXML(w, `<DescribeInstancesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">
  <requestId>8f7724cf-496f-496e-8fe3-example</requestId>
  <reservationSet>
    <item>
      <reservationId>r-1234567890abcdef0</reservationId>
      <ownerId>`+Account+`</ownerId>
      <groupSet/>
      <instancesSet>
        <item>
          <instanceId>i-1234567890abcdef0</instanceId>
          <imageId>ami-0abcdef1234567890</imageId>
          <instanceState><code>16</code><name>running</name></instanceState>
          <privateDnsName>ip-10-0-0-157.ec2.internal</privateDnsName>
          <instanceType>t3.micro</instanceType>
          <launchTime>2026-01-02T03:04:05.000Z</launchTime>
          <placement><availabilityZone>`+s.Region+`a</availabilityZone><tenancy>default</tenancy></placement>
          <privateIpAddress>10.0.0.157</privateIpAddress>
        </item>
      </instancesSet>
    </item>
  </reservationSet>
</DescribeInstancesResponse>`)
	},
	"ec2 DescribeRegions": func(s *Server, w http.ResponseWriter, r *Request) {
		writeXML(w, `<DescribeRegionsResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">
  <requestId>59dbff89-35bd-4eac-99ed-example</requestId>
  <regionInfo>
    <item><regionName>`+s.Region+`</regionName><regionEndpoint>ec2.`+s.Region+`.amazonaws.com</regionEndpoint><optInStatus>opt-in-not-required</optInStatus></item>
  </regionInfo>
</DescribeRegionsResponse>`)
	},

	// SQS: AWS Query (older SDKs, the CLI 2.9) and JSON 1.0 (AmazonSQS.*).
	"sqs SendMessage": func(s *Server, w http.ResponseWriter, r *Request) {
		if r.Target != "" {
			writeJSON(w, jsonCT10, map[string]string{"MD5OfMessageBody": md5Hex(str(params(r), "MessageBody")), "MessageId": "5fea7756-0ea4-451a-a703-a558b933e274"})
			return
		}
		writeXML(w, `<SendMessageResponse xmlns="http://queue.amazonaws.com/doc/2012-11-05/"><SendMessageResult><MD5OfMessageBody>`+md5Hex(form(r).Get("MessageBody"))+`</MD5OfMessageBody><MessageId>5fea7756-0ea4-451a-a703-a558b933e274</MessageId></SendMessageResult><ResponseMetadata><RequestId>27daac76-34dd-47df-bd01-1f6e873584a0</RequestId></ResponseMetadata></SendMessageResponse>`)
	},
	"sqs ReceiveMessage": func(s *Server, w http.ResponseWriter, r *Request) {
		const body = "job 42: reindex"
		if r.Target != "" {
			writeJSON(w, jsonCT10, map[string]any{"Messages": []map[string]string{{"MessageId": "5fea7756-0ea4-451a-a703-a558b933e274", "ReceiptHandle": "MbZj6wDWli+JvwwJaBV+3dcjk2YW2vA3+STFFljTM8tJJg6HRG6PYSasuWXPJB+Cw", "MD5OfBody": md5Hex(body), "Body": body}}})
			return
		}
		writeXML(w, `<ReceiveMessageResponse xmlns="http://queue.amazonaws.com/doc/2012-11-05/"><ReceiveMessageResult><Message><MessageId>5fea7756-0ea4-451a-a703-a558b933e274</MessageId><ReceiptHandle>MbZj6wDWli+JvwwJaBV+3dcjk2YW2vA3+STFFljTM8tJJg6HRG6PYSasuWXPJB+Cw</ReceiptHandle><MD5OfBody>`+md5Hex(body)+`</MD5OfBody><Body>`+body+`</Body></Message></ReceiveMessageResult><ResponseMetadata><RequestId>b6633655-283d-45b4-aee4-4e84e0ae6afa</RequestId></ResponseMetadata></ReceiveMessageResponse>`)
	},
	"sqs DeleteMessage": func(s *Server, w http.ResponseWriter, r *Request) {
		if r.Target != "" {
			writeJSON(w, jsonCT10, map[string]any{})
			return
		}
		writeXML(w, `<DeleteMessageResponse xmlns="http://queue.amazonaws.com/doc/2012-11-05/"><ResponseMetadata><RequestId>b5293cb5-d306-4a17-9048-b263635abe42</RequestId></ResponseMetadata></DeleteMessageResponse>`)
	},

	// STS: the gateway answers GetCallerIdentity itself; the fake answers
	// it too, with an identity no test expects, so that a forwarded call
	// shows.
	"sts GetCallerIdentity": func(s *Server, w http.ResponseWriter, r *Request) {
		writeXML(w, `<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><GetCallerIdentityResult><Arn>arn:aws:iam::`+Account+`:user/UPSTREAM-IDENTITY-LEAKED</Arn><UserId>AIDAUPSTREAM</UserId><Account>`+Account+`</Account></GetCallerIdentityResult><ResponseMetadata><RequestId>01234567-89ab-cdef-0123-456789abcdef</RequestId></ResponseMetadata></GetCallerIdentityResponse>`)
	},

	// DynamoDB (JSON 1.0, DynamoDB_20120810.*), for benchmarks and for
	// machines without dynalite.
	"dynamodb GetItem": func(s *Server, w http.ResponseWriter, r *Request) {
		p := params(r)
		writeJSON(w, jsonCT10, map[string]any{"Item": map[string]any{"id": (p["Key"].(map[string]any))["id"], "status": map[string]string{"S": "shipped"}, "total": map[string]string{"N": "42.5"}}})
	},
	"dynamodb PutItem": func(s *Server, w http.ResponseWriter, r *Request) {
		writeJSON(w, jsonCT10, map[string]any{})
	},
}

func parameter(s *Server, name string) map[string]any {
	return map[string]any{"Name": name, "Type": "String", "Value": "value-of-" + name, "Version": 3, "DataType": "text",
		"LastModifiedDate": float64(epoch.Unix()), "ARN": "arn:aws:ssm:" + s.Region + ":" + Account + ":parameter" + ensureSlash(name)}
}

func ensureSlash(n string) string {
	if strings.HasPrefix(n, "/") {
		return n
	}
	return "/" + n
}

func function(s *Server, name string) map[string]any {
	return map[string]any{"FunctionName": name, "FunctionArn": "arn:aws:lambda:" + s.Region + ":" + Account + ":function:" + name,
		"Runtime": "python3.12", "Role": "arn:aws:iam::" + Account + ":role/lambda-exec", "Handler": "app.handler",
		"CodeSize": 1024, "Timeout": 30, "MemorySize": 128, "LastModified": "2026-01-02T03:04:05.000+0000", "Version": "$LATEST",
		"State": "Active", "PackageType": "Zip", "Architectures": []string{"x86_64"}}
}
