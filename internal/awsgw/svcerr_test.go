package awsgw

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	cwtypes "github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	logstypes "github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs/types"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	lambdatypes "github.com/aws/aws-sdk-go-v2/service/lambda/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go"

	"github.com/airlock-dev/airlock/internal/s3err"
)

// TestServiceCode: the gateway's S3 codes become each service's own code
// for the same fault: MissingAuthenticationToken for a call with no
// credentials, the service's own 500 error where its model names one,
// and a code of the service's protocol for every fault S3 alone names.
func TestServiceCode(t *testing.T) {
	for _, tc := range []struct {
		code, proto, service string
		want                 string
		wantStatus           int // 0: the S3 error's own
	}{
		// 1. No credentials at all.
		{missingAuthentication, protoJSON, anyService, "MissingAuthenticationTokenException", 403},
		{missingAuthentication, protoCBOR, anyService, "MissingAuthenticationTokenException", 403},
		{missingAuthentication, protoQuery, anyService, "MissingAuthenticationToken", 403},
		{missingAuthentication, protoJSON, "dynamodb", "MissingAuthenticationTokenException", 403},
		{missingAuthentication, protoRESTJSON, "lambda", "MissingAuthenticationTokenException", 403},
		{missingAuthentication, protoQuery, "sts", "MissingAuthenticationToken", 403},
		{missingAuthentication, protoQuery, "ec2", "MissingAuthenticationToken", 403},
		// A body over the limit: JSON's common code, which Lambda sends
		// too; Query's fallback.
		{s3err.EntityTooLarge, protoRESTJSON, "lambda", "RequestEntityTooLargeException", 413},
		{s3err.EntityTooLarge, protoJSON, "dynamodb", "RequestEntityTooLargeException", 413},
		{s3err.EntityTooLarge, protoJSON, "sqs", "RequestEntityTooLargeException", 413},
		{s3err.EntityTooLarge, protoCBOR, "monitoring", "RequestEntityTooLargeException", 413},
		{s3err.EntityTooLarge, protoJSON, "logs", "RequestEntityTooLargeException", 413},
		{s3err.EntityTooLarge, protoQuery, "sts", "RequestEntityTooLarge", 413},
		{s3err.EntityTooLarge, protoQuery, "sns", "RequestEntityTooLarge", 413},
		{"RequestEntityTooLarge", protoJSON, "ssm", "RequestEntityTooLargeException", 413}, // awsops' code
		// 503: the common ServiceUnavailable (DynamoDB's model names no
		// 503 of its own), Logs' modelled and Lambda's own
		// ServiceUnavailableException.
		{s3err.ServiceUnavailable, protoJSON, "dynamodb", "ServiceUnavailable", 503},
		{s3err.ServiceUnavailable, protoJSON, anyService, "ServiceUnavailable", 503},
		{s3err.ServiceUnavailable, protoQuery, "sts", "ServiceUnavailable", 503},
		{s3err.ServiceUnavailable, protoJSON, "logs", "ServiceUnavailableException", 503},
		{s3err.ServiceUnavailable, protoRESTJSON, "lambda", "ServiceUnavailableException", 503},
		// Denied credentials keep their codes.
		{s3err.AccessDenied, protoJSON, anyService, "AccessDeniedException", 0},
		{s3err.AccessDenied, protoQuery, anyService, "AccessDenied", 0},
		// 2. Each service's own internal error, from its model.
		{s3err.InternalError, protoJSON, "dynamodb", "InternalServerError", 500},
		{s3err.InternalError, protoRESTJSON, "lambda", "ServiceException", 500},
		{s3err.InternalError, protoJSON, "logs", "InternalServerException", 500},
		{s3err.InternalError, protoJSON, "ssm", "InternalServerError", 500},
		{s3err.InternalError, protoJSON, "secretsmanager", "InternalServiceError", 500},
		{s3err.InternalError, protoJSON, "kms", "KMSInternalException", 500},
		{s3err.InternalError, protoJSON, "kinesis", "InternalFailureException", 500},
		{s3err.InternalError, protoJSON, "ecs", "ServerException", 500},
		{s3err.InternalError, protoCBOR, "monitoring", "InternalServiceFault", 500},
		{s3err.InternalError, protoQuery, "monitoring", "InternalServiceError", 500},
		{s3err.InternalError, protoQuery, "sns", "InternalError", 500},
		{s3err.InternalError, protoQuery, "ec2", "InternalError", 500},
		// No 500 error in their models: the common one.
		{s3err.InternalError, protoQuery, "sts", "InternalFailure", 0},
		{s3err.InternalError, protoJSON, "sqs", "InternalFailure", 0},
		{s3err.InternalError, protoJSON, anyService, "InternalFailure", 0},
		// 3. S3-only codes, by the fault they name.
		{s3err.IncompleteBody, protoJSON, "dynamodb", "SerializationException", 400},
		{s3err.IncompleteBody, protoCBOR, "monitoring", "SerializationException", 400},
		{s3err.IncompleteBody, protoRESTJSON, "lambda", "InvalidRequestContentException", 400},
		{s3err.IncompleteBody, protoQuery, "sts", "MalformedQueryString", 400},
		{s3err.IncompleteBody, protoQuery, "ec2", "MalformedQueryString", 400},
		{s3err.MalformedTrailerError, protoJSON, "logs", "SerializationException", 400},
		{s3err.InvalidChunkSizeError, protoQuery, "sqs", "MalformedQueryString", 400},
		{s3err.MissingContentLength, protoJSON, "dynamodb", "ValidationException", 400},
		{s3err.MissingContentLength, protoQuery, "sts", "MissingParameter", 400},
		{s3err.MissingContentLength, protoRESTJSON, "lambda", "InvalidParameterValueException", 400},
		{s3err.NotImplemented, protoJSON, anyService, "IncompleteSignatureException", 400},
		{s3err.NotImplemented, protoQuery, anyService, "IncompleteSignature", 400},
		{s3err.NotImplemented, protoQuery, "ec2", "AuthFailure", 401},
		{s3err.AuthorizationQueryParametersError, protoQuery, "sts", "SignatureDoesNotMatch", 0},
		{s3err.AuthorizationQueryParametersError, protoJSON, "logs", "InvalidSignatureException", 0},
		{s3err.AuthorizationQueryParametersError, protoQuery, "ec2", "AuthFailure", 401},
		{s3err.BadDigest, protoJSON, "dynamodb", "ValidationException", 400},
		{s3err.InvalidDigest, protoQuery, "sts", "InvalidParameterValue", 400},
		{s3err.NoSuchUpload, protoQuery, "ec2", "InvalidParameterValue", 400},
		{codeHeaderSectionTooLarge, protoJSON, anyService, "ValidationException", 400},
		{codeHeaderSectionTooLarge, protoQuery, anyService, "InvalidParameterValue", 400},
		{s3err.InvalidArgument, protoRESTJSON, "lambda", "InvalidParameterValueException", 400},
		// REST-JSON that is not Lambda's: JSON's common codes.
		{s3err.InvalidArgument, protoRESTJSON, "iam", "ValidationException", 400},
		// The service's own codes (awsops' refusals) pass unchanged.
		{"SerializationException", protoJSON, "dynamodb", "SerializationException", 0},
		{"MalformedQueryString", protoQuery, "sts", "MalformedQueryString", 0},
	} {
		code, status := serviceCode(tc.code, tc.proto, tc.service)
		if code != tc.want || status != tc.wantStatus {
			t.Errorf("serviceCode(%s, %s, %s) = %s %d, want %s %d", tc.code, tc.proto, tc.service, code, status, tc.want, tc.wantStatus)
		}
	}
}

