package awsops

import (
	"regexp"
	"strings"
)

var logGroupChars = charset("._-/#")

// logGroup returns the name of a log group given by name or by ARN
// (logGroupIdentifier accepts both; an ARN may end in ":*").
func (m *mapper) logGroup(what, id string) (string, error) {
	name := id
	if strings.HasPrefix(id, "arn:") {
		g, err := m.fromARN(what, id, "logs", "log-group:")
		if err != nil {
			return "", err
		}
		name = strings.TrimSuffix(g, ":*") // the name's charset has no ':'
	}
	if err := m.name(what, name, 1, 512, logGroupChars); err != nil {
		return "", err
	}
	return name, nil
}

func (m *mapper) logGroupARN(name string) string { return m.arn("logs", "log-group:"+name) }

// oneGroup reads the log group of a call that names exactly one, by
// logGroupName or logGroupIdentifier.
func (m *mapper) oneGroup(in input) (string, error) {
	name, err := in.str("logGroupName")
	if err != nil {
		return "", err
	}
	id, err := in.str("logGroupIdentifier")
	if err != nil {
		return "", err
	}
	switch {
	case name != "" && id != "":
		return "", m.failure(codeInvalid, "give logGroupName or logGroupIdentifier, not both")
	case id != "":
		return m.logGroup("logGroupIdentifier", id)
	}
	return m.logGroup("logGroupName", name)
}

// logStream checks a log stream name: AWS allows any characters but ':'
// and '*', Unicode included.
func (m *mapper) logStream(in input, op *Op) (string, error) {
	s, err := in.str("logStreamName")
	if err != nil {
		return "", err
	}
	if err := m.name("logStreamName", s, 1, 512, func(r rune) bool { return r != ':' && r != '*' }); err != nil {
		return "", err
	}
	op.param("logStream", s)
	return s, nil
}

// unmask adds logs:Unmask on group when a GetLogEvents or FilterLogEvents
// call sets unmask: AWS then returns the events with the data its data
// protection policy masks (credentials, personal data) in the clear, and
// authorizes that with logs:Unmask on the log group, a permission of its
// own beyond reading the events.
func (m *mapper) unmask(in input, op *Op, group string) error {
	u, err := in.flag("unmask")
	if err != nil || !u {
		return err
	}
	op.param("unmask", "true")
	op.check("logs:Unmask", m.logGroupARN(group))
	return nil
}

// groupCheck maps calls on one log group. The extra member "unmask" is
// read with (*mapper).unmask.
func groupCheck(action string, extra ...string) func(m *mapper, in input, op *Op) error {
	return func(m *mapper, in input, op *Op) error {
		g, err := m.oneGroup(in)
		if err != nil {
			return err
		}
		op.param("logGroup", g)
		op.check(action, m.logGroupARN(g))
		for _, k := range extra {
			if k == "unmask" {
				if err := m.unmask(in, op, g); err != nil {
					return err
				}
				continue
			}
			if k == "logStreamNames" {
				l, err := in.strs(k)
				if err != nil {
					return err
				}
				op.paramList(k, l)
				continue
			}
			v, err := in.str(k)
			if err != nil {
				return err
			}
			op.param(k, v)
		}
		return nil
	}
}

// streamCheck maps calls on one log stream; with unmask set (GetLogEvents)
// also logs:Unmask on its group.
func streamCheck(action string, unmask bool) func(m *mapper, in input, op *Op) error {
	return func(m *mapper, in input, op *Op) error {
		g, err := m.oneGroup(in)
		if err != nil {
			return err
		}
		op.param("logGroup", g)
		s, err := m.logStream(in, op)
		if err != nil {
			return err
		}
		op.check(action, m.logGroupARN(g)+":log-stream:"+s)
		if unmask {
			return m.unmask(in, op, g)
		}
		return nil
	}
}

