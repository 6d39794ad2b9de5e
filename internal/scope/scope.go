// Package scope parses and matches the IAM-style scope statements of a grant.
//
// A statement is "ACTIONS RESOURCE": a comma-separated list of actions
// ("s3:GetObject,s3:ListBucket", "pg:select") followed by one resource
// pattern ("arn:aws:s3:::logs/app/*", "orders.public.*"). A pattern may end
// in "*", which matches any suffix; nothing else is a wildcard, so a "*"
// anywhere else is rejected rather than silently treated as a literal.
package scope

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/airlock-dev/airlock/internal/apierr"
)

// Statement is one parsed scope statement.
type Statement struct {
	Actions  []string `json:"actions"`
	Resource string   `json:"resource"`
}

// Scope is the list of statements of a request or grant.
type Scope []Statement

// Pair is one (action, resource pattern) combination: the unit that policy
// authorizes and that a gateway checks a call against.
type Pair struct {
	Action   string `json:"action"`
	Resource string `json:"resource"`
}

func (p Pair) String() string { return p.Action + " " + p.Resource }

// Error describes a malformed statement. Index is the statement's position
// in the request (0-based) so an API can name the offending field.
type Error struct {
	Index     int
	Statement string
	Msg       string
}

func (e *Error) Error() string {
	return fmt.Sprintf("scope[%d] %q: %s", e.Index, e.Statement, e.Msg)
}

// Limits that keep a request reviewable and a policy evaluation bounded.
const (
	MaxStatements     = 64
	MaxActions        = 32
	MaxResourceLength = 1024
)

var actionRE = regexp.MustCompile(`^[a-z][a-z0-9-]{0,31}:[A-Za-z][A-Za-z0-9]{0,127}$`)

// ParseStatement parses one "ACTIONS RESOURCE" statement.
func ParseStatement(s string) (Statement, error) {
	fields := strings.Fields(s)
	switch {
	case len(fields) == 0:
		return Statement{}, &Error{Statement: s, Msg: "empty statement; want \"ACTIONS RESOURCE\""}
	case len(fields) == 1:
		return Statement{}, &Error{Statement: s, Msg: "missing resource; want \"ACTIONS RESOURCE\""}
	case len(fields) > 2:
		return Statement{}, &Error{Statement: s, Msg: "too many fields; want \"ACTIONS RESOURCE\" (separate actions with commas, no spaces)"}
	}
	var st Statement
	for _, a := range strings.Split(fields[0], ",") {
		if !actionRE.MatchString(a) {
			return Statement{}, &Error{Statement: s, Msg: fmt.Sprintf("malformed action %s; want service:Action such as s3:GetObject or pg:select", apierr.Quote(a))}
		}
		if !slices.Contains(st.Actions, a) {
			st.Actions = append(st.Actions, a)
		}
	}
	if len(st.Actions) > MaxActions {
		return Statement{}, &Error{Statement: s, Msg: fmt.Sprintf("more than %d actions", MaxActions)}
	}
	if err := checkPattern(fields[1]); err != nil {
		return Statement{}, &Error{Statement: s, Msg: err.Error()}
	}
	st.Resource = fields[1]
	return st, nil
}

func checkPattern(p string) error {
	if len(p) > MaxResourceLength {
		return fmt.Errorf("resource longer than %d bytes", MaxResourceLength)
	}
	if i := strings.IndexByte(p, '*'); i >= 0 && i != len(p)-1 {
		return fmt.Errorf("resource %s: '*' is only allowed at the end (prefix match)", apierr.Quote(p))
	}
	// Invalid UTF-8 would be recorded (JSON) with U+FFFD in its place: a
	// scope other than the one decided and enforced. Log entries are
	// valid UTF-8, so replaying recorded scopes never trips this.
	if !utf8.ValidString(p) {
		return fmt.Errorf("resource %s is not valid UTF-8", apierr.Quote(p))
	}
	for _, r := range p {
		if r < 0x21 || r == 0x7f {
			return fmt.Errorf("resource %s contains a control or space character", apierr.Quote(p))
		}
	}
	return nil
}

