package awsgw

import (
	"bytes"
	"context"
	"errors"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/protocol/ec2query"
	awsxml "github.com/aws/aws-sdk-go-v2/aws/protocol/xml"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go"

	"github.com/airlock-dev/airlock/internal/s3err"
	"github.com/airlock-dev/airlock/internal/testenv"
)

// The refusals the gateway itself answers a call to a service other than
// S3 with, each provoked as an agent would meet it.
const (
	refDenied   = "outside the scope"
	refUnknown  = "unknown key"
	refBadSig   = "wrong secret"
	refEnded    = "revoked grant"
	refRegion   = "another region"
	refTooLarge = "body over the limit"
	refRecord   = "record failed"
	refUpstream = "upstream down"
	refClosing  = "gateway closing"
	refUnsigned = "unsigned"
)

// Each protocol family's codes for those refusals.
var (
	jsonRefusalCodes = map[string]string{refDenied: "AccessDeniedException", refUnknown: "UnrecognizedClientException", refBadSig: "InvalidSignatureException",
		refEnded: "AccessDeniedException", refRegion: "InvalidSignatureException", refTooLarge: "RequestEntityTooLargeException", refRecord: "ServiceUnavailable",
		refUpstream: "ServiceUnavailable", refClosing: "ServiceUnavailable", refUnsigned: "MissingAuthenticationTokenException"}
	// Logs' (JSON 1.1) and Lambda's (REST-JSON) are JSON's but for their
	// own 503, ServiceUnavailableException.
	ownUnavailableRefusalCodes = func() map[string]string {
		m := maps.Clone(jsonRefusalCodes)
		m[refRecord], m[refUpstream], m[refClosing] = "ServiceUnavailableException", "ServiceUnavailableException", "ServiceUnavailableException"
		return m
	}()
	queryRefusalCodes = map[string]string{refDenied: "AccessDenied", refUnknown: "InvalidClientTokenId", refBadSig: "SignatureDoesNotMatch",
		refEnded: "AccessDenied", refRegion: "SignatureDoesNotMatch", refTooLarge: "RequestEntityTooLarge", refRecord: "ServiceUnavailable",
		refUpstream: "ServiceUnavailable", refClosing: "ServiceUnavailable", refUnsigned: "MissingAuthenticationToken"}
	// EC2's own: AuthFailure for any credential it cannot validate;
	// MissingAuthenticationToken, as every Query service, for none at all.
	ec2RefusalCodes = map[string]string{refDenied: "UnauthorizedOperation", refUnknown: "AuthFailure", refBadSig: "AuthFailure",
		refEnded: "UnauthorizedOperation", refRegion: "AuthFailure", refTooLarge: "RequestEntityTooLarge", refRecord: "ServiceUnavailable",
		refUpstream: "ServiceUnavailable", refClosing: "ServiceUnavailable", refUnsigned: "MissingAuthenticationToken"}
)

// refStatus is the status of the refusals whose status is the same in
// every protocol family.
var refStatus = map[string]int{refTooLarge: http.StatusRequestEntityTooLarge, refClosing: http.StatusServiceUnavailable,
	refUnsigned: http.StatusForbidden, refDenied: http.StatusForbidden}

// overLimit is a parameter too long for any body the gateway reads but
// Lambda's.
var overLimit = strings.Repeat("x", 1<<20+1)