// TestWriteServiceErrorAnonymous: a refusal marked Anonymous (a request
// with no credentials, sigv4's) goes out as MissingAuthenticationToken in
// each protocol's shape, with 403 and Airlock's message; the same
// AccessDenied unmarked (credentials denied) stays AccessDenied.
func TestWriteServiceErrorAnonymous(t *testing.T) {
	for _, tc := range []struct {
		name      string
		anonymous bool
		header    http.Header
		body      string
		want      string
	}{
		{"json anonymous", true, http.Header{"X-Amz-Target": {"DynamoDB_20120810.GetItem"}, "Content-Type": {"application/x-amz-json-1.0"}}, "{}", "MissingAuthenticationTokenException"},
		{"json denied", false, http.Header{"X-Amz-Target": {"DynamoDB_20120810.GetItem"}, "Content-Type": {"application/x-amz-json-1.0"}}, "{}", "AccessDeniedException"},
		{"query anonymous", true, http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}, "Action=GetCallerIdentity", "MissingAuthenticationToken"},
		{"query denied", false, http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}, "Action=GetCallerIdentity", "AccessDenied"},
	} {
		r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(tc.body))
		r.Header = tc.header
		w := httptest.NewRecorder()
		e := s3err.New(s3err.AccessDenied, "Airlock says sign it")
		e.Anonymous = tc.anonymous
		writeServiceError(w, r, errorService(r), e, "RID")
		body := w.Body.String()
		if w.Code != http.StatusForbidden || !strings.Contains(body, ">"+tc.want+"<") && !strings.Contains(body, `"`+tc.want+`"`) || !strings.Contains(body, "Airlock says sign it") {
			t.Errorf("%s: %d %s, want 403 %s", tc.name, w.Code, body, tc.want)
		}
	}
}

