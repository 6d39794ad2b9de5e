package awsops

import (
	"net/http"
	"testing"
)

// TestAmznTargetRefused: X-Amzn-Target is another name AWS front ends
// know for the target header; a call carrying it could be routed to an
// operation other than the one mapped, so it is refused in every
// protocol.
func TestAmznTargetRefused(t *testing.T) {
	with := func(r *Request) *Request {
		r.Header.Set("X-Amzn-Target", "DynamoDB_20120810.DeleteTable")
		return r
	}
	mustRefuse(t, with(jsonReq("dynamodb", "DynamoDB_20120810.DescribeTable", `{"TableName":"orders"}`)), "SerializationException")
	mustRefuse(t, with(queryReq("sqs", "Action=ListQueues")), "")
	cbor := &Request{Service: "monitoring", Region: region, Account: account, Method: "POST",
		Path: "/service/GraniteServiceVersion20100801/operation/ListMetrics", Header: http.Header{"Smithy-Protocol": {"rpc-v2-cbor"}}}
	mustRefuse(t, with(cbor), "")
	lambda := &Request{Service: "lambda", Region: region, Account: account, Method: "GET", Path: "/2015-03-31/functions/f", Header: http.Header{}}
	mustRefuse(t, with(lambda), "")
}
