package awsops

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/url"
	"strings"
	"sync"
	"unicode"

	"github.com/go-json-experiment/json/jsontext"
)

// jsonTargets maps the X-Amz-Target prefix of each JSON service to the
// SigV4 signing name it must be signed for.
var jsonTargets = map[string]string{
	"DynamoDB_20120810":                  "dynamodb",
	"Logs_20140328":                      "logs",
	"AmazonSSM":                          "ssm",
	"secretsmanager":                     "secretsmanager",
	"TrentService":                       "kms",
	"AmazonEC2ContainerServiceV20141113": "ecs",
	"Kinesis_20131202":                   "kinesis",
	"GraniteServiceVersion20100801":      "monitoring",
	"AmazonSQS":                          "sqs",
}

// jsonRPC maps a JSON 1.0/1.1 call: exactly one X-Amz-Target naming an
// operation of the signed service, a JSON content type, and a body that is
// one strict JSON object.
func (m *mapper) jsonRPC(targets []string) (*Op, error) {
	m.proto = pJSON
	if len(targets) != 1 {
		return nil, m.failure(codeMalformed, "%d X-Amz-Target headers; a call has exactly one", len(targets))
	}
	prefix, operation, ok := strings.Cut(targets[0], ".")
	if !ok || prefix == "" || operation == "" || strings.Contains(operation, ".") {
		return nil, m.failure(codeMalformed, "X-Amz-Target %q is not Service.Operation", esc(targets[0]))
	}
	if err := m.name("operation", operation, 1, 128, charset("")); err != nil {
		return nil, err
	}
	m.operation = operation
	svc, known := jsonTargets[prefix]
	switch {
	case !known:
		return nil, m.failure(codeDenied, "Airlock does not map X-Amz-Target service %q", esc(prefix))
	case svc != m.r.Service:
		return nil, m.failure(codeDenied, "X-Amz-Target %q is for service %s, but the request is signed for %q", esc(targets[0]), svc, esc(m.r.Service))
	}
	ct := m.r.Header.Values("Content-Type")
	if len(ct) != 1 {
		return nil, m.failure(codeMalformed, "a JSON call has exactly one Content-Type header, not %d", len(ct))
	}
	mt, _, err := mime.ParseMediaType(ct[0])
	if err != nil || (mt != "application/x-amz-json-1.0" && mt != "application/x-amz-json-1.1") {
		return nil, m.failure(codeMalformed, "Content-Type %q is not application/x-amz-json-1.0 or 1.1", esc(ct[0]))
	}
	if queryNamesOperation(m.r.RawQuery) {
		return nil, m.failure(codeMalformed, "a JSON call must not carry a Query protocol Action or Operation")
	}
	root, err := m.decodeJSON(m.r.Body)
	if err != nil {
		return nil, err
	}
	return m.run(svc, operation, pJSON, treeInput{m, root})
}

// queryNamesOperation reports whether a query string may name a Query
// protocol operation (Action or Operation, in any case, anywhere), read
// both as sent and percent-decoded: "Acti%6Fn=DeleteQueue" is the Action
// a service decodes. A query that does not decode is refused too.
func queryNamesOperation(raw string) bool {
	dec, err := url.QueryUnescape(raw)
	if err != nil {
		return true
	}
	for _, q := range []string{strings.ToLower(raw), strings.ToLower(dec)} {
		if strings.Contains(q, "action") || strings.Contains(q, "operation") {
			return true
		}
	}
	return false
}

var decoders = sync.Pool{New: func() any { return jsontext.NewDecoder(bytes.NewReader(nil)) }}

// decodeJSON reads body as exactly one JSON object. Duplicate member
// names at any depth, invalid UTF-8 and trailing data are refused by the
// decoder (jsontext, the reference implementation of encoding/json/v2,
// checks names as it streams, also in the values we skip).
func (m *mapper) decodeJSON(body []byte) (*node, error) {
	if len(bytes.TrimSpace(body)) == 0 {
		return &node{kind: 'o'}, nil // "no input": what the SDKs send as {}
	}
	// Decoders are pooled: one is a few KiB of state, more than the
	// whole mapping of a small call otherwise allocates.
	// A bytes.Buffer lets jsontext read body in place (it never writes
	// to it); resetting to an empty reader after use drops the alias, so
	// a pooled decoder keeps no body alive.
	d := decoders.Get().(*jsontext.Decoder)
	d.Reset(bytes.NewBuffer(body))
	defer func() {
		d.Reset(bytes.NewReader(nil))
		decoders.Put(d)
	}()
	if d.PeekKind() != '{' {
		return nil, m.failure(codeMalformed, "the body is not a JSON object")
	}
	var c counter
	root, err := m.readJSON(d, 0, &c)
	if err != nil {
		return nil, err
	}
	if _, err := d.ReadToken(); err != io.EOF {
		return nil, m.failure(codeMalformed, "data after the JSON object")
	}
	return root, nil
}