// TestWriteServiceErrorQueryCompatible: CloudWatch and SQS, whose SDKs
// speak CBOR or JSON in Query-compatible mode, get every error the
// gateway writes with its Query code in X-Amzn-Query-Error (and the JSON
// one in __type), as those services send them: CloudWatch's own fault's
// shape with its Query code, and the Query services' common codes for
// the rest. A service that is not Query-compatible gets no such header.
func TestWriteServiceErrorQueryCompatible(t *testing.T) {
	for _, tc := range []struct {
		service, proto, code string
		anonymous            bool
		wantType, want       string
		wantStatus           int
	}{
		{"monitoring", protoCBOR, s3err.InternalError, false, "InternalServiceFault", "InternalServiceError;Receiver", 500},
		{"monitoring", protoCBOR, s3err.AccessDenied, false, "AccessDeniedException", "AccessDenied;Sender", 403},
		{"monitoring", protoJSON, s3err.SignatureDoesNotMatch, false, "InvalidSignatureException", "SignatureDoesNotMatch;Sender", 403},
		{"monitoring", protoCBOR, s3err.AccessDenied, true, "MissingAuthenticationTokenException", "MissingAuthenticationToken;Sender", 403},
		{"sqs", protoJSON, s3err.InternalError, false, "InternalFailure", "InternalFailure;Receiver", 500},
		{"sqs", protoJSON, s3err.AccessDenied, false, "AccessDeniedException", "AccessDenied;Sender", 403},
		{"sqs", protoJSON, s3err.InvalidAccessKeyID, false, "UnrecognizedClientException", "InvalidClientTokenId;Sender", 403},
		{"sqs", protoJSON, s3err.ServiceUnavailable, false, "ServiceUnavailable", "ServiceUnavailable;Receiver", 503},
		{"sqs", protoJSON, s3err.EntityTooLarge, false, "RequestEntityTooLargeException", "RequestEntityTooLarge;Sender", 413},
		{"sqs", protoJSON, s3err.IncompleteBody, false, "SerializationException", "MalformedQueryString;Sender", 400},
		{"dynamodb", protoJSON, s3err.InternalError, false, "InternalServerError", "", 500},
		{"dynamodb", protoJSON, s3err.AccessDenied, false, "AccessDeniedException", "", 403},
		{"logs", protoJSON, s3err.ServiceUnavailable, false, "ServiceUnavailableException", "", 503},
		// Unsigned: Query-compatible if the SDK marked it so.
		{anyService, protoJSON, s3err.AccessDenied, true, "MissingAuthenticationTokenException", "MissingAuthenticationToken;Sender", 403},
		{anyService, protoCBOR, s3err.AccessDenied, true, "MissingAuthenticationTokenException", "", 403},
	} {
		r := httptest.NewRequest(http.MethodPost, "/", nil)
		if tc.proto == protoCBOR {
			r = httptest.NewRequest(http.MethodPost, "/service/GraniteServiceVersion20100801/operation/ListMetrics", nil)
			r.Header.Set("Smithy-Protocol", "rpc-v2-cbor")
		} else {
			// As the SDKs send a call in Query-compatible mode.
			r.Header.Set("X-Amz-Target", "AmazonSQS.SendMessage")
			r.Header.Set("Content-Type", "application/x-amz-json-1.0")
			r.Header.Set("X-Amzn-Query-Mode", "true")
		}
		w := httptest.NewRecorder()
		e := s3err.New(tc.code, "broken")
		e.Status = map[string]int{s3err.InternalError: 500, s3err.ServiceUnavailable: 503, s3err.EntityTooLarge: 413, s3err.IncompleteBody: 400}[tc.code]
		if e.Status == 0 {
			e.Status = 403
		}
		e.Anonymous = tc.anonymous
		writeServiceError(w, r, tc.service, e, "RID")
		name := tc.service + " " + tc.proto + " " + tc.code
		if got := w.Header().Get("X-Amzn-Query-Error"); got != tc.want || w.Code != tc.wantStatus {
			t.Errorf("%s: %d X-Amzn-Query-Error %q, want %d %q", name, w.Code, got, tc.wantStatus, tc.want)
		}
		if got := w.Header().Get("X-Amzn-Errortype"); got != tc.wantType {
			t.Errorf("%s: x-amzn-ErrorType %q, want %q", name, got, tc.wantType)
		}
	}
}

