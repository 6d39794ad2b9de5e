// Package s3err is the S3 error vocabulary the AWS gateway answers with:
// S3's error codes, their HTTP statuses, and the XML body S3 clients parse.
// AWS CLIs and SDKs show the Code and Message to the user, so a refusal by
// Airlock reads like one by S3 itself, with a message saying why.
//
// For a fault S3 itself defines (a malformed signature, a bad checksum, an
// upload that does not exist), Message is S3's own text, word for word:
// clients and test suites compare it. Airlock's explanation of that fault
// goes in Detail, sent as an extra <AirlockDetail> element that SDKs ignore
// and written to the log and the session recording (Text). Refusals that
// are Airlock's own (AccessDenied outside a grant's scope) say why in
// Message itself.
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
	InvalidChunkSizeError             = "InvalidChunkSizeError"
	MalformedXML                      = "MalformedXML"
	MissingContentLength              = "MissingContentLength"
	NoSuchUpload                      = "NoSuchUpload"
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
	InvalidChunkSizeError:             http.StatusBadRequest,
	MalformedXML:                      http.StatusBadRequest,
	MissingContentLength:              http.StatusLengthRequired,
	NoSuchUpload:                      http.StatusNotFound,
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
	// Detail, if set, is Airlock's explanation of a fault whose Message
	// is S3's own text; it is sent as <AirlockDetail>. Never a secret.
	Detail string
	// MaxSizeAllowed, if set, is the bound a request exceeded.
	MaxSizeAllowed int64
	// Expired, if set, is what S3 tells of an expired presigned URL.
	Expired *Expired
	// ArgumentName and ArgumentValue, if set, name the argument an
	// InvalidArgument is about, in the elements S3 sends with it.
	ArgumentName, ArgumentValue string
	// HeadersNotSigned, if set, lists the x-amz-* headers a request did
	// not sign, in the element S3 sends with that AccessDenied.
	HeadersNotSigned string
	// Anonymous marks the refusal of a request that carried no
	// credentials at all (no Authorization header, no presigned query),
	// as opposed to one whose credentials were denied. S3 answers both
	// with AccessDenied; other services have a code of their own for it
	// (MissingAuthenticationToken), which the AWS gateway sends.
	Anonymous bool
}

func (e *Error) Error() string { return e.Code + ": " + e.Text() }

// Text is Message followed by Detail, for logs and recordings.
func (e *Error) Text() string {
	if e.Detail == "" {
		return e.Message
	}
	return e.Message + " (" + e.Detail + ")"
}

// WithDetail returns a copy of e whose Detail is the formatted text.
func (e *Error) WithDetail(format string, args ...any) *Error {
	c := *e
	c.Detail = fmt.Sprintf(format, args...)
	return &c
}

// Detailed is New with S3's exact message for code and Airlock's
// explanation in Detail.
func Detailed(code, message, detailFormat string, args ...any) *Error {
	return New(code, "%s", message).WithDetail(detailFormat, args...)
}

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

// Expired holds the elements S3 sends with an expired presigned URL's
// AccessDenied.
type Expired struct {
	ServerTime, Expires string // RFC 3339
	XAmzExpires         int64  // the URL's X-Amz-Expires
}

type body struct {
	XMLName   xml.Name `xml:"Error"`
	Code      string   `xml:"Code"`
	Message   string   `xml:"Message"`
	Resource  string   `xml:"Resource,omitempty"`
	Region    string   `xml:"Region,omitempty"`
	RequestID string   `xml:"RequestId,omitempty"`

	ArgumentName     string `xml:"ArgumentName,omitempty"`
	ArgumentValue    string `xml:"ArgumentValue,omitempty"`
	HeadersNotSigned string `xml:"HeadersNotSigned,omitempty"`
	MaxSizeAllowed   int64  `xml:"MaxSizeAllowed,omitempty"`
	ServerTime       string `xml:"ServerTime,omitempty"`
	XAmzExpires      int64  `xml:"X-Amz-Expires,omitempty"`
	Expires          string `xml:"Expires,omitempty"`
	AirlockDetail    string `xml:"AirlockDetail,omitempty"`
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
	b := body{Code: e.Code, Message: e.Message, Resource: e.Resource, Region: e.Region, RequestID: requestID, ArgumentName: e.ArgumentName, ArgumentValue: e.ArgumentValue, HeadersNotSigned: e.HeadersNotSigned, AirlockDetail: e.Detail, MaxSizeAllowed: e.MaxSizeAllowed}
	if x := e.Expired; x != nil {
		b.ServerTime, b.Expires, b.XAmzExpires = x.ServerTime, x.Expires, x.XAmzExpires
	}
	out, err := xml.Marshal(b)
	if err != nil { // cannot happen for strings
		out = []byte("<Error><Code>InternalError</Code></Error>")
	}
	w.WriteHeader(e.Status)
	_, _ = w.Write([]byte(xml.Header))
	_, _ = w.Write(out)
}