// startQuery checks every log group a Logs Insights query names. A query
// that names none (a SOURCE command in the query string, or all groups)
// is refused: its groups cannot be read from the request.
func startQuery(m *mapper, in input, op *Op) error {
	var groups []string
	one, err := in.str("logGroupName")
	if err != nil {
		return err
	}
	if one != "" {
		g, err := m.logGroup("logGroupName", one)
		if err != nil {
			return err
		}
		groups = append(groups, g)
	}
	for _, k := range []string{"logGroupNames", "logGroupIdentifiers"} {
		l, err := in.strs(k)
		if err != nil {
			return err
		}
		for _, id := range l {
			g, err := m.logGroup(k, id)
			if err != nil {
				return err
			}
			groups = append(groups, g)
		}
	}
	if len(groups) == 0 {
		return m.failure(codeDenied, "StartQuery must name its log groups (logGroupName, logGroupNames or logGroupIdentifiers); a query whose groups the request does not name cannot be scoped")
	}
	lang, err := in.str("queryLanguage")
	if err != nil {
		return err
	}
	if lang != "" && lang != "CWLI" {
		return m.failure(codeDenied, "StartQuery in query language %q: Airlock maps Logs Insights QL (CWLI) queries only; SQL and PPL name their log groups inside the query string, where the request's log groups do not bind them", esc(lang))
	}
	q, err := in.str("queryString")
	if err != nil {
		return err
	}
	if querySource.MatchString(q) {
		return m.failure(codeDenied, "StartQuery's queryString reads log groups, data sources or lookup tables of its own choosing (SOURCE, also in a join or subquery, logGroups(…), dataSource(…), lookup); name the log groups in logGroupName, logGroupNames or logGroupIdentifiers instead")
	}
	for _, g := range groups {
		op.check("logs:StartQuery", m.logGroupARN(g))
	}
	if queryUnmask.MatchString(q) {
		// unmask(…) shows what the groups' data protection policies
		// mask, which AWS authorizes with logs:Unmask on each group.
		for _, g := range groups {
			op.check("logs:Unmask", m.logGroupARN(g))
		}
	}
	op.paramList("logGroups", groups)
	op.param("queryString", q)
	return nil
}

// querySource matches a query string that picks its own sources: a
// SOURCE command where a command may stand (at the start of a line, after
// a pipe, or after an opening parenthesis: a subquery, "filter x in
// (SOURCE '/other' | …)", and the right side of a join, "join … (SOURCE
// '/other')"), a logGroups(…) or dataSource(…) selector, or a lookup
// command, which reads a lookup table, whatever the case. Such a query
// reads the groups or tables it names, not (only) the groups the
// request's parameters name and the checks cover. A field named "source"
// used as a function's first argument is refused too: one more refusal,
// never one fewer.
//
// Whitespace and line breaks are taken widely: RE2's \s is only ASCII
// space, tab, CR, LF and form feed, and (?m)'s ^ follows LF only, while
// a query parser may also skip a vertical tab or a Unicode space, or end
// a "#" comment at a bare CR; read narrowly, "# x\rSOURCE '/other'" or
// "\vSOURCE …" would pass unrefused.
var querySource = regexp.MustCompile(`(?im)(^|[|(` + queryBreak + `])` + querySpace + `*(source|lookup)\b|\b(loggroups|datasource)` + querySpace + `*\(`)

// queryUnmask matches a query string that calls unmask(…), whatever the
// case and wherever it is (a match inside a string literal costs one more
// check, never one fewer).
var queryUnmask = regexp.MustCompile(`(?i)\bunmask` + querySpace + `*\(`)

// queryBreak and querySpace are the line breaks and the spaces the query
// regular expressions allow for: ASCII's, NEL, the Unicode separators
// (\p{Z}: no-break space, line and paragraph separators, …) and the BOM.
const (
	queryBreak = `\r\n\v\f\x{85}\x{2028}\x{2029}`
	querySpace = `[\s\v\x{85}\p{Z}\x{feff}]`
)

// queryID maps calls on a query by id, which IAM does not scope.
func queryID(action string) func(m *mapper, in input, op *Op) error {
	return func(m *mapper, in input, op *Op) error {
		id, err := in.str("queryId")
		if err != nil {
			return err
		}
		if err := m.name("queryId", id, 1, 256, charset("-")); err != nil {
			return err
		}
		op.param("queryId", id)
		op.check(action, "*")
		return nil
	}
}