// gatewayCodes are every error code the gateway can answer with, read
// from its source and the verifier's: each s3err constant they name and
// each literal code they pass to s3err.New, s3err.Detailed or
// s3err.Error{Code: …}, resolved through their own string constants.
func gatewayCodes(t *testing.T) map[string]bool {
	t.Helper()
	fset := token.NewFileSet()
	parse := func(dir string) []*ast.File {
		var files []*ast.File
		paths, err := filepath.Glob(filepath.Join(dir, "*.go"))
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range paths {
			if strings.HasSuffix(p, "_test.go") {
				continue
			}
			f, err := parser.ParseFile(fset, p, nil, 0)
			if err != nil {
				t.Fatal(err)
			}
			files = append(files, f)
		}
		return files
	}
	// String constants by name, per package.
	consts := func(files []*ast.File) map[string]string {
		m := map[string]string{}
		for _, f := range files {
			for _, d := range f.Decls {
				gd, ok := d.(*ast.GenDecl)
				if !ok || gd.Tok != token.CONST {
					continue
				}
				for _, sp := range gd.Specs {
					vs := sp.(*ast.ValueSpec)
					for i, n := range vs.Names {
						if i < len(vs.Values) {
							if lit, ok := vs.Values[i].(*ast.BasicLit); ok && lit.Kind == token.STRING {
								m[n.Name], _ = strconv.Unquote(lit.Value)
							}
						}
					}
				}
			}
		}
		return m
	}
	s3errConsts := consts(parse("../s3err"))
	codes := map[string]bool{}
	for _, dir := range []string{".", "../sigv4"} {
		files := parse(dir)
		own := consts(files)
		value := func(x ast.Expr) (string, bool) {
			switch x := x.(type) {
			case *ast.BasicLit:
				if x.Kind == token.STRING {
					v, err := strconv.Unquote(x.Value)
					return v, err == nil
				}
			case *ast.Ident:
				v, ok := own[x.Name]
				return v, ok
			case *ast.SelectorExpr:
				if pkg, ok := x.X.(*ast.Ident); ok && pkg.Name == "s3err" {
					v, ok := s3errConsts[x.Sel.Name]
					return v, ok
				}
			}
			return "", false
		}
		for _, f := range files {
			ast.Inspect(f, func(n ast.Node) bool {
				switch n := n.(type) {
				case *ast.SelectorExpr:
					if pkg, ok := n.X.(*ast.Ident); ok && pkg.Name == "s3err" {
						if v, ok := s3errConsts[n.Sel.Name]; ok {
							codes[v] = true
						}
					}
				case *ast.CallExpr:
					if sel, ok := n.Fun.(*ast.SelectorExpr); ok && len(n.Args) > 0 {
						if pkg, ok := sel.X.(*ast.Ident); ok && pkg.Name == "s3err" && (sel.Sel.Name == "New" || sel.Sel.Name == "Detailed") {
							v, ok := value(n.Args[0])
							if !ok {
								t.Errorf("%s: s3err.%s with a code this test cannot read", fset.Position(n.Pos()), sel.Sel.Name)
							}
							codes[v] = true
						}
					}
				case *ast.CompositeLit:
					if sel, ok := n.Type.(*ast.SelectorExpr); ok && sel.Sel.Name == "Error" {
						if pkg, ok := sel.X.(*ast.Ident); ok && pkg.Name == "s3err" {
							for _, el := range n.Elts {
								if kv, ok := el.(*ast.KeyValueExpr); ok {
									if k, ok := kv.Key.(*ast.Ident); ok && k.Name == "Code" {
										if v, ok := value(kv.Value); ok {
											codes[v] = true
										}
									}
								}
							}
						}
					}
				}
				return true
			})
		}
	}
	// Every code s3err defines, used or not yet, and the one that stands
	// for a request with no credentials.
	for _, v := range s3errConsts {
		codes[v] = true
	}
	codes[missingAuthentication] = true
	return codes
}

// TestNoS3OnlyCodes walks every code the gateway can answer with and
// checks that a service other than S3 gets, in each protocol, a code
// that protocol's services send (AWS's common errors for Query and JSON,
// EC2's own, Lambda's own request faults, and each service's own 500
// error), never one S3 alone defines.
func TestNoS3OnlyCodes(t *testing.T) {
	codes := gatewayCodes(t)
	for _, c := range []string{s3err.IncompleteBody, s3err.NotImplemented, s3err.MissingContentLength, codeHeaderSectionTooLarge, s3err.AccessDenied} {
		if !codes[c] {
			t.Fatalf("the walk of the gateway's source missed %s: %v", c, codes)
		}
	}
	set := func(s ...string) map[string]bool {
		m := map[string]bool{}
		for _, c := range s {
			m[c] = true
		}
		return m
	}
	query := set("AccessDenied", "InvalidClientTokenId", "SignatureDoesNotMatch", "IncompleteSignature", "ExpiredToken",
		"RequestExpired", "ServiceUnavailable", "InternalFailure", "MissingAuthenticationToken", "MalformedQueryString",
		"MissingParameter", "InvalidParameterValue", "RequestEntityTooLarge")
	jsonCodes := set("AccessDeniedException", "UnrecognizedClientException", "InvalidSignatureException", "IncompleteSignatureException",
		"ExpiredTokenException", "ServiceUnavailable", "InternalFailure", "MissingAuthenticationTokenException",
		"SerializationException", "ValidationException", "RequestEntityTooLargeException")
	// The services' own codes, beyond the protocol's common ones.
	own := map[string]map[string]bool{
		"ec2":    set("UnauthorizedOperation", "AuthFailure", "InternalError"),
		"lambda": set("InvalidRequestContentException", "InvalidParameterValueException"),
	}
	for svc, c := range unavailableCodes {
		if own[svc] == nil {
			own[svc] = set()
		}
		own[svc][c] = true
	}
	for svc, c := range internalCodes {
		if own[svc] == nil {
			own[svc] = set()
		}
		own[svc][c.shape] = true
		if c.query != "" {
			own[svc][c.query] = true
		}
	}
	services := []string{anyService, "ec2", "sts", "sqs", "lambda", "iam"}
	for s := range internalCodes {
		services = append(services, s)
	}
	sort.Strings(services)
	var sorted []string
	for c := range codes {
		sorted = append(sorted, c)
	}
	sort.Strings(sorted)
	for _, svc := range services {
		for _, proto := range []string{protoJSON, protoCBOR, protoRESTJSON, protoQuery} {
			for _, c := range sorted {
				got, _ := serviceCode(c, proto, svc)
				common := jsonCodes
				if proto == protoQuery {
					common = query
				}
				if !common[got] && !own[svc][got] {
					t.Errorf("%s %s: %s becomes %s, which its protocol's services do not send", svc, proto, c, got)
				}
			}
		}
	}
}

