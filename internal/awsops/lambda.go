package awsops

import (
	"net/url"
	"regexp"
	"strings"
)

var (
	functionChars  = charset("-_")
	qualifierChars = charset("-_$")
)

// lambda maps a Lambda REST-JSON call from its method and path; the body
// is never read (an Invoke payload is opaque and up to 6 MB).
func (m *mapper) lambda() (*Op, error) {
	m.proto = pREST
	if len(m.r.Header.Values("X-Amz-Target")) > 0 || len(m.r.Header.Values("X-Amzn-Target")) > 0 || len(m.r.Header.Values("Smithy-Protocol")) > 0 {
		return nil, m.failure(codeMalformed, "Lambda calls are REST-JSON; X-Amz-Target, X-Amzn-Target or Smithy-Protocol is not expected")
	}
	q, err := url.ParseQuery(m.r.RawQuery)
	if err != nil {
		return nil, m.failure(codeMalformed, "malformed query string: %s", formErr(err))
	}
	for k, v := range q {
		if len(v) > 1 {
			return nil, m.failure(codeMalformed, "query parameter %q is given more than once", esc(k))
		}
		// A Lambda that matched the key without regard to case would run
		// the version or alias it names while the check is on the
		// unqualified function, as the JSON and Query readers refuse
		// case variants of the members they read.
		if k != "Qualifier" && strings.EqualFold(k, "Qualifier") {
			return nil, m.failure(codeMalformed, "query parameter %q differs from Qualifier only in case", esc(k))
		}
	}
	seg := strings.Split(strings.TrimPrefix(m.r.Path, "/"), "/")
	var operation, fn string
	switch {
	case m.r.Method == "GET" && len(seg) == 2 && seg[0] == "2015-03-31" && seg[1] == "functions",
		m.r.Method == "GET" && len(seg) == 3 && seg[0] == "2015-03-31" && seg[1] == "functions" && seg[2] == "":
		operation = "ListFunctions"
	case m.r.Method == "GET" && len(seg) == 3 && seg[0] == "2015-03-31" && seg[1] == "functions":
		operation, fn = "GetFunction", seg[2]
	case m.r.Method == "GET" && len(seg) == 4 && seg[0] == "2015-03-31" && seg[1] == "functions" && seg[3] == "configuration":
		operation, fn = "GetFunctionConfiguration", seg[2]
	case m.r.Method == "POST" && len(seg) == 4 && seg[0] == "2015-03-31" && seg[1] == "functions" && seg[3] == "invocations":
		operation, fn = "Invoke", seg[2]
	case m.r.Method == "POST" && len(seg) == 4 && seg[0] == "2021-11-15" && seg[1] == "functions" && seg[3] == "response-streaming-invocations":
		operation, fn = "InvokeWithResponseStream", seg[2]
	default:
		return nil, m.failure(codeDenied, "Airlock does not map lambda call %q %q", esc(m.r.Method), esc(m.r.Path))
	}
	m.operation = operation
	in := lambdaInput{fn: fn, q: q}
	return m.run("lambda", operation, pREST, in)
}

// lambdaInput is a Lambda call's function name (from the path) and
// query string.
type lambdaInput struct {
	fn string
	q  url.Values
}

func (l lambdaInput) member(string) (*node, error)       { return nil, nil }
func (l lambdaInput) strs(name string) ([]string, error) { return l.q[name], nil }
func (l lambdaInput) flag(name string) (bool, error)     { return l.q.Get(name) == "true", nil }
func (l lambdaInput) str(name string) (string, error) {
	if name == "FunctionName" {
		return l.fn, nil
	}
	return l.q.Get(name), nil
}

// function returns the function ARN a FunctionName and Qualifier name:
// a full ARN, or the forms Lambda's FunctionName pattern takes,
// [REGION:][ACCOUNT:][function:]NAME, each optionally ending in
// :QUALIFIER (a version or alias). IAM authorizes a qualified call on
// the qualified ARN.
func (m *mapper) function(in input, op *Op) (string, error) {
	fn, _ := in.str("FunctionName")
	qual, _ := in.str("Qualifier")
	if err := m.name("FunctionName", fn, 1, 256, nil); err != nil {
		return "", err
	}
	var name, nameQual string
	if strings.HasPrefix(fn, "arn:") {
		a, err := m.parseARN("FunctionName", fn, "lambda", true)
		if err != nil {
			return "", err
		}
		r := strings.Split(a.resource, ":")
		if len(r) < 2 || len(r) > 3 || r[0] != "function" {
			return "", m.failure(codeInvalid, "FunctionName %q is not a function ARN", esc(fn))
		}
		name = r[1]
		if len(r) == 3 {
			nameQual = r[2]
		}
	} else {
		var err error
		if name, nameQual, err = m.partialFunction(fn); err != nil {
			return "", err
		}
	}
	if err := m.name("function name", name, 1, 64, functionChars); err != nil {
		return "", err
	}
	switch {
	case nameQual != "" && qual != "" && nameQual != qual:
		return "", m.failure(codeInvalid, "FunctionName qualifier %q and Qualifier %q differ", esc(nameQual), esc(qual))
	case nameQual != "":
		qual = nameQual
	}
	res := "function:" + name
	op.param("function", name)
	if qual != "" {
		if err := m.name("Qualifier", qual, 1, 128, qualifierChars); err != nil {
			return "", err
		}
		res += ":" + qual
		op.param("qualifier", qual)
	}
	return m.arn("lambda", res), nil
}

