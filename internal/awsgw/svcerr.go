package awsgw

import (
	"encoding/json"
	"encoding/xml"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/airlock-dev/airlock/internal/s3err"
	"github.com/airlock-dev/airlock/internal/sigv4"
)

// Errors for services other than S3 are written in the service's own
// shape, so that the agent's SDK parses them into its usual typed error
// (and prints Airlock's message) rather than "unknown error":
//
//   - JSON 1.0/1.1 (X-Amz-Target: DynamoDB, Logs, SSM, …): the code in
//     x-amzn-ErrorType and as "__type", the text as "message".
//   - REST-JSON (Lambda): the same header and body ({"__type":…,
//     "message":…}); the SDKs take the code from the header, and Lambda's
//     own {"Type":"User",…} adds nothing they read.
//   - AWS Query (STS, IAM, SQS, SNS, CloudWatch):
//     <ErrorResponse><Error><Type>Sender</Type><Code>…; EC2's variant is
//     <Response><Errors><Error><Code>…, with EC2's own codes (ec2Code).
//   - smithy-rpcv2-cbor: the JSON members, CBOR-encoded.
//
// The code is the one the service itself sends for the same fault
// (serviceCode): MissingAuthenticationToken for a call with no
// credentials at all, the service's own 500 error where its model names
// one, and never a code only S3 defines. The errors of a Query-compatible
// service (SQS, CloudWatch) carry their Query code too (setQueryError).

// Wire protocol families, as awsops.Op.Protocol names them.
const (
	protoJSON     = "json"
	protoQuery    = "query"
	protoRESTJSON = "rest-json"
	protoCBOR     = "cbor"
)

// signedService is the service a request's credential scope names, read
// without verifying anything (to choose an error's shape), or "" if the
// request has no well-formed header signature.
func signedService(r *http.Request) string {
	h := firstValue(r.Header, "Authorization")
	_, rest, ok := strings.Cut(h, "Credential=")
	if !ok {
		return ""
	}
	cred, _, _ := strings.Cut(rest, ",")
	return scopeService(cred)
}

// scopeService is the service of a credential
// (AKID/DATE/REGION/SERVICE/aws4_request), or "" if it has no valid one.
func scopeService(cred string) string {
	cred = strings.TrimSpace(cred)
	if strings.Count(cred, "/") != 4 { // five parts
		return ""
	}
	// The fourth part, cut out without splitting (no allocation per call).
	_, rest, _ := strings.Cut(cred, "/")
	_, rest, _ = strings.Cut(rest, "/")
	_, rest, _ = strings.Cut(rest, "/")
	svc, _, _ := strings.Cut(rest, "/")
	if !sigv4.ValidService(svc) {
		return ""
	}
	return svc
}

// anyService stands for a service other than S3 that a request's
// protocol headers reveal but no signature names: its errors take the
// protocol's shape, with no service's own codes.
const anyService = "*"

// errorService is the service whose error shape answers r, read without
// verifying anything: the one its credential scope names, in the
// Authorization header or, presigned, in X-Amz-Credential; failing that,
// anyService for a call whose headers are a protocol S3 never speaks (an
// SDK sends STS AssumeRoleWithWebIdentity, Cognito's GetId and a few more
// unsigned); "" (S3's shape) otherwise.
func errorService(r *http.Request) string {
	if svc := signedService(r); svc != "" {
		return svc
	}
	if strings.Contains(r.URL.RawQuery, "X-Amz-Credential=") {
		if svc := scopeService(r.URL.Query().Get("X-Amz-Credential")); svc != "" {
			return svc
		}
	}
	if lambdaPath(r.URL.Path) {
		return "lambda"
	}
	ct := strings.ToLower(r.Header.Get("Content-Type"))
	switch {
	case r.Header.Get("X-Amz-Target") != "", r.Header.Get("Smithy-Protocol") != "", strings.HasPrefix(ct, "application/x-amz-json"):
		return anyService
	case r.Method == http.MethodPost && r.URL.Path == "/" && r.URL.RawQuery == "" && strings.HasPrefix(ct, "application/x-www-form-urlencoded"):
		// An AWS Query call, its parameters in the form; S3's POSTs on a
		// bucket's root name a subresource (?delete, ?uploads), and its
		// browser uploads are multipart/form-data.
		return anyService
	}
	return ""
}