// internalFaultScope allows the calls TestServiceInternalErrorTypes makes.
var internalFaultScope = []string{
	"dynamodb:GetItem arn:aws:dynamodb:" + testRegion + ":" + testAccount + ":table/orders",
	"lambda:InvokeFunction arn:aws:lambda:" + testRegion + ":" + testAccount + ":function:triage-helper",
	"logs:FilterLogEvents arn:aws:logs:" + testRegion + ":" + testAccount + ":log-group:/app/api",
	"ssm:GetParameter arn:aws:ssm:" + testRegion + ":" + testAccount + ":parameter/app/db/url",
	"sqs:SendMessage arn:aws:sqs:" + testRegion + ":" + testAccount + ":jobs",
	"cloudwatch:ListMetrics *", "ec2:DescribeInstances *",
}

// TestServiceInternalErrorTypes: a call the gateway allows but cannot
// forward for a fault of its own (here: it cannot sign the upstream
// request) reaches the AWS SDK for Go v2 as the service's own typed
// server error: DynamoDB's *types.InternalServerError, Lambda's
// *types.ServiceException and so on, InternalFailure where the model has
// none, EC2's InternalError.
func TestServiceInternalErrorTypes(t *testing.T) {
	// Never dialled: the upstream request fails to be signed first.
	e := newSvcEnv(t, func(o *Options) { o.Targets[0].Endpoints["monitoring"] = "http://127.0.0.1:24101" })
	tg := e.gw.targets[testTarget]
	// Under the gateway's lock, which every call takes first (serve), so
	// that the calls below see the change.
	e.gw.mu.Lock()
	tg.static = aws.Credentials{}
	e.gw.mu.Unlock()
	cfg := e.cfg(e.grant(internalFaultScope...))
	ctx := context.Background()
	for _, tc := range []struct {
		name  string
		call  func() error
		typed func(error) bool // the SDK's typed error for it, if any
		code  string
	}{
		{"dynamodb", func() error {
			_, err := dynamodb.NewFromConfig(cfg).GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String("orders"),
				Key: map[string]ddbtypes.AttributeValue{"id": &ddbtypes.AttributeValueMemberS{Value: "1"}}})
			return err
		}, func(err error) bool { var x *ddbtypes.InternalServerError; return errors.As(err, &x) }, "InternalServerError"},
		{"lambda", func() error {
			_, err := lambda.NewFromConfig(cfg).Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String("triage-helper"), Payload: []byte(`{}`)})
			return err
		}, func(err error) bool { var x *lambdatypes.ServiceException; return errors.As(err, &x) }, "ServiceException"},
		{"logs", func() error {
			_, err := cloudwatchlogs.NewFromConfig(cfg).FilterLogEvents(ctx, &cloudwatchlogs.FilterLogEventsInput{LogGroupName: aws.String("/app/api")})
			return err
		}, func(err error) bool { var x *logstypes.InternalServerException; return errors.As(err, &x) }, "InternalServerException"},
		{"ssm", func() error {
			_, err := ssm.NewFromConfig(cfg).GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String("/app/db/url")})
			return err
		}, func(err error) bool { var x *ssmtypes.InternalServerError; return errors.As(err, &x) }, "InternalServerError"},
		{"cloudwatch", func() error {
			_, err := cloudwatch.NewFromConfig(cfg).ListMetrics(ctx, &cloudwatch.ListMetricsInput{Namespace: aws.String("AWS/EC2")})
			return err
		}, func(err error) bool { var x *cwtypes.InternalServiceFault; return errors.As(err, &x) }, "InternalServiceError"},
		{"sqs", func() error {
			_, err := sqs.NewFromConfig(cfg).SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String("https://sqs." + testRegion + ".amazonaws.com/" + testAccount + "/jobs"), MessageBody: aws.String("x")})
			return err
		}, nil, "InternalFailure"},
		{"ec2", func() error {
			_, err := ec2.NewFromConfig(cfg).DescribeInstances(ctx, &ec2.DescribeInstancesInput{})
			return err
		}, nil, "InternalError"},
	} {
		err := tc.call()
		var ae smithy.APIError
		var re *awshttp.ResponseError
		switch {
		case !errors.As(err, &ae) || ae.ErrorCode() != tc.code || !strings.Contains(ae.ErrorMessage(), "could not build the upstream request"):
			t.Errorf("%s: %v, want the API error %s with Airlock's message", tc.name, err, tc.code)
		case ae.ErrorFault() != smithy.FaultServer && tc.typed != nil:
			t.Errorf("%s: %v is not a server fault", tc.name, err)
		case !errors.As(err, &re) || re.HTTPStatusCode() != http.StatusInternalServerError:
			t.Errorf("%s: %v, want status 500", tc.name, err)
		case tc.typed != nil && !tc.typed(err):
			t.Errorf("%s: %v (%T) is not the SDK's typed error for the service's internal fault", tc.name, err, ae)
		}
	}
}

