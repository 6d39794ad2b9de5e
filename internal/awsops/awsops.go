// Package awsops maps a SigV4-signed call to an AWS service other than S3
// (DynamoDB, CloudWatch Logs, SSM, Lambda, STS, EC2, SQS, …) to the IAM
// actions and resource ARNs it needs, read from the request itself, and to
// the parameters a reviewer needs to see.
//
// The gateway (internal/awsgw) verifies the signature first; the service
// name here is the one in the verified credential scope, never a header the
// client could set unsigned. Everything a request names that IAM scopes
// (every table of a batch, every parameter name) becomes a Check: the call
// is allowed only if the grant's scope covers every one. A call this
// package does not know is refused with an *Error naming the service and
// operation; nothing is forwarded on a guess.
//
// Four wire protocols are read: JSON 1.0/1.1 with X-Amz-Target (json.go),
// AWS Query (query.go), REST-JSON for Lambda (lambda.go) and Smithy RPC v2
// CBOR (cbor.go). Each refuses what an upstream could read differently from
// us: duplicate JSON member names at any depth, member names that differ
// only in case from one we read, duplicate form keys, a body whose protocol
// headers disagree. docs/aws-mapping.md is generated from the table in
// table.go (see Markdown) and lists every mapped operation.
package awsops

import (
	"fmt"
	"net/http"
)

// MaxBody bounds the request body the mapper reads; a longer one is
// refused before it is parsed.
const MaxBody = 1 << 20

// Request is what the mapper sees of one call. Body holds the whole
// request body (at most MaxBody bytes).
type Request struct {
	// Service is the signing name from the verified credential scope
	// ("dynamodb", "logs", "ssm", "sts", …).
	Service string
	// Region and Account are the target's: ARNs are built from them.
	Region, Account string
	Method          string
	Path            string // unescaped path, as in url.URL.Path
	RawQuery        string
	Header          http.Header
	Body            []byte
}

// Check is one IAM authorization the call needs.
type Check struct {
	Action   string // "dynamodb:GetItem"
	Resource string // "arn:aws:dynamodb:us-east-1:111122223333:table/orders", or "*"
}

// Op is a mapped call.
type Op struct {
	Service   string // signing name, "dynamodb"
	Operation string // API operation, "GetItem"
	// Protocol is the wire protocol family: "json", "query", "rest-json"
	// or "cbor".
	Protocol string
	// Checks are every authorization the call needs; never empty.
	Checks []Check
	// Params are what a reviewer needs (log group, filter pattern, table,
	// key condition, parameter names, function name). Never a secret's
	// value, never a whole body. Each value is at most MaxParam bytes;
	// lists are JSON arrays of strings.
	Params map[string]string
	// ReadOnly is true for calls that cannot change state upstream: they
	// may be forwarded while their record is being written, with the
	// response held until it is durable.
	ReadOnly bool
	// Local is true for calls the gateway answers itself and never
	// forwards (sts:GetCallerIdentity).
	Local bool
	// SecretResult is true when the response carries secret material
	// (Secrets Manager values, SSM parameter values, KMS plaintext): its
	// body is never recorded, only its size.
	SecretResult bool
}

// Error is a call the mapper refuses: unknown service or operation,
// malformed or oversized body, a body that names something twice or
// contradicts the signed target.
type Error struct {
	Service, Operation string
	// Code is the AWS error code to answer with ("AccessDeniedException",
	// "ValidationException", "SerializationException", …).
	Code   string
	Status int
	Msg    string
}

func (e *Error) Error() string {
	if e.Operation == "" {
		return fmt.Sprintf("%s: %s", e.Service, e.Msg)
	}
	return fmt.Sprintf("%s %s: %s", e.Service, e.Operation, e.Msg)
}

// NeedsBody reports whether Map reads the request body for a call signed
// for service. It is false only for Lambda, whose operations are named by
// method and path and whose Invoke payload (up to 6 MB upstream) the
// gateway may stream without buffering; Map then ignores Body.
func NeedsBody(service string) bool { return service != "lambda" }

// Map returns the Op for r, or an *Error.
func Map(r *Request) (op *Op, err error) {
	m := &mapper{r: r, part: partition(r.Region)}
	switch {
	case r.Service == "lambda":
		return m.lambda()
	case len(r.Body) > MaxBody:
		return nil, &Error{Service: r.Service, Code: "RequestEntityTooLarge", Status: http.StatusRequestEntityTooLarge,
			Msg: fmt.Sprintf("request body of %d bytes is larger than the %d bytes Airlock reads to map a call", len(r.Body), MaxBody)}
	}
	if err := m.checkEncoding(); err != nil {
		return nil, err
	}
	targets := r.Header.Values("X-Amz-Target")
	smithy := r.Header.Values("Smithy-Protocol")
	switch {
	case len(r.Header.Values("X-Amzn-Target")) > 0:
		// Not what any SDK sends, but a name AWS front ends know for the
		// target header (the Smithy RPC v2 specification has servers
		// refuse it for that reason): an upstream could route by it to an
		// operation the mapper never saw.
		return nil, m.fail("", "json", codeMalformed, "X-Amzn-Target is set; a call names its operation in X-Amz-Target, the Query Action or the RPC v2 path only")
	case len(targets) > 0 && len(smithy) > 0:
		return nil, m.fail("", "json", codeMalformed, "both X-Amz-Target and Smithy-Protocol are set; a call has one protocol")
	case len(targets) > 0:
		return m.jsonRPC(targets)
	case len(smithy) > 0:
		return m.cborRPC(smithy)
	default:
		return m.query()
	}
}
