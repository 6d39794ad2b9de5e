package review

import (
	"bytes"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/airlock-dev/airlock/internal/gateway"
)

// Gateway calls are nearly all of a log, and decoding them with
// encoding/json cost most of `audit verify`'s time. parseCallFast decodes a
// session.call or session.results entry by hand, in one pass and without
// reflection, but only when it can be sure of giving exactly what
// encoding/json would give: plain keys (no escapes, no duplicates, none that
// encoding/json's case-insensitive matching would take for a field), plain
// strings for the values it keeps, integers for the counts, and valid JSON
// throughout (skipped values are checked too). Anything else makes it give
// up (ok false), and Parse decodes the entry with encoding/json as before.
// FuzzParseFast holds the two to the same answers.

// callKeys are the members of a gateway call decoded for the summary, and
// the call's other members (skipped, but known not to be misread).
var (
	callKeys  = []string{"kind", "action", "resource", "also", "allowed", "bytes_in", "bytes_out", "refused"}
	entryKeys = []string{"seq", "time", "type", "grant", "session", "actor", "data"}
)

// maxFastDepth bounds the nesting parseCallFast follows in skipped values;
// deeper entries go to encoding/json.
const maxFastDepth = 32

type fastScanner struct {
	b  []byte
	i  int
	in *interner // nil: every string is a new allocation
}

// interner hands out one string per distinct value (grant and session ids,
// actions and resources repeat from entry to entry), so that decoding a
// call allocates nothing for them. Not safe for concurrent use.
type interner struct{ m map[string]string }

// maxInterned bounds an interner; it starts over when full.
const maxInterned = 1 << 14

func (in *interner) get(b []byte) string {
	if in == nil {
		return string(b)
	}
	if s, ok := in.m[string(b)]; ok {
		return s
	}
	if in.m == nil || len(in.m) >= maxInterned {
		in.m = make(map[string]string, 256)
	}
	s := string(b)
	in.m[s] = s
	return s
}