// TestServiceUnsignedStatus: an SDK call sent with no credentials gets
// 403 MissingAuthenticationToken(Exception), in JSON and Query alike.
func TestServiceUnsignedStatus(t *testing.T) {
	e := newSvcEnv(t)
	cfg := e.cfg(e.grant(internalFaultScope...))
	cfg.Credentials = aws.AnonymousCredentials{}
	ctx := context.Background()
	for _, tc := range []struct {
		name, code string
		call       func() error
	}{
		{"dynamodb", "MissingAuthenticationTokenException", func() error {
			_, err := dynamodb.NewFromConfig(cfg).GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String("orders"),
				Key: map[string]ddbtypes.AttributeValue{"id": &ddbtypes.AttributeValueMemberS{Value: "1"}}})
			return err
		}},
		{"sts", "MissingAuthenticationToken", func() error {
			_, err := sts.NewFromConfig(cfg).GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
			return err
		}},
		{"ec2", "MissingAuthenticationToken", func() error {
			_, err := ec2.NewFromConfig(cfg).DescribeInstances(ctx, &ec2.DescribeInstancesInput{})
			return err
		}},
		// REST-JSON: told from S3 by Lambda's path alone.
		{"lambda", "MissingAuthenticationTokenException", func() error {
			_, err := lambda.NewFromConfig(cfg).Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String("triage-helper"), Payload: []byte(`{}`)})
			return err
		}},
		{"cloudwatch", "MissingAuthenticationToken", func() error { // Query-compatible: its Query code
			_, err := cloudwatch.NewFromConfig(cfg).ListMetrics(ctx, &cloudwatch.ListMetricsInput{Namespace: aws.String("AWS/EC2")})
			return err
		}},
	} {
		err := tc.call()
		var re *awshttp.ResponseError
		if apiCode(err) != tc.code || !errors.As(err, &re) || re.HTTPStatusCode() != http.StatusForbidden || !strings.Contains(apiMessage(err), "Anonymous access is not allowed") {
			t.Errorf("%s: %v, want 403 %s with Airlock's message", tc.name, err, tc.code)
		}
	}
	for _, svc := range []string{"dynamodb", "sts", "ec2", "lambda"} {
		e.upstreamSaw(t, svc, 0)
	}
}

// TestLambdaUnsignedRaw: a call on one of Lambda's paths with no
// credentials at all, as curl sends it (a form's Content-Type with -d),
// gets Lambda's answer: 403, x-amzn-ErrorType
// MissingAuthenticationTokenException, a JSON body; not S3's XML
// AccessDenied. A path that is not Lambda's keeps S3's.
func TestLambdaUnsignedRaw(t *testing.T) {
	e := newSvcEnv(t)
	for _, tc := range []struct {
		path, errType, ct string
	}{
		{"/2015-03-31/functions/triage-helper/invocations", "MissingAuthenticationTokenException", "application/json"},
		{"/2015-03-31/photos/triage-helper/invocations", "", "application/xml"},
	} {
		req, _ := http.NewRequest(http.MethodPost, e.srv.URL+tc.path, strings.NewReader("a=b"))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden || resp.Header.Get("X-Amzn-Errortype") != tc.errType || !strings.HasPrefix(resp.Header.Get("Content-Type"), tc.ct) {
			t.Errorf("%s: %d %v %s, want 403 %q %s", tc.path, resp.StatusCode, resp.Header, body, tc.errType, tc.ct)
		}
	}
	e.upstreamSaw(t, "lambda", 0)
}

