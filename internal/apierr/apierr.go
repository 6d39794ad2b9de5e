// Package apierr is the error shape of Airlock's API: an HTTP status, a
// stable machine-readable code, the offending field when there is one, and a
// one-line message for people. The service layer returns these; the HTTP
// layer writes them as JSON; the CLI prints the message.
package apierr

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"unicode/utf8"
)

// Error is an API error. It is encoded as {"error":{"code":…,"field":…,"message":…}}.
type Error struct {
	Status  int    `json:"-"`
	Code    string `json:"code"`
	Field   string `json:"field,omitempty"`
	Message string `json:"message"`
}

func (e *Error) Error() string {
	if e.Field != "" {
		return fmt.Sprintf("%s: %s", e.Field, e.Message)
	}
	return e.Message
}

// Stable codes. Clients may switch on these; never rename one.
const (
	CodeInvalid       = "invalid_argument"
	CodeUnauthorized  = "unauthenticated"
	CodeForbidden     = "permission_denied"
	CodeNotFound      = "not_found"
	CodeConflict      = "conflict"
	CodeUnavailable   = "unavailable"
	CodeInternal      = "internal"
	CodePolicyDenied  = "policy_denied"
	CodeSelfApproval  = "self_approval"
	CodeAlreadyExists = "already_exists"
	// CodeMethodNotAllowed: the path exists, the method does not (405).
	CodeMethodNotAllowed = "method_not_allowed"
	// CodeResourceExhausted: too many requests of this kind are open (429).
	CodeResourceExhausted = "resource_exhausted"
)

// MaxEcho bounds what an error echoes of a value the client sent (an id, a
// name, a query parameter, an unknown field's name): enough to recognise
// it, not the megabyte a body or URL may hold, so that an answer is not an
// amplifier or a reflector of whatever a caller chose to send.
const MaxEcho = 64

// Quote is a client-sent value as an error message shows it: quoted as
// %q (control and invisible characters escaped), and when longer than
// MaxEcho bytes its first MaxEcho (whole runes) followed by "…" and its
// length.
func Quote(s string) string {
	if len(s) <= MaxEcho {
		return strconv.Quote(s)
	}
	return strconv.Quote(s[:cut(s)]) + fmt.Sprintf("… (%d bytes)", len(s))
}

// cut is the length of s's longest prefix of whole runes within MaxEcho
// bytes.
func cut(s string) int {
	n := MaxEcho
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return n
}

// Invalid is a 400 naming the field at fault. A field named after what the
// client sent (an unknown field, a key given twice, an unknown query
// parameter) is cut to MaxEcho bytes and marked with "…"; the API's own
// field names are far shorter.
func Invalid(field, format string, args ...any) *Error {
	if len(field) > MaxEcho {
		field = field[:cut(field)] + "…"
	}
	return &Error{Status: http.StatusBadRequest, Code: CodeInvalid, Field: field, Message: fmt.Sprintf(format, args...)}
}

// TooLarge is a 413 (Content Too Large, RFC 9110 section 15.5.14): the
// body is larger than the API reads. Its code stays invalid_argument, with
// field "body", as a malformed body's: the request must be changed, not
// retried, and clients that switch on the code need no new case.
func TooLarge(format string, args ...any) *Error {
	return &Error{Status: http.StatusRequestEntityTooLarge, Code: CodeInvalid, Field: "body", Message: fmt.Sprintf(format, args...)}
}

// Forbidden is a 403.
func Forbidden(code, format string, args ...any) *Error {
	if code == "" {
		code = CodeForbidden
	}
	return &Error{Status: http.StatusForbidden, Code: code, Message: fmt.Sprintf(format, args...)}
}

// NotFound is a 404.
func NotFound(format string, args ...any) *Error {
	return &Error{Status: http.StatusNotFound, Code: CodeNotFound, Message: fmt.Sprintf(format, args...)}
}

// Conflict is a 409: the record is not in a state that allows the operation.
func Conflict(format string, args ...any) *Error {
	return &Error{Status: http.StatusConflict, Code: CodeConflict, Message: fmt.Sprintf(format, args...)}
}

// Unavailable is a 503: Airlock cannot do this now (for example, the log
// cannot be written), and refuses rather than act unrecorded.
func Unavailable(format string, args ...any) *Error {
	return &Error{Status: http.StatusServiceUnavailable, Code: CodeUnavailable, Message: fmt.Sprintf(format, args...)}
}

// TooMany is a 429: the caller (or everyone together) has too many
// requests of this kind open; retry later.
func TooMany(format string, args ...any) *Error {
	return &Error{Status: http.StatusTooManyRequests, Code: CodeResourceExhausted, Message: fmt.Sprintf(format, args...)}
}

// From converts any error to an *Error, hiding the text of unexpected ones
// (they may contain internals); the caller logs the original.
func From(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return &Error{Status: http.StatusInternalServerError, Code: CodeInternal, Message: "internal error"}
}