// TestServiceRefusalShapes: every refusal the gateway itself answers a
// call to a service other than S3 with reaches the agent as the service's
// own error, which the AWS SDK for Go v2 parses into an API error with
// the gateway's code (not an UnknownError or a deserialization error),
// for each protocol family: JSON 1.0 (DynamoDB), JSON 1.1 (Logs),
// REST-JSON (Lambda), RPC v2 CBOR (CloudWatch), Query (STS) and EC2's
// Query.
func TestServiceRefusalShapes(t *testing.T) {
	scope := []string{"dynamodb:PutItem arn:aws:dynamodb:" + testRegion + ":" + testAccount + ":table/orders",
		"logs:FilterLogEvents arn:aws:logs:" + testRegion + ":" + testAccount + ":log-group:/app/api",
		"lambda:InvokeFunction arn:aws:lambda:" + testRegion + ":" + testAccount + ":function:triage-helper",
		"cloudwatch:ListMetrics *", "sts:GetCallerIdentity *", "ec2:DescribeInstances *"}
	families := []struct {
		name, service string // service: its endpoint key
		codes         map[string]string
		// call makes one call; big makes its body larger than the gateway
		// reads, unsigned makes the one the SDK sends unsigned (STS), or
		// is left to anonymous credentials.
		call func(ctx context.Context, cfg aws.Config, big, unsigned bool) error
	}{
		{"json-1.0 dynamodb", "dynamodb", jsonRefusalCodes, func(ctx context.Context, cfg aws.Config, big, _ bool) error {
			v := "o1"
			if big {
				v = overLimit
			}
			_, err := dynamodb.NewFromConfig(cfg).PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String("orders"), Item: map[string]ddbtypes.AttributeValue{"id": &ddbtypes.AttributeValueMemberS{Value: v}}})
			return err
		}},
		{"json-1.1 logs", "logs", ownUnavailableRefusalCodes, func(ctx context.Context, cfg aws.Config, big, _ bool) error {
			p := "ERROR"
			if big {
				p = overLimit
			}
			_, err := cloudwatchlogs.NewFromConfig(cfg).FilterLogEvents(ctx, &cloudwatchlogs.FilterLogEventsInput{LogGroupName: aws.String("/app/api"), FilterPattern: aws.String(p)})
			return err
		}},
		{"rest-json lambda", "lambda", ownUnavailableRefusalCodes, func(ctx context.Context, cfg aws.Config, big, _ bool) error {
			p := []byte(`{"order":42}`)
			if big {
				p = bytes.Repeat([]byte(" "), maxLambdaBody+1)
			}
			_, err := lambda.NewFromConfig(cfg).Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String("triage-helper"), Payload: p})
			return err
		}},
		// Query-compatible: its SDK reports the Query code the gateway
		// sends in X-Amzn-Query-Error, as CloudWatch's own errors carry.
		{"cbor cloudwatch", "monitoring", queryRefusalCodes, func(ctx context.Context, cfg aws.Config, big, _ bool) error {
			ns := "AWS/EC2"
			if big {
				ns = overLimit
			}
			_, err := cloudwatch.NewFromConfig(cfg).ListMetrics(ctx, &cloudwatch.ListMetricsInput{Namespace: aws.String(ns)})
			return err
		}},
		{"query sts", "sts", queryRefusalCodes, func(ctx context.Context, cfg aws.Config, big, unsigned bool) error {
			c := sts.NewFromConfig(cfg)
			var err error
			switch {
			case unsigned:
				_, err = c.AssumeRoleWithWebIdentity(ctx, &sts.AssumeRoleWithWebIdentityInput{RoleArn: aws.String("arn:aws:iam::" + testAccount + ":role/agent"),
					RoleSessionName: aws.String("agent"), WebIdentityToken: aws.String("a-token")})
			case big:
				_, err = c.AssumeRole(ctx, &sts.AssumeRoleInput{RoleArn: aws.String("arn:aws:iam::" + testAccount + ":role/agent"), RoleSessionName: aws.String("agent"), Policy: aws.String(overLimit)})
			default:
				_, err = c.GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
			}
			return err
		}},
		{"ec2", "ec2", ec2RefusalCodes, func(ctx context.Context, cfg aws.Config, big, _ bool) error {
			in := &ec2.DescribeInstancesInput{}
			if big {
				in.InstanceIds = []string{overLimit}
			}
			_, err := ec2.NewFromConfig(cfg).DescribeInstances(ctx, in)
			return err
		}},
	}
	// An upstream nobody listens on. Not a port the kernel handed out (a
	// listener on :0, closed): the kernel hands it out again for the next
	// outgoing connection of any process, and under a parallel go test
	// another package's server took one once, so the "down" upstream
	// answered 403 with a body of its own. FreeAddr's ports are below
	// the ephemeral range.
	closedPort := func(t *testing.T) string { return "http://" + testenv.FreeAddr(t) }
	ctx := context.Background()
	for _, f := range families {
		t.Run(f.name, func(t *testing.T) {
			for _, ref := range []string{refDenied, refUnknown, refBadSig, refEnded, refRegion, refTooLarge, refRecord, refUpstream, refClosing, refUnsigned} {
				if ref == refUpstream && f.service == "sts" {
					continue // the STS call Airlock forwards is none: EC2's stands for Query
				}
				var e *svcEnv
				if ref == refUpstream {
					down := closedPort(t)
					e = newSvcEnv(t, func(o *Options) { o.Targets[0].Endpoints[f.service] = down })
				} else {
					e = newSvcEnv(t, func(o *Options) { o.Targets[0].Endpoints["monitoring"] = closedPort(t) })
				}
				g := e.grant(scope...)
				cfg := e.cfg(g)
				big, unsigned := false, false
				switch ref {
				case refDenied:
					cfg = e.cfg(e.grant("s3:GetObject arn:aws:s3:::logs/*"))
				case refUnknown:
					cfg.Credentials = credentials.NewStaticCredentialsProvider("AKIAUNKNOWNUNKNOWN00", "secret", "")
				case refBadSig:
					cfg.Credentials = credentials.NewStaticCredentialsProvider(g.CredentialID, "not-the-secret", g.SessionToken)
				case refEnded:
					e.auth.End(g, "revoked")
				case refRegion:
					cfg.Region = "eu-west-1"
				case refTooLarge:
					big = true
				case refRecord:
					// The session starts; then the call's own record fails.
					_ = f.call(ctx, cfg, false, false)
					e.auth.FailRecords(true)
				case refClosing:
					if err := e.gw.Close(); err != nil {
						t.Fatal(err)
					}
				case refUnsigned:
					unsigned = true
					if f.service != "sts" {
						cfg.Credentials = aws.AnonymousCredentials{}
					}
				}
				err := f.call(ctx, cfg, big, unsigned)
				var ae smithy.APIError
				if !errors.As(err, &ae) || ae.ErrorCode() != f.codes[ref] || ae.ErrorMessage() == "" {
					t.Errorf("%s: %v (want the API error %s with Airlock's message)", ref, err, f.codes[ref])
				}
				var re *awshttp.ResponseError
				if want := refStatus[ref]; want != 0 && (!errors.As(err, &re) || re.HTTPStatusCode() != want) {
					t.Errorf("%s: %v, want status %d", ref, err, want)
				}
			}
		})
	}
}