// TestServiceQueryCompatibleSDKCodes: the SDKs of SQS and CloudWatch,
// Query-compatible services, report the Query code in
// X-Amzn-Query-Error for every refusal of the gateway's, as they do for
// those services' own errors: AccessDenied, InvalidClientTokenId, not
// the JSON AccessDeniedException or UnrecognizedClientException.
func TestServiceQueryCompatibleSDKCodes(t *testing.T) {
	e := newSvcEnv(t)
	denied := e.cfg(e.grant("s3:GetObject arn:aws:s3:::logs/*"))
	unknown := e.cfg(e.grant(internalFaultScope...))
	unknown.Credentials = credentials.NewStaticCredentialsProvider("AKIAUNKNOWNUNKNOWN00", "secret", "")
	ctx := context.Background()
	sqsCall := func(cfg aws.Config) error {
		_, err := sqs.NewFromConfig(cfg).SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String("https://sqs." + testRegion + ".amazonaws.com/" + testAccount + "/jobs"), MessageBody: aws.String("x")})
		return err
	}
	cwCall := func(cfg aws.Config) error {
		_, err := cloudwatch.NewFromConfig(cfg).ListMetrics(ctx, &cloudwatch.ListMetricsInput{Namespace: aws.String("AWS/EC2")})
		return err
	}
	for _, tc := range []struct {
		name string
		err  error
		code string
	}{
		{"sqs denied", sqsCall(denied), "AccessDenied"},
		{"sqs unknown key", sqsCall(unknown), "InvalidClientTokenId"},
		{"cloudwatch denied", cwCall(denied), "AccessDenied"},
		{"cloudwatch unknown key", cwCall(unknown), "InvalidClientTokenId"},
	} {
		var ae smithy.APIError
		if !errors.As(tc.err, &ae) || ae.ErrorCode() != tc.code || ae.ErrorFault() != smithy.FaultClient || ae.ErrorMessage() == "" {
			t.Errorf("%s: %v, want the client fault %s with Airlock's message", tc.name, tc.err, tc.code)
		}
	}
	e.upstreamSaw(t, "sqs", 0)
}

// TestServiceUnavailableTypes: a call refused because the gateway is
// closing (503) reaches the SDK as the service's own 503: Logs' typed
// *types.ServiceUnavailableException, the common ServiceUnavailable for
// DynamoDB (whose model names none), Lambda's
// ServiceUnavailableException.
func TestServiceUnavailableTypes(t *testing.T) {
	e := newSvcEnv(t)
	cfg := e.cfg(e.grant(internalFaultScope...))
	if err := e.gw.Close(); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, tc := range []struct {
		name  string
		call  func() error
		typed func(error) bool
		code  string
	}{
		{"logs", func() error {
			_, err := cloudwatchlogs.NewFromConfig(cfg).FilterLogEvents(ctx, &cloudwatchlogs.FilterLogEventsInput{LogGroupName: aws.String("/app/api")})
			return err
		}, func(err error) bool { var x *logstypes.ServiceUnavailableException; return errors.As(err, &x) }, "ServiceUnavailableException"},
		{"dynamodb", func() error {
			_, err := dynamodb.NewFromConfig(cfg).GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String("orders"),
				Key: map[string]ddbtypes.AttributeValue{"id": &ddbtypes.AttributeValueMemberS{Value: "1"}}})
			return err
		}, nil, "ServiceUnavailable"},
		{"lambda", func() error {
			_, err := lambda.NewFromConfig(cfg).Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String("triage-helper"), Payload: []byte(`{}`)})
			return err
		}, nil, "ServiceUnavailableException"},
		{"sqs", func() error {
			_, err := sqs.NewFromConfig(cfg).SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String("https://sqs." + testRegion + ".amazonaws.com/" + testAccount + "/jobs"), MessageBody: aws.String("x")})
			return err
		}, nil, "ServiceUnavailable"},
	} {
		err := tc.call()
		var re *awshttp.ResponseError
		switch {
		case apiCode(err) != tc.code || !strings.Contains(apiMessage(err), "shutting down"):
			t.Errorf("%s: %v, want %s with Airlock's message", tc.name, err, tc.code)
		case !errors.As(err, &re) || re.HTTPStatusCode() != http.StatusServiceUnavailable:
			t.Errorf("%s: %v, want status 503", tc.name, err)
		case tc.typed != nil && !tc.typed(err):
			t.Errorf("%s: %v is not the SDK's typed error", tc.name, err)
		}
	}
}

// brokenBodyTransport sends each request to the gateway as the SDK built
// it, signature and all, but with its body in a chunked framing that
// breaks at once (a chunk size that is not hex), and returns the
// gateway's answer for the SDK to read: the gateway cannot read the call
// whole, the fault S3 calls IncompleteBody.
type brokenBodyTransport struct{ addr string }

func (b brokenBodyTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body != nil {
		_, _ = io.Copy(io.Discard, req.Body)
		req.Body.Close()
	}
	conn, err := net.Dial("tcp", b.addr)
	if err != nil {
		return nil, err
	}
	host := req.Host
	if host == "" {
		host = req.URL.Host
	}
	var buf bytes.Buffer
	fmt.Fprintf(&buf, "%s %s HTTP/1.1\r\nHost: %s\r\n", req.Method, req.URL.RequestURI(), host)
	for k, vs := range req.Header {
		if k == "Content-Length" || k == "Transfer-Encoding" {
			continue
		}
		for _, v := range vs {
			fmt.Fprintf(&buf, "%s: %s\r\n", k, v)
		}
	}
	buf.WriteString("Transfer-Encoding: chunked\r\n\r\nzz\r\n")
	if _, err := conn.Write(buf.Bytes()); err != nil {
		conn.Close()
		return nil, err
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), req)
	if err != nil {
		conn.Close()
		return nil, err
	}
	resp.Body = struct {
		io.Reader
		io.Closer
	}{resp.Body, conn}
	return resp, nil
}