// jsonErr reports a malformed body by where it is malformed: the
// decoder's own message quotes the bytes at the error (up to a dozen, from
// whatever value holds them: PutSecretValue's SecretString, a parameter's
// Value), and the message is answered and recorded. A duplicate member's
// name is kept: it is a name, and the most useful word of the message.
func (m *mapper) jsonErr(err error) error {
	var se *jsontext.SyntacticError
	if errors.As(err, &se) {
		what := "invalid JSON"
		if errors.Is(se.Err, jsontext.ErrDuplicateName) {
			what = se.Err.Error()
		}
		where := ""
		if se.JSONPointer != "" {
			where = fmt.Sprintf(" within %q", esc(string(se.JSONPointer)))
		}
		return m.failure(codeMalformed, "malformed JSON body: %s%s at byte offset %d", escText(what), where, se.ByteOffset)
	}
	if err == io.EOF || errors.Is(err, io.ErrUnexpectedEOF) {
		return m.failure(codeMalformed, "malformed JSON body: unexpected end")
	}
	return m.failure(codeMalformed, "malformed JSON body: %s", escText(err.Error()))
}

// readJSON reads the next value, keeping it if depth <= keepDepth.
func (m *mapper) readJSON(d *jsontext.Decoder, depth int, c *counter) (*node, error) {
	if !c.add() {
		return nil, m.failure(codeInvalid, "the body names more than %d values Airlock reads", maxNodes)
	}
	if k := d.PeekKind(); depth > keepDepth || (depth == keepDepth && (k == '{' || k == '[')) {
		// Containers at keepDepth are validated and skipped whole: their
		// members are beyond what any operation reads.
		if err := d.SkipValue(); err != nil {
			return nil, m.jsonErr(err)
		}
		return &node{kind: 'x'}, nil
	}
	tok, err := d.ReadToken()
	if err != nil {
		return nil, m.jsonErr(err)
	}
	switch tok.Kind() {
	case '{':
		n := &node{kind: 'o'}
		for d.PeekKind() != '}' {
			nt, err := d.ReadToken()
			if err != nil {
				return nil, m.jsonErr(err)
			}
			name := nt.String()
			if depth == 0 && !readMembers[name] && !foldsToRead(name) {
				if err := d.SkipValue(); err != nil {
					return nil, m.jsonErr(err)
				}
				continue
			}
			v, err := m.readJSON(d, depth+1, c)
			if err != nil {
				return nil, err
			}
			n.obj = append(n.obj, member{name, v})
		}
		if _, err := d.ReadToken(); err != nil {
			return nil, m.jsonErr(err)
		}
		return n, nil
	case '[':
		n := &node{kind: 'a'}
		for d.PeekKind() != ']' {
			v, err := m.readJSON(d, depth+1, c)
			if err != nil {
				return nil, err
			}
			n.arr = append(n.arr, v)
		}
		if _, err := d.ReadToken(); err != nil {
			return nil, m.jsonErr(err)
		}
		return n, nil
	case '"':
		return &node{kind: 's', str: tok.String()}, nil
	case '0':
		return &node{kind: 'n', str: tok.String()}, nil
	case 't':
		return &node{kind: 't'}, nil
	case 'f':
		return &node{kind: 'f'}, nil
	case 'n':
		return &node{kind: '0'}, nil
	}
	return nil, m.failure(codeMalformed, "malformed JSON body")
}

// foldsToRead reports whether name matches a member we read except for
// case (Unicode simple folding, as strings.EqualFold, so "ſecretId"
// counts); such members are kept so that get can refuse them.
func foldsToRead(name string) bool {
	return readMembersFold[foldKey(name)]
}

// readMembersFold holds foldKey of every member we read.
var readMembersFold = func() map[string]bool {
	set := map[string]bool{}
	for n := range readMembers {
		set[foldKey(n)] = true
	}
	return set
}()

// foldKey maps s to a canonical form under simple case folding: each
// rune becomes the smallest rune of its folding orbit, so two strings
// are EqualFold exactly when their keys are equal.
func foldKey(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	for _, r := range s {
		min := r
		for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
			if f < min {
				min = f
			}
		}
		b.WriteRune(min)
	}
	return b.String()
}