func (s *fastScanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// next skips whitespace and returns the next byte (0 at the end).
func (s *fastScanner) next() byte {
	s.ws()
	if s.i < len(s.b) {
		return s.b[s.i]
	}
	return 0
}

// end skips whitespace and reports whether the input is used up. next's 0
// is no test of that: it is also what next returns for a NUL byte, so an
// entry followed by one was decoded, where encoding/json refuses it.
func (s *fastScanner) end() bool {
	s.ws()
	return s.i == len(s.b)
}

func (s *fastScanner) eat(c byte) bool {
	if s.next() != c {
		return false
	}
	s.i++
	return true
}

// plainString reads a string without escapes or control characters, whose
// bytes are therefore its value if they are valid UTF-8.
func (s *fastScanner) plainString() ([]byte, bool) {
	if !s.eat('"') {
		return nil, false
	}
	start := s.i
	ascii := true
	for s.i < len(s.b) {
		c := s.b[s.i]
		switch {
		case c == '"':
			v := s.b[start:s.i]
			s.i++
			if !ascii && !utf8.Valid(v) {
				return nil, false
			}
			return v, true
		case c == '\\' || c < 0x20:
			return nil, false
		case c >= 0x80:
			ascii = false
		}
		s.i++
	}
	return nil, false
}

// skipString skips a valid JSON string, escapes included.
func (s *fastScanner) skipString() bool {
	if !s.eat('"') {
		return false
	}
	for s.i < len(s.b) {
		c := s.b[s.i]
		switch {
		case c == '"':
			s.i++
			return true
		case c < 0x20:
			return false
		case c == '\\':
			s.i++
			if s.i >= len(s.b) {
				return false
			}
			switch s.b[s.i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if s.i+4 >= len(s.b) {
					return false
				}
				for _, h := range s.b[s.i+1 : s.i+5] {
					if !isHex(h) {
						return false
					}
				}
				s.i += 4
			default:
				return false
			}
		}
		s.i++
	}
	return false
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// number reads a JSON number and reports whether it is an integer (no
// fraction or exponent).
func (s *fastScanner) number() (tok []byte, integer, ok bool) {
	s.ws()
	start := s.i
	if s.i < len(s.b) && s.b[s.i] == '-' {
		s.i++
	}
	switch {
	case s.i < len(s.b) && s.b[s.i] == '0':
		s.i++
	case s.i < len(s.b) && '1' <= s.b[s.i] && s.b[s.i] <= '9':
		for s.i < len(s.b) && '0' <= s.b[s.i] && s.b[s.i] <= '9' {
			s.i++
		}
	default:
		return nil, false, false
	}
	integer = true
	if s.i < len(s.b) && s.b[s.i] == '.' {
		integer = false
		s.i++
		if !s.digits() {
			return nil, false, false
		}
	}
	if s.i < len(s.b) && (s.b[s.i] == 'e' || s.b[s.i] == 'E') {
		integer = false
		s.i++
		if s.i < len(s.b) && (s.b[s.i] == '+' || s.b[s.i] == '-') {
			s.i++
		}
		if !s.digits() {
			return nil, false, false
		}
	}
	return s.b[start:s.i], integer, true
}

func (s *fastScanner) digits() bool {
	start := s.i
	for s.i < len(s.b) && '0' <= s.b[s.i] && s.b[s.i] <= '9' {
		s.i++
	}
	return s.i > start
}

// int64Value reads an integer that fits an int64, as encoding/json decodes
// it into an int64 field.
func (s *fastScanner) int64Value() (int64, bool) {
	tok, integer, ok := s.number()
	if !ok || !integer {
		return 0, false
	}
	n, err := strconv.ParseInt(string(tok), 10, 64)
	return n, err == nil
}

func (s *fastScanner) literal(lit string) bool {
	s.ws()
	if !bytes.HasPrefix(s.b[s.i:], []byte(lit)) {
		return false
	}
	s.i += len(lit)
	return true
}

func (s *fastScanner) boolValue() (v, ok bool) {
	switch s.next() {
	case 't':
		return true, s.literal("true")
	case 'f':
		return false, s.literal("false")
	}
	return false, false
}

// skipValue skips any valid JSON value.
func (s *fastScanner) skipValue(depth int) bool {
	if depth > maxFastDepth {
		return false
	}
	switch c := s.next(); {
	case c == '"':
		return s.skipString()
	case c == '{':
		s.i++
		if s.eat('}') {
			return true
		}
		for {
			if !s.skipString() || !s.eat(':') || !s.skipValue(depth+1) {
				return false
			}
			if s.eat('}') {
				return true
			}
			if !s.eat(',') {
				return false
			}
		}
	case c == '[':
		s.i++
		if s.eat(']') {
			return true
		}
		for {
			if !s.skipValue(depth + 1) {
				return false
			}
			if s.eat(']') {
				return true
			}
			if !s.eat(',') {
				return false
			}
		}
	case c == 't':
		return s.literal("true")
	case c == 'f':
		return s.literal("false")
	case c == 'n':
		return s.literal("null")
	case c == '-' || '0' <= c && c <= '9':
		_, _, ok := s.number()
		return ok
	}
	return false
}

// objectStart reads the '{' of an object; empty reports that it is {}.
func (s *fastScanner) objectStart() (empty, ok bool) {
	if !s.eat('{') {
		return false, false
	}
	return s.eat('}'), true
}

// member reads the next member's key and colon and returns the key's index
// in known, skipping (checked) the values of other keys. Keys seen twice,
// and keys encoding/json would match to one of known case-insensitively,
// make it give up. done reports the end of the object.
func (s *fastScanner) member(known []string, seen *uint32) (i int, done, ok bool) {
	for {
		k, ok := s.plainString()
		if !ok || !s.eat(':') {
			return 0, false, false
		}
		i := keyIndex(known, k)
		switch {
		case i >= 0:
			if *seen&(1<<i) != 0 {
				return 0, false, false // a duplicate: encoding/json takes the last
			}
			*seen |= 1 << i
			return i, false, true
		case foldsToAny(known, k):
			return 0, false, false
		}
		if !s.skipValue(1) {
			return 0, false, false
		}
		if done, ok := s.memberEnd(); done || !ok {
			return -1, done, ok
		}
	}
}

// memberEnd reads what follows a member: ',' (done false) or '}'.
func (s *fastScanner) memberEnd() (done, ok bool) {
	if s.eat('}') {
		return true, true
	}
	return false, s.eat(',')
}

func keyIndex(known []string, k []byte) int {
	for i, n := range known {
		if string(k) == n {
			return i
		}
	}
	return -1
}

// foldsToAny reports whether k could match one of known in encoding/json's
// case-insensitive matching (any non-ASCII key counts, to be safe).
func foldsToAny(known []string, k []byte) bool {
	for _, c := range k {
		if c >= 0x80 {
			return true
		}
	}
	for _, n := range known {
		if bytes.EqualFold(k, []byte(n)) {
			return true
		}
	}
	return false
}

var callKeysResults = append(callKeys[:len(callKeys):len(callKeys)], "results")

// call reads a gateway call object; with results set it also accepts a
// "results" member holding an array of calls.
func (s *fastScanner) call(c *gateway.Call, results *[]gateway.Call) bool {
	known := callKeys
	if results != nil {
		known = callKeysResults
	}
	empty, ok := s.objectStart()
	if !ok || empty {
		return ok
	}
	var seen uint32
	for {
		i, done, ok := s.member(known, &seen)
		switch {
		case !ok:
			return false
		case done:
			return true
		}
		switch i {
		case 0:
			c.Kind, ok = s.stringValue()
		case 1:
			c.Action, ok = s.stringValue()
		case 2:
			c.Resource, ok = s.stringValue()
		case 3:
			c.Also, ok = s.stringArray()
		case 4:
			c.Allowed, ok = s.boolValue()
		case 5:
			c.BytesIn, ok = s.int64Value()
		case 6:
			c.BytesOut, ok = s.int64Value()
		case 7:
			c.Refused, ok = s.boolValue()
		case 8:
			*results, ok = s.callArray()
		}
		if !ok {
			return false
		}
		if done, ok := s.memberEnd(); done || !ok {
			return ok
		}
	}
}

// callArray reads an array of gateway calls.
func (s *fastScanner) callArray() ([]gateway.Call, bool) {
	if !s.eat('[') {
		return nil, false
	}
	out := []gateway.Call{}
	if s.eat(']') {
		return out, true
	}
	for {
		var r gateway.Call
		if !s.call(&r, nil) {
			return nil, false
		}
		out = append(out, r)
		if s.eat(']') {
			return out, true
		}
		if !s.eat(',') {
			return nil, false
		}
	}
}

func (s *fastScanner) stringValue() (string, bool) {
	v, ok := s.plainString()
	if !ok {
		return "", false
	}
	return s.in.get(v), true
}

func (s *fastScanner) stringArray() ([]string, bool) {
	if !s.eat('[') {
		return nil, false
	}
	out := []string{}
	if s.eat(']') {
		return out, true
	}
	for {
		v, ok := s.stringValue()
		if !ok {
			return nil, false
		}
		out = append(out, v)
		if s.eat(']') {
			return out, true
		}
		if !s.eat(',') {
			return nil, false
		}
	}
}

// parseCallFast decodes a session.call or session.results entry, or gives
// up (ok false) so that encoding/json decodes it.
func parseCallFast(b []byte, in *interner) (p Parsed, ok bool) {
	s := fastScanner{b: b, in: in}
	var (
		tm      []byte
		results []gateway.Call
		seen    uint32
	)
	empty, ok := s.objectStart()
	for ok && !empty {
		i, done, mok := s.member(entryKeys, &seen)
		if !mok || done {
			ok = mok
			break
		}
		switch i {
		case 0:
			p.Seq, ok = s.int64Value()
		case 1:
			tm, ok = s.plainString()
		case 2:
			var t []byte
			t, ok = s.plainString()
			switch string(t) {
			case "session.call":
				p.Type = "session.call"
			case "session.results":
				p.Type = "session.results"
			default:
				ok = false
			}
		case 3:
			p.Grant, ok = s.stringValue()
		case 4:
			p.Session, ok = s.stringValue()
		case 5:
			p.Actor, ok = s.stringValue()
		case 6:
			// Only a session.results entry keeps its results; a call's
			// would still be type-checked by encoding/json, so a call
			// carrying "results" is left to it (below).
			ok = s.call(&p.one, &results)
		}
		if !ok {
			break
		}
		if empty, ok = s.memberEnd(); empty {
			break
		}
	}
	if !ok || p.Type == "" || !s.end() {
		return Parsed{}, false
	}
	t, err := time.Parse(time.RFC3339Nano, string(tm))
	if err != nil {
		return Parsed{}, false
	}
	p.Time = t.UTC()
	switch {
	case p.Type == "session.call":
		if results != nil {
			return Parsed{}, false
		}
		p.nCalls = 1
	default:
		p.one = gateway.Call{}
		if len(results) > 0 {
			p.call, p.nCalls = results, len(results)
		}
	}
	return p, true
}