// TestServicePresignedRefusalShape: a URL presigned for a service other
// than S3 is refused in that service's shape, which the SDK's own error
// reader for the protocol parses.
func TestServicePresignedRefusalShape(t *testing.T) {
	e := newSvcEnv(t)
	g := e.grant("sts:GetCallerIdentity *", "ec2:DescribeInstances *")
	creds := aws.Credentials{AccessKeyID: g.CredentialID, SecretAccessKey: g.Secret, SessionToken: g.SessionToken}
	for _, tc := range []struct {
		service, query, code string
		parse                func([]byte) (string, string, error)
	}{
		{"sts", "Action=GetCallerIdentity&Version=2011-06-15", "AccessDenied", func(b []byte) (string, string, error) {
			c, err := awsxml.GetErrorResponseComponents(bytes.NewReader(b), false)
			return c.Code, c.Message, err
		}},
		{"ec2", "Action=DescribeInstances&Version=2016-11-15", "UnauthorizedOperation", func(b []byte) (string, string, error) {
			c, err := ec2query.GetErrorResponseComponents(bytes.NewReader(b))
			return c.Code, c.Message, err
		}},
	} {
		req, _ := http.NewRequest(http.MethodGet, e.srv.URL+"/?"+tc.query+"&X-Amz-Expires=60", nil)
		u, h, err := v4.NewSigner().PresignHTTP(context.Background(), creds, req, "UNSIGNED-PAYLOAD", tc.service, testRegion, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		req, _ = http.NewRequest(http.MethodGet, u, nil)
		req.Header = h
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		code, msg, err := tc.parse(body)
		if resp.StatusCode != http.StatusForbidden || err != nil || code != tc.code || !strings.Contains(msg, "presigned URLs are accepted for S3 only") {
			t.Errorf("%s: %d %q: %q %q %v", tc.service, resp.StatusCode, body, code, msg, err)
		}
	}
	e.upstreamSaw(t, "ec2", 0)
}

// TestEC2ErrorCodes: EC2's refusals carry EC2's own codes and statuses
// (AWS's "Error codes for the Amazon EC2 API"), not the other Query
// services' SignatureDoesNotMatch or InternalFailure, in the
// <Response><Errors><Error> document the SDK's EC2 error reader parses;
// the other Query services keep theirs.
func TestEC2ErrorCodes(t *testing.T) {
	for _, tc := range []struct {
		service, code, want string
		wantStatus          int
	}{
		{"ec2", s3err.AccessDenied, "UnauthorizedOperation", http.StatusForbidden},
		{"ec2", s3err.InvalidAccessKeyID, "AuthFailure", http.StatusUnauthorized},
		{"ec2", s3err.SignatureDoesNotMatch, "AuthFailure", http.StatusUnauthorized},
		{"ec2", s3err.AuthorizationHeaderMalformed, "AuthFailure", http.StatusUnauthorized},
		{"ec2", s3err.InvalidToken, "AuthFailure", http.StatusUnauthorized},
		{"ec2", s3err.XAmzContentSHA256Mismatch, "AuthFailure", http.StatusUnauthorized},
		{"ec2", s3err.ExpiredToken, "RequestExpired", http.StatusBadRequest},
		{"ec2", s3err.RequestTimeTooSkewed, "RequestExpired", http.StatusBadRequest},
		{"ec2", s3err.InternalError, "InternalError", http.StatusInternalServerError},
		{"ec2", s3err.ServiceUnavailable, "ServiceUnavailable", http.StatusServiceUnavailable},
		{"ec2", s3err.InvalidArgument, "InvalidParameterValue", http.StatusBadRequest},
		{"sts", s3err.SignatureDoesNotMatch, "SignatureDoesNotMatch", http.StatusForbidden},
		{"sts", s3err.InternalError, "InternalFailure", http.StatusInternalServerError},
		{"sts", s3err.ExpiredToken, "ExpiredToken", http.StatusBadRequest},
	} {
		r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader("Action=DescribeInstances&Version=2016-11-15"))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
		w := httptest.NewRecorder()
		writeServiceError(w, r, tc.service, s3err.New(tc.code, "Airlock says no"), "RID")
		var code, msg string
		var err error
		if tc.service == "ec2" {
			var c ec2query.ErrorComponents
			c, err = ec2query.GetErrorResponseComponents(w.Body)
			code, msg = c.Code, c.Message
		} else {
			var c awsxml.ErrorComponents
			c, err = awsxml.GetErrorResponseComponents(w.Body, false)
			code, msg = c.Code, c.Message
		}
		if err != nil || code != tc.want || w.Code != tc.wantStatus || !strings.Contains(msg, "Airlock says no") {
			t.Errorf("%s %s: %d %q %q %v, want %d %s", tc.service, tc.code, w.Code, code, msg, err, tc.wantStatus, tc.want)
		}
	}
}