// describeLogGroups is authorized by IAM on the ARN
// arn:aws:logs:R:A:log-group::log-stream: (the empty group), which is
// what AWS's own AccessDenied messages name for it.
//
// With CloudWatch cross-account observability, DescribeLogGroups in a
// monitoring account also lists the log groups of linked source accounts:
// includeLinkedAccounts with accountIdentifiers, or logGroupIdentifiers
// naming another account's groups by ARN. The grant is for the target's
// account only, so those forms are refused.
func describeLogGroups(m *mapper, in input, op *Op) error {
	p, err := in.str("logGroupNamePrefix")
	if err != nil {
		return err
	}
	op.param("logGroupNamePrefix", p)
	if linked, err := in.flag("includeLinkedAccounts"); err != nil {
		return err
	} else if linked {
		return m.failure(codeDenied, "includeLinkedAccounts lists the log groups of other accounts linked to the upstream's; the grant's target is account %s", m.r.Account)
	}
	accounts, err := in.strs("accountIdentifiers")
	if err != nil {
		return err
	}
	for _, a := range accounts {
		if a != m.r.Account {
			return m.failure(codeDenied, "accountIdentifiers names account %q; the grant's target is account %s", esc(a), m.r.Account)
		}
	}
	ids, err := in.strs("logGroupIdentifiers")
	if err != nil {
		return err
	}
	var groups []string
	for _, id := range ids {
		g, err := m.logGroup("logGroupIdentifiers", id)
		if err != nil {
			return err
		}
		groups = append(groups, g)
	}
	op.paramList("logGroups", groups)
	op.check("logs:DescribeLogGroups", m.arn("logs", "log-group::log-stream:"))
	return nil
}

func init() {
	const group = "`arn:aws:logs:R:A:log-group:NAME`"
	const stream = "`arn:aws:logs:R:A:log-group:NAME:log-stream:STREAM`"
	register("logs", map[string]*spec{
		"FilterLogEvents": {protos: pJSON, readOnly: true, fn: groupCheck("logs:FilterLogEvents", "filterPattern", "logStreamNames", "logStreamNamePrefix", "unmask"),
			actions: "logs:FilterLogEvents; with unmask also logs:Unmask", resources: group + " (logGroupName or logGroupIdentifier)", params: "logGroup, filterPattern, logStreamNames, logStreamNamePrefix, unmask"},
		"GetLogEvents": {protos: pJSON, readOnly: true, fn: streamCheck("logs:GetLogEvents", true),
			actions: "logs:GetLogEvents; with unmask also logs:Unmask", resources: stream + "; logs:Unmask on " + group, params: "logGroup, logStream, unmask"},
		"StartQuery": {protos: pJSON, readOnly: true, fn: startQuery,
			actions: "logs:StartQuery; with unmask(…) in the query string also logs:Unmask", resources: group + " for every group in logGroupName, logGroupNames, logGroupIdentifiers (at least one; CWLI queries only, without SOURCE or lookup)", params: "logGroups, queryString"},
		"GetQueryResults": {protos: pJSON, readOnly: true, fn: queryID("logs:GetQueryResults"), actions: "logs:GetQueryResults", resources: "`*`", params: "queryId"},
		"StopQuery":       {protos: pJSON, fn: queryID("logs:StopQuery"), actions: "logs:StopQuery", resources: "`*`", params: "queryId"},
		"DescribeLogGroups": {protos: pJSON, readOnly: true, fn: describeLogGroups,
			actions: "logs:DescribeLogGroups", resources: "`arn:aws:logs:R:A:log-group::log-stream:` (IAM's resource for it); refused with includeLinkedAccounts, another account in accountIdentifiers or logGroupIdentifiers", params: "logGroupNamePrefix, logGroups"},
		"DescribeLogStreams": {protos: pJSON, readOnly: true, fn: groupCheck("logs:DescribeLogStreams", "logStreamNamePrefix"),
			actions: "logs:DescribeLogStreams", resources: group, params: "logGroup, logStreamNamePrefix"},
		"GetLogGroupFields": {protos: pJSON, readOnly: true, fn: groupCheck("logs:GetLogGroupFields"),
			actions: "logs:GetLogGroupFields", resources: group, params: "logGroup"},
		"PutLogEvents": {protos: pJSON, fn: streamCheck("logs:PutLogEvents", false), actions: "logs:PutLogEvents", resources: stream, params: "logGroup, logStream"},
	})
}
