// Package s3err is the S3 error vocabulary the AWS gateway answers with:
// S3's error codes, their HTTP statuses, and the XML body S3 clients parse.
// AWS CLIs and SDKs show the Code and Message to the user, so a refusal by
// Airlock reads like one by S3 itself, with a message saying why.
package s3err

import (
	"encoding/xml"
	"errors"
	"fmt"
	"net/http"
)

// Codes used by the gateway, with their HTTP status as S3 gives it.
const (
	AccessDenied                      = "AccessDenied"
	AuthorizationHeaderMalformed      = "AuthorizationHeaderMalformed"
	AuthorizationQueryParametersError = "AuthorizationQueryParametersError"
	BadDigest                         = "BadDigest"
	EntityTooLarge                    = "EntityTooLarge"
	ExpiredToken                      = "ExpiredToken"
	IncompleteBody                    = "IncompleteBody"
	InternalError                     = "InternalError"
	InvalidAccessKeyID                = "InvalidAccessKeyId"
	InvalidArgument                   = "InvalidArgument"
	InvalidDigest                     = "InvalidDigest"
	InvalidRequest                    = "InvalidRequest"
	InvalidToken                      = "InvalidToken"
	MalformedTrailerError             = "MalformedTrailerError"
	MalformedXML                      = "MalformedXML"
	MissingSecurityHeader             = "MissingSecurityHeader"
	NotImplemented                    = "NotImplemented"
	RequestTimeTooSkewed              = "RequestTimeTooSkewed"
	ServiceUnavailable                = "ServiceUnavailable"
	SignatureDoesNotMatch             = "SignatureDoesNotMatch"
	XAmzContentSHA256Mismatch         = "XAmzContentSHA256Mismatch"
)

var statuses = map[string]int{
	AccessDenied:                      http.StatusForbidden,
	AuthorizationHeaderMalformed:      http.StatusBadRequest,
	AuthorizationQueryParametersError: http.StatusBadRequest,
	BadDigest:                         http.StatusBadRequest,
	EntityTooLarge:                    http.StatusBadRequest,
	ExpiredToken:                      http.StatusBadRequest,
	IncompleteBody:                    http.StatusBadRequest,
	InternalError:                     http.StatusInternalServerError,
	InvalidAccessKeyID:                http.StatusForbidden,
	InvalidArgument:                   http.StatusBadRequest,
	InvalidDigest:                     http.StatusBadRequest,
	InvalidRequest:                    http.StatusBadRequest,
	InvalidToken:                      http.StatusBadRequest,
	MalformedTrailerError:             http.StatusBadRequest,
	MalformedXML:                      http.StatusBadRequest,
	MissingSecurityHeader:             http.StatusBadRequest,
	NotImplemented:                    http.StatusNotImplemented,
	RequestTimeTooSkewed:              http.StatusForbidden,
	ServiceUnavailable:                http.StatusServiceUnavailable,
	SignatureDoesNotMatch:             http.StatusForbidden,
	XAmzContentSHA256Mismatch:         http.StatusBadRequest,
}

// Error is an S3 error response.
type Error struct {
	// Code is one of the constants above.
	Code string
	// Message is for the person reading the CLI's output. It never holds a
	// secret.
	Message string
	// Status is the HTTP status; New fills it from Code.
	Status int
	// Resource, if set, is the path the error is about.
	Resource string
	// Region, if set, is the region the request should have been signed
	// for: S3 names it in AuthorizationHeaderMalformed and
	// AuthorizationQueryParametersError, and SDKs (boto3's region
	// redirector) read it to retry with the right region.
	Region string
	// HeadersNotSigned, if set, lists the x-amz-* headers a request did
	// not sign, in the element S3 sends with that AccessDenied.
	HeadersNotSigned string
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// New returns an Error with code's status and a formatted message.
func New(code, format string, args ...any) *Error {
	st, ok := statuses[code]
	if !ok {
		st = http.StatusBadRequest
	}
	return &Error{Code: code, Message: fmt.Sprintf(format, args...), Status: st}
}

// As returns err as an *Error, or an InternalError wrapping its text if it
// is not one.
func As(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return New(InternalError, "%v", err)
}

type body struct {
	XMLName   xml.Name `xml:"Error"`
	Code      string   `xml:"Code"`
	Message   string   `xml:"Message"`
	Resource  string   `xml:"Resource,omitempty"`
	Region    string   `xml:"Region,omitempty"`
	RequestID string   `xml:"RequestId,omitempty"`

	HeadersNotSigned string `xml:"HeadersNotSigned,omitempty"`
}

// Write sends e as S3's XML error document. HEAD responses get the status
// alone, as S3 does, since they carry no body.
func Write(w http.ResponseWriter, r *http.Request, e *Error, requestID string) {
	h := w.Header()
	h.Set("Content-Type", "application/xml")
	if requestID != "" {
		h.Set("x-amz-request-id", requestID)
	}
	if r != nil && r.Method == http.MethodHead {
		w.WriteHeader(e.Status)
		return
	}
	out, err := xml.Marshal(body{Code: e.Code, Message: e.Message, Resource: e.Resource, Region: e.Region, RequestID: requestID, HeadersNotSigned: e.HeadersNotSigned})
	if err != nil { // cannot happen for strings
		out = []byte("<Error><Code>InternalError</Code></Error>")
	}
	w.WriteHeader(e.Status)
	_, _ = w.Write([]byte(xml.Header))
	_, _ = w.Write(out)
}