// Parse parses a list of statements. An empty list is an error: a grant
// without scope would be meaningless, and silently granting nothing hides a
// client bug.
func Parse(stmts []string) (Scope, error) {
	if len(stmts) == 0 {
		return nil, &Error{Index: 0, Msg: "empty scope; give at least one \"ACTIONS RESOURCE\" statement"}
	}
	if len(stmts) > MaxStatements {
		return nil, &Error{Index: MaxStatements, Msg: fmt.Sprintf("more than %d statements", MaxStatements)}
	}
	sc := make(Scope, 0, len(stmts))
	for i, s := range stmts {
		st, err := ParseStatement(s)
		if err != nil {
			e := err.(*Error)
			e.Index = i
			return nil, e
		}
		sc = append(sc, st)
	}
	return sc, nil
}

// String renders the statement in its parseable form.
func (st Statement) String() string { return strings.Join(st.Actions, ",") + " " + st.Resource }

// Strings renders every statement.
func (sc Scope) Strings() []string {
	out := make([]string, len(sc))
	for i, st := range sc {
		out[i] = st.String()
	}
	return out
}

// Pairs returns the distinct (action, resource pattern) pairs in statement order.
func (sc Scope) Pairs() []Pair {
	var out []Pair
	for _, st := range sc {
		for _, a := range st.Actions {
			p := Pair{Action: a, Resource: st.Resource}
			if !slices.Contains(out, p) {
				out = append(out, p)
			}
		}
	}
	return out
}

// Match reports whether resource is covered by pattern: equal to it, or,
// when pattern ends in "*", starting with the part before the "*".
// Gateways must pass a fully normalised resource; Match does no decoding.
func Match(pattern, resource string) bool {
	if prefix, ok := strings.CutSuffix(pattern, "*"); ok {
		return strings.HasPrefix(resource, prefix)
	}
	return pattern == resource
}

// Overlap reports whether some resource is covered by both patterns.
func Overlap(a, b string) bool {
	pa, wa := strings.CutSuffix(a, "*")
	pb, wb := strings.CutSuffix(b, "*")
	switch {
	case wa && wb:
		return strings.HasPrefix(pa, pb) || strings.HasPrefix(pb, pa)
	case wa:
		return strings.HasPrefix(b, pa)
	case wb:
		return strings.HasPrefix(a, pb)
	}
	return a == b
}

// Allows reports whether some statement grants action on resource.
func (sc Scope) Allows(action, resource string) bool {
	for _, st := range sc {
		if slices.Contains(st.Actions, action) && Match(st.Resource, resource) {
			return true
		}
	}
	return false
}

// pgActions are the statement verbs a PostgreSQL target understands; each
// maps to the table privilege of the same name.
var pgActions = []string{"pg:select", "pg:insert", "pg:update", "pg:delete"}

// PostgresActions returns the actions a postgres target can grant.
func PostgresActions() []string { return slices.Clone(pgActions) }

// CheckAction reports what is wrong with a as an action that some target
// can grant: a scope's action grammar, one of the postgres verbs for
// "pg:", and for any other service an AWS action name, which starts with
// a capital letter ("s3:GetObject"). Gateways compare actions exactly, so
// "s3:getObject" would be granted and then allow nothing, and a policy
// naming it would never match the action it means; IAM's own
// case-insensitivity does not carry over.
func CheckAction(a string) error {
	if !actionRE.MatchString(a) {
		return fmt.Errorf("malformed action %q; want service:Action such as s3:GetObject or pg:select (no wildcards: name each action)", a)
	}
	svc, name, _ := strings.Cut(a, ":")
	if svc == "pg" {
		if !slices.Contains(pgActions, a) {
			return fmt.Errorf("action %q is not a postgres action; want one of %s", a, strings.Join(pgActions, ", "))
		}
		return nil
	}
	if name[0] < 'A' || name[0] > 'Z' {
		return fmt.Errorf("action %q: AWS action names start with a capital letter (%s:%s), and Airlock compares actions exactly", a, svc, strings.ToUpper(name[:1])+name[1:])
	}
	return nil
}