// lambdaCollections are the collections Lambda's REST paths name after
// their API version (/2015-03-31/functions/…, /2018-10-31/layers/…), as
// its model's request URIs give them.
var lambdaCollections = map[string]bool{
	"functions": true, "event-source-mappings": true, "account-settings": true, "tags": true, "layers": true,
	"code-signing-configs": true, "capacity-providers": true, "durable-executions": true, "durable-execution-callbacks": true,
}

// lambdaPath reports whether path is one of Lambda's: an API version
// (a date) and one of its collections. An unsigned call has nothing else
// to tell Lambda from S3, and Lambda answers one with its own
// MissingAuthenticationTokenException; S3 only meets such a path for a
// bucket named like a date whose key starts with a Lambda collection.
func lambdaPath(path string) bool {
	version, rest, ok := strings.Cut(strings.TrimPrefix(path, "/"), "/")
	if !ok || len(version) != len("2006-01-02") {
		return false
	}
	if _, err := time.Parse("2006-01-02", version); err != nil {
		return false
	}
	collection, _, _ := strings.Cut(rest, "/")
	return lambdaCollections[collection]
}

// requestProtocol guesses the protocol family of a request from its
// headers, as the SDKs mark them.
func requestProtocol(r *http.Request) string {
	ct := strings.ToLower(r.Header.Get("Content-Type"))
	switch {
	case r.Header.Get("Smithy-Protocol") == "rpc-v2-cbor":
		return protoCBOR
	case r.Header.Get("X-Amz-Target") != "" || strings.HasPrefix(ct, "application/x-amz-json"):
		return protoJSON
	case strings.HasPrefix(ct, "application/x-www-form-urlencoded"), r.Method == http.MethodGet && strings.Contains(r.URL.RawQuery, "Action="):
		return protoQuery
	}
	return protoRESTJSON
}

// missingAuthentication stands, in serviceCode, for the refusal of a
// request that carried no credentials at all (s3err.Error.Anonymous):
// S3 calls it AccessDenied, the other services MissingAuthenticationToken.
const missingAuthentication = "MissingAuthenticationToken"

// ownInternal is a service's own error for a fault on the server's side,
// as its model (botocore's service-2.json, the Go SDK's types) names it:
// shape is the error shape, which JSON and CBOR carry as __type and the
// SDKs turn into a typed error (DynamoDB's *types.InternalServerError);
// query, where the model gives one, is its Query protocol code, which a
// Query-compatible service (CloudWatch) also sends in X-Amzn-Query-Error.
type ownInternal struct{ shape, query string }

// internalCodes are the services the gateway maps (internal/awsops) whose
// model names its own 500 error. The others (STS, SQS) have none and get
// the common InternalFailure; EC2's is InternalError (ec2Code).
var internalCodes = map[string]ownInternal{
	"dynamodb":       {shape: "InternalServerError"},
	"ssm":            {shape: "InternalServerError"},
	"lambda":         {shape: "ServiceException"},
	"logs":           {shape: "InternalServerException"},
	"secretsmanager": {shape: "InternalServiceError"},
	"kms":            {shape: "KMSInternalException"},
	"kinesis":        {shape: "InternalFailureException"},
	"ecs":            {shape: "ServerException"},
	"monitoring":     {shape: "InternalServiceFault", query: "InternalServiceError"},
	"sns":            {shape: "InternalErrorException", query: "InternalError"},
}

// unavailableCodes are the services whose own 503 is not the common
// errors' ServiceUnavailable: Logs' model names ServiceUnavailableException
// (the SDKs' typed error), and Lambda answers ServiceUnavailableException
// though its model does not name it. DynamoDB's model names none, and it
// answers with the common code, as the others do.
var unavailableCodes = map[string]string{
	"logs":   "ServiceUnavailableException",
	"lambda": "ServiceUnavailableException",
}

// queryCompatible are the services (of those Airlock maps) whose models
// carry awsQueryCompatible: they speak JSON or CBOR but began as Query
// services, and answer every error with its Query code in
// X-Amzn-Query-Error ("CODE;Sender"), which their SDKs report as the
// error's code in place of __type, so that code written against the
// Query API keeps matching.
var queryCompatible = map[string]bool{"sqs": true, "monitoring": true}

