package awsgw

import (
	"encoding/json"
	"encoding/xml"
	"net/http"
	"strconv"
	"strings"

	"github.com/airlock-dev/airlock/internal/s3err"
	"github.com/airlock-dev/airlock/internal/sigv4"
)

// Errors for services other than S3 are written in the service's own
// shape, so that the agent's SDK parses them into its usual typed error
// (and prints Airlock's message) rather than "unknown error":
//
//   - JSON 1.0/1.1 (X-Amz-Target: DynamoDB, Logs, SSM, …): the code in
//     x-amzn-ErrorType and as "__type", the text as "message".
//   - REST-JSON (Lambda): the same header, {"Type":"User","message":…}.
//   - AWS Query (STS, IAM, SQS, SNS, CloudWatch):
//     <ErrorResponse><Error><Type>Sender</Type><Code>…; EC2's variant is
//     <Response><Errors><Error><Code>…, with EC2's own codes (ec2Code).
//   - smithy-rpcv2-cbor: the JSON members, CBOR-encoded.

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
	h := r.Header.Get("Authorization")
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
	parts := strings.Split(strings.TrimSpace(cred), "/")
	if len(parts) != 5 || !sigv4.ValidService(parts[3]) {
		return ""
	}
	return parts[3]
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

// ec2Code is EC2's own code and HTTP status for the fault the gateway's
// S3 code names, where EC2 differs from the other Query services, or ""
// (AWS's "Error codes for the Amazon EC2 API"): EC2 answers every
// credential it cannot validate (unknown key, bad signature or token,
// wrong scope) with AuthFailure and 401, an expired credential or a
// request outside the 15-minute window with RequestExpired and 400 (an
// SDK takes it as a sign to refresh credentials), a denied action with
// UnauthorizedOperation, and its own fault with InternalError, not the
// Query services' InternalFailure.
func ec2Code(code string) (string, int) {
	switch code {
	case s3err.AccessDenied, "AccessDeniedException":
		return "UnauthorizedOperation", http.StatusForbidden
	case s3err.InvalidAccessKeyID, s3err.InvalidToken, s3err.SignatureDoesNotMatch, s3err.AuthorizationHeaderMalformed, s3err.XAmzContentSHA256Mismatch:
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
// goes with it (0: the S3 error's own).
func serviceCode(code, proto, service string) (string, int) {
	if service == "ec2" {
		if c, status := ec2Code(code); c != "" {
			return c, status
		}
	}
	return queryOrJSONCode(code, proto), 0
}

// queryOrJSONCode is the code the Query (or, for any other protocol, the
// JSON) services share for the fault the gateway's S3 code names.
func queryOrJSONCode(code, proto string) string {
	json := proto != protoQuery
	switch code {
	case s3err.AccessDenied, "AccessDeniedException":
		if json {
			return "AccessDeniedException"
		}
		return "AccessDenied"
	case s3err.InvalidAccessKeyID:
		if json {
			return "UnrecognizedClientException"
		}
		return "InvalidClientTokenId"
	case s3err.SignatureDoesNotMatch, s3err.AuthorizationHeaderMalformed, s3err.XAmzContentSHA256Mismatch:
		if json {
			return "InvalidSignatureException"
		}
		return "SignatureDoesNotMatch"
	case s3err.ExpiredToken:
		if json {
			return "ExpiredTokenException"
		}
		return "ExpiredToken"
	case s3err.InvalidToken:
		if json {
			return "UnrecognizedClientException"
		}
		return "InvalidClientTokenId"
	case s3err.RequestTimeTooSkewed:
		if json {
			return "InvalidSignatureException"
		}
		return "RequestExpired"
	case s3err.ServiceUnavailable:
		if json {
			return "ServiceUnavailableException"
		}
		return "ServiceUnavailable"
	case s3err.InternalError:
		return "InternalFailure"
	case s3err.EntityTooLarge:
		return "RequestEntityTooLarge"
	case s3err.InvalidArgument, s3err.InvalidRequest:
		if json {
			return "ValidationException"
		}
		return "InvalidParameterValue"
	}
	return code
}

// writeServiceError answers r with e in the shape of service's protocol.
func writeServiceError(w http.ResponseWriter, r *http.Request, service string, e *s3err.Error, reqID string) {
	proto := requestProtocol(r)
	code, status := serviceCode(e.Code, proto, service)
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
		h.Set("Smithy-Protocol", "rpc-v2-cbor")
		h.Set("Content-Type", "application/cbor")
		h.Set("X-Amzn-Errortype", code)
		w.WriteHeader(status)
		_, _ = w.Write(cborStringMap("__type", code, "message", msg))
	default:
		ct := "application/json"
		if proto == protoJSON {
			ct = "application/x-amz-json-1.1"
			if v := r.Header.Get("Content-Type"); strings.HasPrefix(v, "application/x-amz-json-1.0") {
				ct = "application/x-amz-json-1.0"
			}
		}
		h.Set("Content-Type", ct)
		h.Set("X-Amzn-Errortype", code)
		b, _ := json.Marshal(jsonError{Type: code, Message: msg})
		h.Set("Content-Length", strconv.Itoa(len(b)))
		w.WriteHeader(status)
		_, _ = w.Write(b)
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
