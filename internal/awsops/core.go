package awsops

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"unicode/utf8"

	"github.com/airlock-dev/airlock/internal/textesc"
)

// MaxParam bounds each recorded parameter value, in bytes; a longer one is
// cut on a rune boundary and marked with how much was cut.
const MaxParam = 512

// maxListParam bounds how many names of a list are recorded; the checks
// still cover every name.
const maxListParam = 32

// Protocol families, as bits so an operation can list several.
const (
	pJSON = 1 << iota
	pQuery
	pREST
	pCBOR
)

func protoName(p int) string {
	switch p {
	case pJSON:
		return "json"
	case pQuery:
		return "query"
	case pREST:
		return "rest-json"
	case pCBOR:
		return "cbor"
	}
	return "?"
}

// Error kinds, mapped to each protocol's AWS error code.
const (
	codeDenied = iota
	codeMalformed
	codeInvalid
)

var codes = map[int][3]string{
	pJSON:  {"AccessDeniedException", "SerializationException", "ValidationException"},
	pCBOR:  {"AccessDeniedException", "SerializationException", "ValidationException"},
	pREST:  {"AccessDeniedException", "InvalidRequestContentException", "InvalidParameterValueException"},
	pQuery: {"AccessDenied", "MalformedQueryString", "ValidationError"},
}

// mapper holds one call being mapped.
type mapper struct {
	r         *Request
	part      string // ARN partition of the target's region
	proto     int
	operation string
}

// failure is an *Error for the call being mapped.
func (m *mapper) failure(kind int, format string, a ...any) *Error {
	p := m.proto
	if p == 0 {
		p = pJSON
	}
	status := http.StatusBadRequest
	if kind == codeDenied {
		status = http.StatusForbidden
	}
	return &Error{Service: m.r.Service, Operation: m.operation, Code: codes[p][kind], Status: status,
		Msg: fmt.Sprintf(format, a...)}
}

// fail is failure for callers that have not set m.proto yet.
func (m *mapper) fail(operation, proto string, kind int, msg string) *Error {
	m.operation = operation
	switch proto {
	case "query":
		m.proto = pQuery
	case "cbor":
		m.proto = pCBOR
	default:
		m.proto = pJSON
	}
	return m.failure(kind, "%s", msg)
}

// checkEncoding refuses a compressed or otherwise encoded body: the
// mapper would read bytes the upstream decodes into something else.
func (m *mapper) checkEncoding() error {
	for _, v := range m.r.Header.Values("Content-Encoding") {
		for _, e := range strings.Split(v, ",") {
			if e = strings.TrimSpace(e); e != "" && !strings.EqualFold(e, "identity") {
				return m.fail("", "json", codeInvalid, fmt.Sprintf("Content-Encoding %q: Airlock maps only uncompressed request bodies", esc(e)))
			}
		}
	}
	return nil
}

// run looks up the operation's spec and calls it.
func (m *mapper) run(service, operation string, proto int, in input) (*Op, error) {
	m.proto, m.operation = proto, operation
	ops, ok := registry[service]
	if !ok {
		return nil, m.failure(codeDenied, "Airlock does not map calls to service %q", esc(service))
	}
	spec, ok := ops[operation]
	if d := dynamic(service, operation); !ok && d != nil {
		spec, ok = d, true
	}
	if !ok || spec.protos&proto == 0 {
		if ok {
			return nil, m.failure(codeDenied, "Airlock maps %s %s only in the %s protocol, not %s", service, operation, spec.protoList(), protoName(proto))
		}
		return nil, m.failure(codeDenied, "Airlock does not map %s operation %q; ask for it to be added or use another operation", service, esc(operation))
	}
	op := &Op{Service: service, Operation: operation, Protocol: protoName(proto),
		ReadOnly: spec.readOnly, Local: spec.local, SecretResult: spec.secret, Params: map[string]string{}}
	if spec.refuse != "" {
		return nil, m.failure(codeDenied, "%s", spec.refuse)
	}
	if err := spec.fn(m, in, op); err != nil {
		return nil, err
	}
	if len(op.Checks) == 0 {
		// Every mapped operation adds its checks; an empty list would
		// let the call through unchecked.
		return nil, m.failure(codeDenied, "no authorization derived for this call")
	}
	return op, nil
}

// check adds an authorization unless it is already there.
func (op *Op) check(action, resource string) {
	c := Check{Action: action, Resource: resource}
	for _, x := range op.Checks {
		if x == c {
			return
		}
	}
	op.Checks = append(op.Checks, c)
}

// param records a reviewer's parameter, cut to MaxParam bytes.
func (op *Op) param(k, v string) {
	if v == "" {
		return
	}
	op.Params[k] = clip(v)
}