// ec2Code is EC2's own code and HTTP status for the fault the gateway's
// S3 code names, where EC2 differs from the other Query services, or ""
// (AWS's "Error codes for the Amazon EC2 API"): EC2 answers every
// credential it cannot validate (unknown key, bad signature or token,
// wrong scope, a signature in a form it does not take) with AuthFailure
// and 401, an expired credential or a request outside the 15-minute
// window with RequestExpired and 400 (an SDK takes it as a sign to
// refresh credentials), a denied action with UnauthorizedOperation, and
// its own fault with InternalError, not the Query services'
// InternalFailure.
func ec2Code(code string) (string, int) {
	switch code {
	case s3err.AccessDenied, "AccessDeniedException":
		return "UnauthorizedOperation", http.StatusForbidden
	case s3err.InvalidAccessKeyID, s3err.InvalidToken, s3err.SignatureDoesNotMatch, s3err.AuthorizationHeaderMalformed,
		s3err.AuthorizationQueryParametersError, s3err.XAmzContentSHA256Mismatch, s3err.NotImplemented:
		return "AuthFailure", http.StatusUnauthorized
	case s3err.ExpiredToken, s3err.RequestTimeTooSkewed:
		return "RequestExpired", http.StatusBadRequest
	case s3err.InternalError:
		return "InternalError", http.StatusInternalServerError
	}
	return "", 0
}

// serviceCode translates the gateway's S3 codes into the code the
// service's SDKs recognise for the same fault, and the HTTP status that
// goes with it (0: the S3 error's own). code may also be
// missingAuthentication, or a code the gateway already chose in the
// service's terms (awsops' refusals), which passes unchanged.
func serviceCode(code, proto, service string) (string, int) {
	if service == "ec2" && proto == protoQuery {
		if c, status := ec2Code(code); c != "" {
			return c, status
		}
	}
	if own, ok := internalCodes[service]; ok && code == s3err.InternalError {
		if proto == protoQuery && own.query != "" {
			return own.query, http.StatusInternalServerError
		}
		return own.shape, http.StatusInternalServerError
	}
	if own, ok := unavailableCodes[service]; ok && code == s3err.ServiceUnavailable && proto != protoQuery {
		return own, http.StatusServiceUnavailable
	}
	if proto == protoRESTJSON && service != "lambda" {
		proto = protoJSON // Lambda's own request codes are for Lambda alone
	}
	return queryOrJSONCode(code, proto)
}