// TestServiceIncompleteBodyCodes: a call whose body the gateway cannot
// read whole (S3's IncompleteBody) reaches each service's SDK as a code
// of its protocol: SerializationException for JSON, Lambda's
// InvalidRequestContentException, MalformedQueryString for Query and
// EC2; never IncompleteBody, which no SDK but S3's knows.
func TestServiceIncompleteBodyCodes(t *testing.T) {
	e := newSvcEnv(t)
	cfg := e.cfg(e.grant(internalFaultScope...))
	cfg.HTTPClient = &http.Client{Transport: brokenBodyTransport{addr: e.srv.Listener.Addr().String()}}
	ctx := context.Background()
	for _, tc := range []struct {
		name, code string
		call       func() error
	}{
		{"dynamodb", "SerializationException", func() error {
			_, err := dynamodb.NewFromConfig(cfg).GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String("orders"),
				Key: map[string]ddbtypes.AttributeValue{"id": &ddbtypes.AttributeValueMemberS{Value: "1"}}})
			return err
		}},
		{"lambda", "InvalidRequestContentException", func() error {
			_, err := lambda.NewFromConfig(cfg).Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String("triage-helper"), Payload: []byte(`{}`)})
			return err
		}},
		{"sts", "MalformedQueryString", func() error {
			_, err := sts.NewFromConfig(cfg).GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
			return err
		}},
		{"ec2", "MalformedQueryString", func() error {
			_, err := ec2.NewFromConfig(cfg).DescribeInstances(ctx, &ec2.DescribeInstancesInput{})
			return err
		}},
	} {
		err := tc.call()
		var re *awshttp.ResponseError
		if apiCode(err) != tc.code || !errors.As(err, &re) || re.HTTPStatusCode() != http.StatusBadRequest || !strings.Contains(apiMessage(err), "could not read the request body") {
			t.Errorf("%s: %v, want 400 %s with Airlock's message", tc.name, err, tc.code)
		}
	}
	for _, svc := range []string{"dynamodb", "lambda", "sts", "ec2"} {
		e.upstreamSaw(t, svc, 0)
	}
}

// The AWS CLIs, for the same faults, where a CLI can provoke them:
// unsigned calls (--no-sign-request, Lambda's included) and the services'
// own 500 errors.
func TestServiceErrorCodesAWSCLI(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: the AWS CLI takes seconds per command")
	}
	e := newSvcEnv(t)
	g := e.grant(internalFaultScope...)
	broken := newSvcEnv(t)
	bg := broken.grant(internalFaultScope...)
	broken.gw.mu.Lock()
	broken.gw.targets[testTarget].static = aws.Credentials{}
	broken.gw.mu.Unlock()
	for _, cli := range awsCLIs {
		t.Run(cli.name, func(t *testing.T) {
			path := cli.find(t)
			_, errOut, err := runCLI(t, path, cli.envEndpoint, e.srv.URL, g, "--no-sign-request", "dynamodb", "get-item", "--table-name", "orders", "--key", `{"id":{"S":"42"}}`)
			if err == nil || !strings.Contains(errOut, "(MissingAuthenticationTokenException)") || !strings.Contains(errOut, "Anonymous access is not allowed") {
				t.Errorf("unsigned dynamodb get-item: %v\n%s", err, errOut)
			}
			_, errOut, err = runCLI(t, path, cli.envEndpoint, e.srv.URL, g, "--no-sign-request", "sts", "get-caller-identity")
			if err == nil || !strings.Contains(errOut, "(MissingAuthenticationToken)") {
				t.Errorf("unsigned sts get-caller-identity: %v\n%s", err, errOut)
			}
			_, errOut, err = runCLI(t, path, cli.envEndpoint, e.srv.URL, g, "--no-sign-request", "lambda", "get-function", "--function-name", "triage-helper")
			if err == nil || !strings.Contains(errOut, "(MissingAuthenticationTokenException)") || !strings.Contains(errOut, "Anonymous access is not allowed") {
				t.Errorf("unsigned lambda get-function: %v\n%s", err, errOut)
			}
			// The CLIs retry a 500 (up to 5 attempts, backing off): one
			// attempt is enough to read the code.
			_, errOut, err = runCLIEnv(t, path, cli.envEndpoint, broken.srv.URL, bg, []string{"AWS_MAX_ATTEMPTS=1", "AWS_RETRY_MODE=standard"},
				"dynamodb", "get-item", "--table-name", "orders", "--key", `{"id":{"S":"42"}}`)
			if err == nil || !strings.Contains(errOut, "(InternalServerError)") {
				t.Errorf("dynamodb get-item, gateway fault: %v\n%s", err, errOut)
			}
		})
	}
	e.upstreamSaw(t, "dynamodb", 0)
	e.upstreamSaw(t, "sts", 0)
	e.upstreamSaw(t, "lambda", 0)
}