// TestErrorService: the service whose shape an error takes, for requests
// signed, presigned and unsigned; S3's own requests keep S3's shape.
func TestErrorService(t *testing.T) {
	for _, tc := range []struct {
		method, target string
		header         http.Header
		want           string
	}{
		{"POST", "/", http.Header{"Authorization": {"AWS4-HMAC-SHA256 Credential=AK/20260101/us-east-1/logs/aws4_request, SignedHeaders=host, Signature=00"}}, "logs"},
		{"GET", "/logs/a", http.Header{"Authorization": {"AWS4-HMAC-SHA256 Credential=AK/20260101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=00"}}, "s3"},
		{"GET", "/?Action=GetCallerIdentity&X-Amz-Credential=AK%2F20260101%2Fus-east-1%2Fsts%2Faws4_request", nil, "sts"},
		{"GET", "/logs/a?X-Amz-Credential=AK%2F20260101%2Fus-east-1%2Fs3%2Faws4_request", nil, "s3"},
		{"POST", "/", http.Header{"Content-Type": {"application/x-www-form-urlencoded; charset=utf-8"}}, anyService},
		{"POST", "/", http.Header{"X-Amz-Target": {"AWSCognitoIdentityService.GetId"}, "Content-Type": {"application/x-amz-json-1.1"}}, anyService},
		{"POST", "/service/GraniteServiceVersion20100801/operation/ListMetrics", http.Header{"Smithy-Protocol": {"rpc-v2-cbor"}}, anyService},
		// S3, unsigned: its shape.
		{"GET", "/logs/a", nil, ""},
		{"PUT", "/logs/a", http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}, ""},
		{"POST", "/?delete", http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}, ""},
		{"POST", "/logs?delete", http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}, ""},
		{"POST", "/", http.Header{"Content-Type": {"multipart/form-data; boundary=x"}}, ""},
		{"GET", "/2015-03-31/photos/f", nil, ""},
		{"GET", "/2015-03-31", nil, ""},
		{"GET", "/2015-13-31/functions/f", nil, ""},
		{"GET", "/photos/2015-03-31/functions/f", nil, ""},
		// Lambda's paths, unsigned: Lambda's shape, whatever the
		// Content-Type (curl -d sends a form's).
		{"GET", "/2015-03-31/functions/f", nil, "lambda"},
		{"GET", "/2015-03-31/functions", nil, "lambda"},
		{"POST", "/2015-03-31/functions/f/invocations", http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}, "lambda"},
		{"GET", "/2018-10-31/layers", nil, "lambda"},
		{"GET", "/2017-03-31/tags/arn:aws:lambda:us-east-1:111122223333:function:f", nil, "lambda"},
	} {
		r, err := http.NewRequest(tc.method, "http://gw.test"+tc.target, nil)
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range tc.header {
			r.Header[k] = v
		}
		if got := errorService(r); got != tc.want {
			t.Errorf("%s %s %v: %q, want %q", tc.method, tc.target, tc.header, got, tc.want)
		}
	}
}