// queryOrJSONCode is the code the Query (or, for any other protocol, the
// JSON) services share for the fault the gateway's S3 code names, from
// AWS's common errors, and its status where S3's would mislead (0: S3's).
// No S3-only code passes: each is translated by the fault it names
// (TestNoS3OnlyCodes walks every code the gateway can send).
func queryOrJSONCode(code, proto string) (string, int) {
	json := proto != protoQuery
	// Lambda (the REST-JSON service Airlock maps) names its own request
	// faults, as awsops' refusals do: InvalidParameterValueException for
	// a value, InvalidRequestContentException for a body it cannot read.
	rest := proto == protoRESTJSON
	switch code {
	case missingAuthentication:
		if json {
			return "MissingAuthenticationTokenException", http.StatusForbidden
		}
		return "MissingAuthenticationToken", http.StatusForbidden
	case s3err.AccessDenied, "AccessDeniedException":
		if json {
			return "AccessDeniedException", 0
		}
		return "AccessDenied", 0
	case s3err.InvalidAccessKeyID:
		if json {
			return "UnrecognizedClientException", 0
		}
		return "InvalidClientTokenId", 0
	case s3err.SignatureDoesNotMatch, s3err.AuthorizationHeaderMalformed, s3err.AuthorizationQueryParametersError, s3err.XAmzContentSHA256Mismatch:
		// A malformed signature, in the header or a presigned query, is
		// one the service cannot verify, as a wrong one is.
		if json {
			return "InvalidSignatureException", 0
		}
		return "SignatureDoesNotMatch", 0
	case s3err.NotImplemented:
		// The gateway sends it for a signature in a form it does not
		// verify (Signature Version 4A, its payload modes): the common
		// errors' "request signature does not conform to AWS standards".
		// 400, not 501, so that no SDK retries it.
		if json {
			return "IncompleteSignatureException", http.StatusBadRequest
		}
		return "IncompleteSignature", http.StatusBadRequest
	case s3err.ExpiredToken:
		if json {
			return "ExpiredTokenException", 0
		}
		return "ExpiredToken", 0
	case s3err.InvalidToken:
		if json {
			return "UnrecognizedClientException", 0
		}
		return "InvalidClientTokenId", 0
	case s3err.RequestTimeTooSkewed:
		if json {
			return "InvalidSignatureException", 0
		}
		return "RequestExpired", 0
	case s3err.ServiceUnavailable:
		// The common errors' code, in every protocol (no Exception
		// suffix); unavailableCodes has the services that differ.
		return "ServiceUnavailable", http.StatusServiceUnavailable
	case s3err.InternalError:
		return "InternalFailure", 0
	case s3err.EntityTooLarge, codeRequestEntityTooLarge:
		// JSON's common RequestEntityTooLargeException (413), which
		// Lambda too sends for a body over its bound ("Request must be
		// smaller than 6291456 bytes for the InvokeFunction operation"),
		// not its model's RequestTooLargeException. The Query services'
		// common errors name none (their front end answers 413 with no
		// error document): RequestEntityTooLarge, after the JSON one.
		if json {
			return "RequestEntityTooLargeException", http.StatusRequestEntityTooLarge
		}
		return codeRequestEntityTooLarge, http.StatusRequestEntityTooLarge
	case s3err.IncompleteBody, s3err.InvalidChunkSizeError, s3err.MalformedTrailerError, s3err.MalformedXML, codeRequestTimeout:
		// The body, which holds the call's parameters, could not be read
		// whole or is not well-formed: JSON's SerializationException
		// (the body cannot be deserialized), Query's MalformedQueryString
		// (its form is the call's query string). 400, as for any body the
		// service cannot parse.
		switch {
		case rest:
			return "InvalidRequestContentException", http.StatusBadRequest
		case json:
			return "SerializationException", http.StatusBadRequest
		}
		return "MalformedQueryString", http.StatusBadRequest
	case s3err.MissingContentLength, s3err.MissingSecurityHeader:
		// A header the call needs is missing: for Query, a required
		// parameter not supplied; for JSON, a request that fails
		// validation. 400 (not 411: the code says what is missing).
		switch {
		case rest:
			return "InvalidParameterValueException", http.StatusBadRequest
		case json:
			return "ValidationException", http.StatusBadRequest
		}
		return "MissingParameter", http.StatusBadRequest
	case s3err.InvalidArgument, s3err.InvalidRequest, s3err.BadDigest, s3err.InvalidDigest, s3err.NoSuchUpload, codeHeaderSectionTooLarge:
		// A value the request carries is invalid: a malformed argument or
		// header, a checksum that does not match the body, an upload id
		// that names nothing, a header section over the bound.
		switch {
		case rest:
			return "InvalidParameterValueException", http.StatusBadRequest
		case json:
			return "ValidationException", http.StatusBadRequest
		}
		return "InvalidParameterValue", http.StatusBadRequest
	}
	return code, 0
}

// codeRequestEntityTooLarge is awsops' code for a body over its bound.
const codeRequestEntityTooLarge = "RequestEntityTooLarge"

