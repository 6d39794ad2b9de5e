package awsops

import (
	"errors"
	"mime"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"
)

// queryServices are the signing names that speak the AWS Query protocol.
var queryServices = map[string]bool{"sts": true, "ec2": true, "iam": true, "sqs": true, "sns": true, "monitoring": true}

// formInput is a parsed Query form: the query string and the
// form-encoded body together, each key at most once.
type formInput struct {
	m *mapper
	v map[string]string
}

func (f formInput) member(string) (*node, error) { return nil, nil }

func (f formInput) str(name string) (string, error) {
	if err := f.noCaseVariant(name, false); err != nil {
		return "", err
	}
	return f.v[name], nil
}

// noCaseVariant refuses a key that differs from name (or, for a list,
// from the name+"." prefix of its members) only in case: a service that
// matched parameter names without regard to case would read it where the
// mapper reads nothing, as the JSON decoder refuses such members.
func (f formInput) noCaseVariant(name string, list bool) error {
	prefix := name + "."
	for k := range f.v {
		if k == name || strings.HasPrefix(k, prefix) {
			continue
		}
		if strings.EqualFold(k, name) || (list && len(k) > len(prefix) && strings.EqualFold(k[:len(prefix)], prefix)) {
			return f.m.failure(codeMalformed, "form key %q differs from %q only in case", esc(k), name)
		}
	}
	return nil
}

// strs reads a Query list: Name.member.N (CloudWatch, SNS, IAM, STS) or
// Name.N (SQS, EC2), N from 1 with no gaps.
func (f formInput) strs(name string) ([]string, error) {
	if err := f.noCaseVariant(name, true); err != nil {
		return nil, err
	}
	var out []string
	for _, sep := range []string{".member.", "."} {
		for i := 1; ; i++ {
			v, ok := f.v[name+sep+strconv.Itoa(i)]
			if !ok {
				break
			}
			out = append(out, v)
		}
		if out != nil {
			break
		}
	}
	// Every key of the list must have been read: a gap or a second
	// numbering would hide a name from the checks.
	n := 0
	for k := range f.v {
		if strings.HasPrefix(k, name+".") {
			n++
		}
	}
	if n != len(out) {
		return nil, f.m.failure(codeInvalid, "list %s is not numbered 1..N without gaps in one style", name)
	}
	return out, nil
}

func (f formInput) flag(name string) (bool, error) {
	if err := f.noCaseVariant(name, false); err != nil {
		return false, err
	}
	switch f.v[name] {
	case "", "false":
		return false, nil
	case "true":
		return true, nil
	}
	return false, f.m.failure(codeInvalid, "%s must be true or false", name)
}

// query maps an AWS Query call: Action and Version in the query string or
// a form-encoded POST body, parsed once.
func (m *mapper) query() (*Op, error) {
	m.proto = pQuery
	if !queryServices[m.r.Service] {
		if _, ok := registry[m.r.Service]; ok {
			return nil, m.failure(codeMalformed, "no X-Amz-Target header: %s calls use the JSON protocol", escText(m.r.Service))
		}
		return nil, m.failure(codeDenied, "Airlock does not map calls to service %q", esc(m.r.Service))
	}
	form, err := m.parseForm()
	if err != nil {
		return nil, err
	}
	for k := range form {
		// The Query protocol takes the operation's name in Operation as
		// well as in Action ("Operation is supported for backward
		// compatibility with other AWS Query APIs"): a service could run
		// the operation one names while the mapper checked the other.
		if strings.EqualFold(k, "Operation") {
			return nil, m.failure(codeMalformed, "form key %q: AWS Query services also read Operation as the call's name; name it in Action only", esc(k))
		}
	}
	action := form["Action"]
	if action == "" {
		return nil, m.failure(codeInvalid, "no Action in the query string or form body")
	}
	if err := m.name("Action", action, 1, 128, charset("")); err != nil {
		return nil, err
	}
	m.operation = action
	return m.run(m.r.Service, action, pQuery, formInput{m, form})
}

// formErr describes a url.ParseQuery error without quoting the query:
// url.EscapeError holds the bad escape and what follows it, bytes of a
// value that may be a secret (a password, a token), and the message is
// answered and recorded.
func formErr(err error) string {
	var ee url.EscapeError
	if errors.As(err, &ee) {
		return "invalid URL escape"
	}
	return escText(err.Error())
}

// parseForm merges the query string and, for a form-encoded body, the
// body. A key given twice (in either, or once in each), or two keys equal
// but for case, is refused: AWS services disagree on which one wins.
func (m *mapper) parseForm() (map[string]string, error) {
	var sources []string
	if m.r.RawQuery != "" {
		sources = append(sources, m.r.RawQuery)
	}
	if len(m.r.Body) > 0 {
		ct := m.r.Header.Values("Content-Type")
		if len(ct) != 1 {
			return nil, m.failure(codeMalformed, "a Query call with a body has exactly one Content-Type header, not %d", len(ct))
		}
		mt, params, err := mime.ParseMediaType(ct[0])
		if err != nil || mt != "application/x-www-form-urlencoded" {
			return nil, m.failure(codeMalformed, "Content-Type %q is not application/x-www-form-urlencoded", esc(ct[0]))
		}
		if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") {
			return nil, m.failure(codeMalformed, "form charset %q is not utf-8", esc(cs))
		}
		sources = append(sources, string(m.r.Body))
	}
	form := map[string]string{}
	folded := map[string]string{}
	for _, src := range sources {
		vs, err := url.ParseQuery(src)
		if err != nil {
			return nil, m.failure(codeMalformed, "malformed form: %s", formErr(err))
		}
		keys := make([]string, 0, len(vs))
		for k := range vs {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			v := vs[k]
			if !utf8.ValidString(k) || !utf8.ValidString(v[0]) {
				return nil, m.failure(codeMalformed, "form key %q or its value is not valid UTF-8", esc(k))
			}
			fk := strings.ToUpper(strings.ToLower(k))
			if _, dup := form[k]; dup || len(v) > 1 {
				return nil, m.failure(codeMalformed, "form key %q is given more than once", esc(k))
			}
			if other, dup := folded[fk]; dup {
				return nil, m.failure(codeMalformed, "form keys %q and %q differ only in case", esc(other), esc(k))
			}
			form[k], folded[fk] = v[0], k
		}
	}
	return form, nil
}