// pgResourceRE is database.schema.table, each part an identifier, the last
// optionally ending in "*" (or being just "*").
var pgResourceRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_$-]*\.[A-Za-z_][A-Za-z0-9_$]*\.([A-Za-z_][A-Za-z0-9_$]*\*?|\*)$`)

// confusable returns the first rune of name that has no place in a name: a
// C1 control (U+0080–U+009F) or a bidirectional embedding, override or
// isolate control (U+202A–U+202E, U+2066–U+2069). C0 and DEL are
// checkPattern's.
func confusable(name string) (rune, bool) {
	for _, r := range name {
		if (r >= 0x80 && r <= 0x9f) || (r >= 0x202a && r <= 0x202e) || (r >= 0x2066 && r <= 0x2069) {
			return r, true
		}
	}
	return 0, false
}

// ValidateFor checks that a scope makes sense for a target kind ("aws" or
// "postgres"), so that a request that could never be used is refused up
// front with a precise message.
func ValidateFor(kind string, sc Scope) error {
	for i, st := range sc {
		for _, a := range st.Actions {
			isPG := strings.HasPrefix(a, "pg:")
			switch kind {
			case "aws":
				if isPG {
					return &Error{Index: i, Statement: st.String(), Msg: fmt.Sprintf("action %s is for postgres targets, not aws", apierr.Quote(a))}
				}
				if err := CheckAction(a); err != nil {
					return &Error{Index: i, Statement: st.String(), Msg: err.Error()}
				}
			case "postgres":
				if !slices.Contains(pgActions, a) {
					return &Error{Index: i, Statement: st.String(), Msg: fmt.Sprintf("action %s is not a postgres action; want one of %s", apierr.Quote(a), strings.Join(pgActions, ", "))}
				}
			}
		}
		// A resource is a name the reviewer reads: C1 controls (which no
		// S3 key may hold: s3iam refuses them at use) and bidirectional
		// controls (which make "logs/\u202etxt.exe" read as another name
		// where it is shown unescaped, as in JSON) are refused here, when
		// asked for, rather than in ParseStatement: replaying recorded
		// scopes must not fail on an entry an earlier release accepted.
		if r, ok := confusable(st.Resource); ok {
			return &Error{Index: i, Statement: st.String(), Msg: fmt.Sprintf("resource %s contains a control or bidirectional formatting character (U+%04X)", apierr.Quote(st.Resource), r)}
		}
		switch kind {
		case "aws":
			if !strings.HasPrefix(st.Resource, "arn:") && st.Resource != "*" {
				return &Error{Index: i, Statement: st.String(), Msg: fmt.Sprintf("resource %s is not an ARN (arn:aws:s3:::bucket/prefix*)", apierr.Quote(st.Resource))}
			}
		case "postgres":
			if !pgResourceRE.MatchString(st.Resource) {
				return &Error{Index: i, Statement: st.String(), Msg: fmt.Sprintf("resource %s is not database.schema.table (a trailing * matches a prefix)", apierr.Quote(st.Resource))}
			}
		}
	}
	return nil
}

// Related appends to dst the patterns, besides pattern itself, that a
// restricting policy test (a forbid's when, a permit's unless) must also
// be decided on: the resources whose data a resource that pattern covers holds or
// reads. A pattern and its resource are strings, so without this a forbid
// on "…:table/payroll" did not stop a Query on "…:table/payroll/index/byname",
// which returns the same items, and a forbid on one log stream did not stop
// FilterLogEvents on its group, which returns that stream's events.
//
// The containments, all by the ARN's own grammar:
//   - DynamoDB: anything under a table ("table/T/index/I", "table/T/stream/S",
//     "table/T/index/*") is within "table/T": an index is a projection of the
//     table's items and a stream their changes. An index holds nothing
//     but the table's items, so a test on an index alone restricts the
//     queries through it and does not reach the table.
//   - CloudWatch Logs: a stream, or any pattern under "log-group:G:", is
//     within "log-group:G"; and a log group "log-group:G" holds every
//     stream's events, so it is also decided on "log-group:G:*".
//   - Lambda: a version or alias "function:F:Q" runs function F.
//   - SSM: a parameter "parameter/a/b/c" (or "parameter/a/b/*", as
//     GetParametersByPath checks) is within its paths "parameter/a" and
//     "parameter/a/b", as IAM reads a path (GetParametersByPath of /a is
//     authorized on "parameter/a").
//   - S3: an object or key prefix "B/KEY" is within bucket "B".
//   - Secrets Manager: a secret's full ARN, "secret:NAME-" and AWS's six
//     random characters, is the secret "secret:NAME" (see secretNames).
//
// A pattern whose trailing "*" is in the parent's own name ("table/T*",
// "log-group:/app/*") already covers the parent and its children.
// Other services have no such nesting in their ARNs (Kinesis streams, SQS
// queues, SNS topics, KMS keys).
func Related(dst []string, pattern string) []string {
	// "arn:PARTITION:SERVICE:REGION:ACCOUNT:REST"; REST may hold ":".
	rest, ok := strings.CutPrefix(pattern, "arn:")
	if !ok {
		return dst
	}
	var service string
	for i := range 4 {
		var f string
		if f, rest, ok = strings.Cut(rest, ":"); !ok {
			return dst
		}
		if i == 1 {
			service = f
		}
	}
	head := pattern[:len(pattern)-len(rest)] // "arn:P:SERVICE:R:A:"
	// Every container but a log group's streams is a prefix of pattern:
	// upTo(s, i) is pattern up to s[i], for s a suffix of pattern.
	upTo := func(s string, i int) string { return pattern[:len(pattern)-len(s)+i] }
	switch service {
	case "dynamodb":
		name, ok := strings.CutPrefix(rest, "table/")
		if i := strings.IndexByte(name, '/'); ok && i > 0 {
			return append(dst, upTo(name, i))
		}
	case "logs":
		g, ok := strings.CutPrefix(rest, "log-group:")
		if !ok || g == "" {
			return dst
		}
		if i := strings.IndexByte(g, ':'); i >= 0 {
			if i == 0 {
				return dst // DescribeLogGroups' "log-group::log-stream:", no group
			}
			return append(dst, upTo(g, i))
		}
		if !strings.HasSuffix(g, "*") {
			return append(dst, pattern+":*")
		}
	case "lambda":
		fn, ok := strings.CutPrefix(rest, "function:")
		if i := strings.IndexByte(fn, ':'); ok && i > 0 {
			return append(dst, upTo(fn, i))
		}
	case "ssm":
		name, ok := strings.CutPrefix(rest, "parameter/")
		if !ok {
			return dst
		}
		// At most 15 levels, AWS's limit for a parameter's hierarchy,
		// which bounds the work for a long requested name.
		for i, n := 0, 0; i < len(name) && n < 15; i++ {
			if name[i] == '/' && i > 0 {
				dst, n = append(dst, upTo(name, i)), n+1
			}
		}
		return dst
	case "secretsmanager":
		if name, ok := strings.CutPrefix(rest, "secret:"); ok {
			return secretNames(dst, name, upTo)
		}
	case "s3":
		// Buckets and objects only ("arn:aws:s3:::B/KEY"), not access
		// points, whose ARNs carry a region and account.
		if i := strings.IndexByte(rest, '/'); i > 0 && strings.HasSuffix(head, ":s3:::") {
			return append(dst, upTo(rest, i))
		}
	}
	return dst
}

// secretNames appends to dst, cut from the pattern by upTo, the names
// "secret:NAME" of the secrets whose full ARNs ("secret:NAME-" and six
// random letters or digits) name (the pattern after "secret:") covers,
// other than those it covers itself: without it a forbid on "…:secret:prod/db"
// did not stop a request for "…:secret:prod/db-AbCdEf", the same secret. A
// pattern "secret:P*" covers full ARNs whose suffix starts inside P:
// "secret:prod/db-A*" covers "prod/db-AbCdEf", the secret prod/db. Like
// IAM's own "prod/db-??????", a secret named "prod/db-backup" reads as
// prod/db's ARN too.
func secretNames(dst []string, name string, upTo func(string, int) string) []string {
	suffix := func(s string) bool { // a prefix of "-" and six alphanumerics
		if s == "" || s[0] != '-' {
			return false
		}
		for i := 1; i < len(s); i++ {
			c := s[i]
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9') {
				return false
			}
		}
		return true
	}
	if p, wild := strings.CutSuffix(name, "*"); wild {
		for k := 1; k <= 7 && k < len(p); k++ {
			if suffix(p[len(p)-k:]) {
				dst = append(dst, upTo(name, len(p)-k))
			}
		}
	} else if n := len(name); n > 7 && suffix(name[n-7:]) {
		dst = append(dst, upTo(name, n-7))
	}
	return dst
}