func functionCheck(action string, invoke bool) func(m *mapper, in input, op *Op) error {
	return func(m *mapper, in input, op *Op) error {
		res, err := m.function(in, op)
		if err != nil {
			return err
		}
		if invoke {
			// The invocation type is in a header; Event and DryRun
			// change what a reviewer reads into the call.
			if t := m.r.Header.Get("X-Amz-Invocation-Type"); t != "" {
				if err := m.name("X-Amz-Invocation-Type", t, 1, 32, charset("")); err != nil {
					return err
				}
				op.param("invocationType", t)
			}
		}
		op.check(action, res)
		return nil
	}
}

func init() {
	const fn = "`arn:aws:lambda:R:A:function:NAME`, or `…:NAME:QUALIFIER` for a version or alias"
	register("lambda", map[string]*spec{
		"Invoke": {protos: pREST, fn: functionCheck("lambda:InvokeFunction", true),
			actions: "lambda:InvokeFunction", resources: fn, params: "function, qualifier, invocationType"},
		"InvokeWithResponseStream": {protos: pREST, fn: functionCheck("lambda:InvokeFunction", true),
			actions: "lambda:InvokeFunction", resources: fn, params: "function, qualifier, invocationType"},
		"GetFunction": {protos: pREST, readOnly: true, fn: functionCheck("lambda:GetFunction", false),
			actions: "lambda:GetFunction", resources: fn, params: "function, qualifier"},
		"GetFunctionConfiguration": {protos: pREST, readOnly: true, fn: functionCheck("lambda:GetFunctionConfiguration", false),
			actions: "lambda:GetFunctionConfiguration", resources: fn, params: "function, qualifier"},
		"ListFunctions": {protos: pREST, readOnly: true, fn: everything("lambda:ListFunctions"),
			actions: "lambda:ListFunctions", resources: "`*`"},
	})
}

// partialFunction reads a FunctionName that is not a full ARN as
// Lambda's pattern for it does,
//
//	(REGION:)?(ACCOUNT:)?(function:)?NAME(:QUALIFIER)?
//
// each optional prefix taken when something follows it: "function:x" is
// the function x, "us-east-1:x" the function x in us-east-1 and
// "111122223333:x" the function x in that account. Read as NAME:QUALIFIER
// instead, each would be checked as a function named "function",
// "us-east-1" or after the account while Lambda runs x, which a grant on
// a name prefix ("function:f*") would let through. The region and the
// account must be the target's.
func (m *mapper) partialFunction(fn string) (name, qual string, err error) {
	f := strings.Split(fn, ":")
	i := 0
	if len(f) > i+1 && lambdaRegion.MatchString(f[i]) {
		if f[i] != m.r.Region {
			return "", "", m.failure(codeDenied, "FunctionName %q is in region %q; the grant's target is region %s", esc(fn), esc(f[i]), m.r.Region)
		}
		i++
	}
	if len(f) > i+1 && isAccountID(f[i]) {
		if f[i] != m.r.Account {
			return "", "", m.failure(codeDenied, "FunctionName %q is in account %q; the grant's target is account %s", esc(fn), esc(f[i]), m.r.Account)
		}
		i++
	}
	if len(f) > i+1 && f[i] == "function" {
		i++
	}
	switch len(f) - i {
	case 1:
		return f[i], "", nil
	case 2:
		return f[i], f[i+1], nil
	}
	return "", "", m.failure(codeInvalid, "FunctionName %q has too many parts", esc(fn))
}

// lambdaRegion is the region part of Lambda's FunctionName pattern.
var lambdaRegion = regexp.MustCompile(`^(eusc-)?[a-z]{2}((-gov)|(-iso[a-z]?))?-[a-z]+-[0-9]$`)

// isAccountID: twelve ASCII digits, an AWS account id.
func isAccountID(s string) bool {
	if len(s) != 12 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
