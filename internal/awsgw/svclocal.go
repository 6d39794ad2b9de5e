package awsgw

import (
	"encoding/json"
	"encoding/xml"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/airlock-dev/airlock/internal/awsops"
	"github.com/airlock-dev/airlock/internal/gateway"
	"github.com/airlock-dev/airlock/internal/s3err"
)

// Calls the gateway answers itself (awsops.Op.Local): sts:GetCallerIdentity.
// An agent's SDK calls it to learn "who am I"; the honest answer is the
// grant, not the gateway's own upstream identity, and forwarding it would
// tell the agent the target's keys' identity (or role session). It is
// recorded like any call and never forwarded.
//
// The answer is:
//
//	Account  the target's account
//	Arn      arn:PARTITION:sts::ACCOUNT:assumed-role/airlock/IDENTITY
//	UserId   the grant id
//
// in the form the request came in: Query (XML, what the CLI and most
// SDKs send), JSON 1.0 or rpcv2-cbor (newer SDKs).

type callerIdentity struct {
	Account, Arn, UserID string
}

func (c *call) callerIdentity(t *target) callerIdentity {
	partition := "aws"
	switch {
	case strings.HasPrefix(t.Region, "cn-"):
		partition = "aws-cn"
	case strings.HasPrefix(t.Region, "us-gov-"):
		partition = "aws-us-gov"
	}
	return callerIdentity{
		Account: t.Account,
		Arn:     "arn:" + partition + ":sts::" + t.Account + ":assumed-role/airlock/" + stsName(c.gr.Identity),
		UserID:  c.gr.ID,
	}
}

type getCallerIdentityResponse struct {
	XMLName   xml.Name `xml:"https://sts.amazonaws.com/doc/2011-06-15/ GetCallerIdentityResponse"`
	Arn       string   `xml:"GetCallerIdentityResult>Arn"`
	UserID    string   `xml:"GetCallerIdentityResult>UserId"`
	Account   string   `xml:"GetCallerIdentityResult>Account"`
	RequestID string   `xml:"ResponseMetadata>RequestId"`
}

// answerLocal records and answers a call the gateway handles itself.
func (c *call) answerLocal(t *target, op *awsops.Op, bodyLen int) {
	g := c.gw
	if op.Service != "sts" || op.Operation != "GetCallerIdentity" {
		c.fail(s3err.New(s3err.AccessDenied, "%s %s: Airlock does not answer this call itself", op.Service, op.Operation))
		return
	}
	sess := c.openSession()
	if sess == nil {
		return
	}
	req := serviceCall(op, 0, c.reqID, bodyLen, true, "")
	req.Params["answered_by"] = "airlock"
	if err := sess.rec.Request(c.r.Context(), req); err != nil {
		sess.done()
		c.recordFailed(c.r.Context(), sess, err)
		return
	}
	id := c.callerIdentity(t)
	var body []byte
	h := c.w.Header()
	h.Set("X-Amzn-Requestid", c.reqID)
	switch op.Protocol {
	case protoJSON:
		body, _ = json.Marshal(map[string]string{"Account": id.Account, "Arn": id.Arn, "UserId": id.UserID})
		h.Set("Content-Type", "application/x-amz-json-1.0")
	case protoCBOR:
		body = cborStringMap("Account", id.Account, "Arn", id.Arn, "UserId", id.UserID)
		h.Set("Content-Type", "application/cbor")
		h.Set("Smithy-Protocol", "rpc-v2-cbor")
	default:
		b, _ := xml.Marshal(getCallerIdentityResponse{Arn: id.Arn, UserID: id.UserID, Account: id.Account, RequestID: c.reqID})
		body = append([]byte(xml.Header), b...)
		h.Set("Content-Type", "text/xml")
	}
	h.Set("Content-Length", strconv.Itoa(len(body)))
	c.w.WriteHeader(http.StatusOK)
	n, _ := c.w.Write(body)
	g.recordResult(sess, gateway.Call{Kind: "result", Action: req.Action, Resource: req.Resource, Allowed: true,
		Params: map[string]string{"request_id": c.reqID}, Status: "200", BytesIn: int64(bodyLen), BytesOut: int64(n), Duration: time.Since(c.start)}, true)
}