// paramList records a list of names as a JSON array, at most
// maxListParam of them, the whole cut to MaxParam bytes.
func (op *Op) paramList(k string, vs []string) {
	if len(vs) == 0 {
		return
	}
	if len(vs) > maxListParam {
		vs = append(vs[:maxListParam:maxListParam], fmt.Sprintf("… %d more", len(vs)-maxListParam))
	}
	b, _ := json.Marshal(vs)
	op.Params[k] = clip(string(b))
}

func clip(v string) string {
	if len(v) <= MaxParam {
		return v
	}
	cut := MaxParam - 32
	for cut > 0 && !utf8.RuneStart(v[cut]) {
		cut--
	}
	return fmt.Sprintf("%s…(+%d bytes)", v[:cut], len(v)-cut)
}

// esc bounds a client-supplied string for an error message, where it is
// always formatted with %q (which escapes control characters, bidi
// controls and invalid UTF-8).
func esc(s string) string {
	if len(s) > 128 {
		cut := 128
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "…"
	}
	return s
}

// escText is esc for a string formatted with %s.
func escText(s string) string { return textesc.String(esc(s)) }

// partition is the ARN partition of a region.
func partition(region string) string {
	switch {
	case strings.HasPrefix(region, "cn-"):
		return "aws-cn"
	case strings.HasPrefix(region, "us-gov-"):
		return "aws-us-gov"
	case strings.HasPrefix(region, "us-isob-"):
		return "aws-iso-b"
	case strings.HasPrefix(region, "us-iso-"):
		return "aws-iso"
	case strings.HasPrefix(region, "eu-isoe-"):
		return "aws-iso-e"
	}
	return "aws"
}

// arn builds an ARN in the target's partition, region and account.
func (m *mapper) arn(service, resource string) string {
	return "arn:" + m.part + ":" + service + ":" + m.r.Region + ":" + m.r.Account + ":" + resource
}

// parsedARN is an ARN a client named.
type parsedARN struct {
	partition, service, region, account, resource string
}

// parseARN splits s, which starts with "arn:", and refuses it unless it
// is for service in the target's partition, region and account: the
// grant is for one account and region, and AWS would act on whatever
// account an ARN names.
func (m *mapper) parseARN(what, s, service string, regional bool) (parsedARN, error) {
	f := strings.SplitN(s, ":", 6)
	if len(f) != 6 || f[0] != "arn" {
		return parsedARN{}, m.failure(codeInvalid, "%s %q is not an ARN", what, esc(s))
	}
	a := parsedARN{f[1], f[2], f[3], f[4], f[5]}
	switch {
	case a.partition != m.part:
		return a, m.failure(codeDenied, "%s %q is in partition %q; the target is in %q", what, esc(s), esc(a.partition), m.part)
	case a.service != service:
		return a, m.failure(codeDenied, "%s %q is an ARN of service %q, not %s", what, esc(s), esc(a.service), service)
	case regional && a.region != m.r.Region:
		return a, m.failure(codeDenied, "%s %q is in region %q; the grant's target is region %s", what, esc(s), esc(a.region), m.r.Region)
	case a.account != m.r.Account:
		return a, m.failure(codeDenied, "%s %q is in account %q; the grant's target is account %s", what, esc(s), esc(a.account), m.r.Account)
	}
	return a, nil
}

// fromARN returns what follows prefix in the resource of an ARN a client
// gave as what, refusing an ARN of another service, partition, region or
// account, or of another resource type.
func (m *mapper) fromARN(what, s, service, prefix string) (string, error) {
	if err := m.name(what, s, 1, 2048, nil); err != nil {
		return "", err
	}
	a, err := m.parseARN(what, s, service, true)
	if err != nil {
		return "", err
	}
	rest, ok := strings.CutPrefix(a.resource, prefix)
	if !ok {
		return "", m.failure(codeInvalid, "%s %q is not a %s ARN", what, esc(s), strings.TrimRight(prefix, ":/"))
	}
	return rest, nil
}

// name checks a name against AWS's rules for it: length in bytes, and
// allowed ASCII characters (allowed == "" allows any printable Unicode).
// Control characters (C0, DEL, C1) and invalid UTF-8 are always refused.
func (m *mapper) name(what, s string, min, max int, allowed func(r rune) bool) error {
	if len(s) < min || len(s) > max {
		if s == "" {
			return m.failure(codeInvalid, "%s is missing", what)
		}
		return m.failure(codeInvalid, "%s %q must be %d to %d bytes long", what, esc(s), min, max)
	}
	if !utf8.ValidString(s) {
		return m.failure(codeInvalid, "%s %q is not valid UTF-8", what, esc(s))
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return m.failure(codeInvalid, "%s %q contains a control character", what, esc(s))
		}
		if allowed != nil && !allowed(r) {
			return m.failure(codeInvalid, "%s %q contains %q, which AWS does not allow in it", what, esc(s), r)
		}
	}
	return nil
}

// charset returns a predicate for ASCII letters, digits and extra.
func charset(extra string) func(rune) bool {
	return func(r rune) bool {
		return r < 0x80 && (r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune(extra, r))
	}
}