// writeServiceError answers r with e in the shape of service's protocol.
func writeServiceError(w http.ResponseWriter, r *http.Request, service string, e *s3err.Error, reqID string) {
	proto := requestProtocol(r)
	if service == "lambda" {
		proto = protoRESTJSON // Lambda speaks nothing else, whatever the Content-Type
	}
	fault := e.Code
	if e.Anonymous {
		fault = missingAuthentication
	}
	code, status := serviceCode(fault, proto, service)
	msg := e.Text()
	if status == 0 {
		status = e.Status
	}
	if status == 0 {
		status = http.StatusBadRequest
	}
	h := w.Header()
	h.Set("X-Amzn-Requestid", reqID)
	switch proto {
	case protoQuery:
		h.Set("Content-Type", "text/xml")
		var b []byte
		switch service {
		case "ec2":
			b, _ = xml.Marshal(ec2ErrorResponse{Code: code, Message: msg, RequestID: reqID})
		case anyService:
			// EC2 or another Query service: both shapes in one
			// document, each SDK reading its own.
			b, _ = xml.Marshal(anyQueryErrorResponse{queryErrorResponse: queryErrorResponse{Type: errorType(status), Code: code, Message: msg, RequestID: reqID},
				EC2Code: code, EC2Message: msg, EC2RequestID: reqID})
		default:
			b, _ = xml.Marshal(queryErrorResponse{Type: errorType(status), Code: code, Message: msg, RequestID: reqID})
		}
		w.WriteHeader(status)
		_, _ = w.Write([]byte(xml.Header))
		_, _ = w.Write(b)
	case protoCBOR:
		setQueryError(h, r, service, fault, status)
		h.Set("Smithy-Protocol", "rpc-v2-cbor")
		h.Set("Content-Type", "application/cbor")
		h.Set("X-Amzn-Errortype", code)
		w.WriteHeader(status)
		// The text under both spellings: the SDKs read "message" for an
		// error they have no type for, and the member's own name for one
		// they do, which is "Message" in some models (CloudWatch's
		// InternalServiceFault).
		_, _ = w.Write(cborStringMap("__type", code, "message", msg, "Message", msg))
	default:
		ct := "application/json"
		if proto == protoJSON {
			ct = "application/x-amz-json-1.1"
			if v := r.Header.Get("Content-Type"); strings.HasPrefix(v, "application/x-amz-json-1.0") {
				ct = "application/x-amz-json-1.0"
			}
		}
		h.Set("Content-Type", ct)
		setQueryError(h, r, service, fault, status)
		h.Set("X-Amzn-Errortype", code)
		b, _ := json.Marshal(jsonError{Type: code, Message: msg})
		h.Set("Content-Length", strconv.Itoa(len(b)))
		w.WriteHeader(status)
		_, _ = w.Write(b)
	}
}

// setQueryError adds X-Amzn-Query-Error ("CODE;Sender" or
// "CODE;Receiver") to every JSON or CBOR error of a Query-compatible
// service, fault being the gateway's code for it: the Query code the
// service gives the same fault, which its SDKs report. An unsigned call
// names no service, but the SDKs mark one to a Query-compatible service
// with X-Amzn-Query-Mode.
func setQueryError(h http.Header, r *http.Request, service, fault string, status int) {
	if queryCompatible[service] || service == anyService && strings.EqualFold(r.Header.Get("X-Amzn-Query-Mode"), "true") {
		code, _ := serviceCode(fault, protoQuery, service)
		h.Set("X-Amzn-Query-Error", code+";"+errorType(status))
	}
}

// errorType is the Query protocol's <Type>: who is at fault.
func errorType(status int) string {
	if status >= 500 {
		return "Receiver"
	}
	return "Sender"
}

type jsonError struct {
	Type    string `json:"__type"`
	Message string `json:"message"`
}

type queryErrorResponse struct {
	XMLName   xml.Name `xml:"ErrorResponse"`
	Type      string   `xml:"Error>Type"`
	Code      string   `xml:"Error>Code"`
	Message   string   `xml:"Error>Message"`
	RequestID string   `xml:"RequestId"`
}

type ec2ErrorResponse struct {
	XMLName   xml.Name `xml:"Response"`
	Code      string   `xml:"Errors>Error>Code"`
	Message   string   `xml:"Errors>Error>Message"`
	RequestID string   `xml:"RequestID"`
}

// anyQueryErrorResponse is a Query error that the SDKs of EC2 and of the
// other Query services all parse (none of them checks the root's name).
type anyQueryErrorResponse struct {
	queryErrorResponse
	EC2Code      string `xml:"Errors>Error>Code"`
	EC2Message   string `xml:"Errors>Error>Message"`
	EC2RequestID string `xml:"RequestID"`
}

// cborStringMap encodes a CBOR map of text strings (RFC 8949: major type 5
// for the map, 3 for each string), key, value, key, value, ….
func cborStringMap(kv ...string) []byte {
	b := cborHead(nil, 5, uint64(len(kv)/2))
	for _, s := range kv {
		b = cborHead(b, 3, uint64(len(s)))
		b = append(b, s...)
	}
	return b
}

func cborHead(b []byte, major byte, n uint64) []byte {
	m := major << 5
	switch {
	case n < 24:
		return append(b, m|byte(n))
	case n <= 0xff:
		return append(b, m|24, byte(n))
	case n <= 0xffff:
		return append(b, m|25, byte(n>>8), byte(n))
	case n <= 0xffffffff:
		return append(b, m|26, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
	return append(b, m|27, byte(n>>56), byte(n>>48), byte(n>>40), byte(n>>32), byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
}
