package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// The configuration is decoded by walking yaml.v3's node tree by hand rather
// than with yaml.Unmarshal into structs: that is what lets every problem carry
// a line, a column and a field path, lets unknown and duplicate keys be
// errors, and lets decoding carry on past the first problem so that all of
// them are reported together.

// position is a 1-based line and column in the file.
type position struct{ line, col int }

// decoder accumulates the decoded values' positions and every problem found.
type decoder struct {
	file string
	errs Errors
	// pos maps a field path ("targets[1].credentials") to where its value
	// was written. Semantic checks name a path and find their position here,
	// falling back to the nearest enclosing value that was written when the
	// field itself is missing.
	pos map[string]position
	// bad holds paths whose value had the wrong shape. Later checks on those
	// paths (or below them) are suppressed so that one mistake is reported
	// once, not again as "missing".
	bad map[string]bool
	// budget is how many more values (mapping entries and list items) may
	// be decoded; see spend.
	budget int
	// exhausted is set once the budget ran out: decoding stops there.
	exhausted bool
	// dropped counts the problems beyond maxProblems, left out.
	dropped int
}

// Bounds on what one file may cost. An alias (*name) stands for its anchor's
// whole value, so a few kilobytes of aliases to aliased lists can stand for
// millions of values (the "billion laughs"), each decoded, validated and
// perhaps reported as a problem: minutes and gigabytes for a file a person
// could have written. Aliases may add maxAliasedValues values to those
// written out in the file, which is far more than reusing a credentials
// block or a list of groups needs; and a report stops after maxProblems.
const (
	maxAliasedValues = 100_000
	maxProblems      = 1000
	// maxFileSize is far beyond a hand-written file (ten thousand
	// identities take about 3 MB); a bigger one is a mistake, such as a
	// log named by --config, and is not worth parsing.
	maxFileSize = 8 << 20
)

func newDecoder(file string) *decoder {
	return &decoder{file: file, pos: map[string]position{}, bad: map[string]bool{}, budget: maxAliasedValues}
}

// add records a problem, unless maxProblems are recorded already.
func (d *decoder) add(e *Error) {
	if len(d.errs.List) < maxProblems {
		d.errs.List = append(d.errs.List, e)
	} else {
		d.dropped++
	}
}

// problems returns the problems found, in file order, and after them a
// note of how many were left out; nil if there are none.
func (d *decoder) problems() error {
	if len(d.errs.List) == 0 {
		return nil
	}
	d.errs.finish()
	if d.dropped > 0 {
		d.errs.List = append(d.errs.List, &Error{File: d.file,
			Msg: fmt.Sprintf("%d more problems are not shown; fix these first", d.dropped)})
	}
	return &d.errs
}

// spend takes one value decoded at n (path) from the budget, and reports
// whether decoding may go on.
func (d *decoder) spend(n *yaml.Node, path string) bool {
	if d.exhausted {
		return false
	}
	if d.budget--; d.budget < 0 {
		d.exhausted = true
		d.failAt(n, path, "the aliases (*name) in this file stand for more than %d values beyond those written out; write the settings out with fewer aliases", maxAliasedValues)
		return false
	}
	return true
}

// failAt reports a problem at a node's own position and marks path bad.
func (d *decoder) failAt(n *yaml.Node, path, format string, args ...any) {
	d.bad[path] = true
	d.add(&Error{
		File: d.file, Line: n.Line, Col: n.Column, Field: path,
		Msg: fmt.Sprintf(format, args...),
	})
}

// refuseTags reports every explicitly tagged node under n (!!null, !!binary,
// !custom…) but !!str. A tag changes what YAML makes of a value while the
// decoder goes by the value as written, or by the tag (!!null): either way
// the file could mean one thing to its reader and another to Airlock, as
// with identity_binding: !!null refuse, which would be unset. !!str is the
// decoder's own reading of every scalar.
func (d *decoder) refuseTags(n *yaml.Node) {
	if n == nil || n.Kind == yaml.AliasNode {
		return
	}
	if n.Style&yaml.TaggedStyle != 0 && n.ShortTag() != "!!str" {
		d.add(&Error{File: d.file, Line: n.Line, Col: n.Column,
			Msg: fmt.Sprintf("YAML tags such as %s are not supported; write the value plainly (quoted, if it must be a string)", quote(n.Tag))})
	}
	for _, c := range n.Content {
		d.refuseTags(c)
	}
}

// countValues is the number of mapping entries and list items written out
// under n, aliases counting as one: what decoding n costs without aliases.
func countValues(n *yaml.Node) int {
	if n == nil || n.Kind == yaml.AliasNode {
		return 0
	}
	c := 0
	switch n.Kind {
	case yaml.MappingNode:
		c = len(n.Content) / 2
	case yaml.SequenceNode:
		c = len(n.Content)
	}
	for _, k := range n.Content {
		c += countValues(k)
	}
	return c
}

// errorf reports a problem with the field at path, unless the field or one
// of its parents already failed to decode.
func (d *decoder) errorf(path, format string, args ...any) {
	for p := path; ; p = parent(p) {
		if d.bad[p] {
			return
		}
		if p == "" {
			break
		}
	}
	at := locate(d.pos, path)
	d.add(&Error{
		File: d.file, Line: at.line, Col: at.col, Field: path,
		Msg: fmt.Sprintf(format, args...),
	})
}

// locate finds where path was written, or else its nearest written parent.
func locate(pos map[string]position, path string) position {
	for p := path; ; p = parent(p) {
		if at, ok := pos[p]; ok {
			return at
		}
		if p == "" {
			return position{}
		}
	}
}

// parent strips the last element from a field path:
// "targets[1].credentials" → "targets[1]" → "targets" → "".
func parent(path string) string {
	i := strings.LastIndexAny(path, ".[")
	if i < 0 {
		return ""
	}
	return path[:i]
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// document parses data as exactly one YAML document and returns its root
// node, or nil after recording why there is none.
func (d *decoder) document(data []byte) *yaml.Node {
	if len(data) > maxFileSize {
		d.add(&Error{File: d.file, Msg: fmt.Sprintf("larger than %d MiB; this is not a configuration file", maxFileSize>>20)})
		return nil
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			d.errs.List = append(d.errs.List, &Error{File: d.file,
				Msg: "the file is empty; expected settings such as data_dir, listen, identities, targets and policies"})
		} else {
			d.syntax(data, err)
		}
		return nil
	}
	// A second document would be silently ignored by a plain Unmarshal; it
	// is almost always a stray "---" that cuts the real settings off. Empty
	// documents (a trailing "---") are harmless.
	for {
		var extra yaml.Node
		err := dec.Decode(&extra)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			d.syntax(data, err)
			return nil
		}
		if len(extra.Content) > 0 && !isNull(extra.Content[0]) {
			d.failAt(&extra, "", `a second YAML document starts here; airlock.yaml must be a single document (remove the "---" separator)`)
			return nil
		}
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 {
		d.errs.List = append(d.errs.List, &Error{File: d.file, Msg: "the file holds no settings"})
		return nil
	}
	d.refuseTags(doc.Content[0])
	root := resolve(doc.Content[0])
	d.budget += countValues(root)
	if isNull(root) {
		d.failAt(root, "", "the file holds no settings; expected data_dir, listen, identities, targets and policies")
		return nil
	}
	return root
}

var yamlLine = regexp.MustCompile(`^yaml: (?:line [0-9]+: )?(.*)$`)

// syntax converts a yaml.v3 parse error into an Error.
func (d *decoder) syntax(data []byte, err error) {
	msg := yamlLine.FindStringSubmatch(err.Error())[1]
	d.errs.List = append(d.errs.List, &Error{File: d.file, Line: failingLine(data, msg), Msg: "invalid YAML: " + msg})
}

// failingLine finds the line a YAML syntax error belongs to, or 0. The line
// yaml.v3 puts in its messages cannot be trusted: parser errors count lines
// from zero, errors on the first line carry none, and some point at where
// the enclosing construct began. Instead, this finds the shortest run of
// whole lines from the top that already fails with the same message: the
// error was detected on its last line. Quadratic, so only for files of a
// size a person writes.
func failingLine(data []byte, msg string) int {
	if len(data) > 256<<10 {
		return 0
	}
	end := 0
	for line := 1; end < len(data); line++ {
		if i := bytes.IndexByte(data[end:], '\n'); i >= 0 {
			end += i + 1
		} else {
			end = len(data)
		}
		dec := yaml.NewDecoder(bytes.NewReader(data[:end]))
		for {
			var n yaml.Node
			err := dec.Decode(&n)
			if err == nil {
				continue
			}
			if m := yamlLine.FindStringSubmatch(err.Error()); m != nil && m[1] == msg {
				return line
			}
			break
		}
	}
	return 0
}

// resolve follows an alias to the node it names. yaml.v3 refuses aliases to
// undefined or enclosing anchors, so the chain is finite; the bound is belt
// and braces.
func resolve(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && n.Alias != nil && i < 100; i++ {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n == nil || n.Kind == 0 || (n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null")
}

// what describes a value's shape for "expected X, got Y" messages.
func what(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return "the value " + quote(n.Value)
	}
	return "nothing"
}

// field is one allowed key of a mapping and how to decode its value.
type field struct {
	key    string
	decode func(path string, v *yaml.Node)
}

// mapping decodes a mapping node field by field, reporting keys that are not
// allowed and keys given twice. It returns false if n is null (the section is
// absent) or not a mapping. The position of every value is recorded under its
// path, and that of the mapping itself under path.
func (d *decoder) mapping(n *yaml.Node, path, expected string, fields []field) bool {
	if isNull(n) {
		return false
	}
	at := n
	n = resolve(n)
	d.pos[path] = position{at.Line, at.Column}
	if n.Kind != yaml.MappingNode {
		d.failAt(at, path, "expected %s, got %s", expected, what(n))
		return false
	}
	allowed := make([]string, len(fields))
	for i, f := range fields {
		allowed[i] = f.key
	}
	seen := map[string]*yaml.Node{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if !d.spend(n.Content[i], path) {
			break
		}
		k, v := resolve(n.Content[i]), n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			d.failAt(n.Content[i], path, "expected a key name, got %s", what(k))
			continue
		}
		key := k.Value
		if key == "<<" && k.ShortTag() == "!!merge" {
			d.failAt(n.Content[i], join(path, key), "merge keys (<<) are not supported; write the settings out in full")
			continue
		}
		if first, dup := seen[key]; dup {
			d.failAt(n.Content[i], join(path, key), "duplicate key %s (first given at line %d)", quote(key), first.Line)
			continue
		}
		seen[key] = n.Content[i]
		var f *field
		for j := range fields {
			if fields[j].key == key {
				f = &fields[j]
				break
			}
		}
		if f == nil {
			msg := fmt.Sprintf("unknown key %s", quote(key))
			if s := suggest(key, allowed); s != "" {
				msg += fmt.Sprintf(" (did you mean %q?)", s)
			}
			d.failAt(n.Content[i], join(path, key), "%s; allowed keys: %s", msg, strings.Join(allowed, ", "))
			continue
		}
		child := join(path, key)
		d.pos[child] = position{v.Line, v.Column}
		f.decode(child, v)
	}
	return true
}

// sequence calls item for each element of a list, with the element's path.
// A null value is an empty list.
func (d *decoder) sequence(n *yaml.Node, path, expected string, item func(path string, v *yaml.Node)) {
	if isNull(n) {
		return
	}
	at := n
	n = resolve(n)
	if n.Kind != yaml.SequenceNode {
		d.failAt(at, path, "expected %s, got %s", expected, what(n))
		return
	}
	for i, v := range n.Content {
		if !d.spend(v, path) {
			break
		}
		p := fmt.Sprintf("%s[%d]", path, i)
		d.pos[p] = position{v.Line, v.Column}
		item(p, v)
	}
}

// str decodes a string field. Any scalar is accepted as written, whatever
// YAML would resolve it to, so that account: 111122223333 (an int to YAML)
// or a leading-zero account ID keeps its exact digits. Null is "".
func (d *decoder) str(n *yaml.Node, path string) string {
	if isNull(n) {
		return ""
	}
	r := resolve(n)
	if r.Kind != yaml.ScalarNode {
		d.failAt(n, path, "expected a string, got %s", what(r))
		return ""
	}
	return r.Value
}

// stringList decodes a list of strings; a lone string gets a hint, since
// "groups: sre" for "groups: [sre]" is the usual slip.
func (d *decoder) stringList(n *yaml.Node, path string) []string {
	if r := resolve(n); r != nil && r.Kind == yaml.ScalarNode && !isNull(r) {
		d.failAt(n, path, "expected a list, got %s; write [%s] for a list of one", what(r), r.Value)
		return nil
	}
	var out []string
	d.sequence(n, path, "a list of strings", func(p string, v *yaml.Node) {
		out = append(out, d.str(v, p))
	})
	return out
}

// boolean decodes true/false. yes/no and on/off are accepted too, as
// yaml.v3 does when decoding into a bool, so that older YAML habits work.
func (d *decoder) boolean(n *yaml.Node, path string) *bool {
	if isNull(n) {
		return nil
	}
	r := resolve(n)
	if r.Kind == yaml.ScalarNode {
		switch strings.ToLower(r.Value) {
		case "true", "yes", "on":
			b := true
			return &b
		case "false", "no", "off":
			b := false
			return &b
		}
	}
	d.failAt(n, path, "expected true or false, got %s", what(r))
	return nil
}

// duration decodes a positive Go duration such as "90s" or "12h".
func (d *decoder) duration(n *yaml.Node, path string) Duration {
	s := d.str(n, path)
	if s == "" {
		return Duration{}
	}
	v, err := time.ParseDuration(s)
	switch {
	case err != nil && isDigits(s):
		d.failAt(n, path, "duration %s has no unit; write a Go duration such as %ss, 10m or 12h", quote(s), s)
	case err != nil:
		d.failAt(n, path, "invalid duration %s; write a Go duration such as 90s, 10m or 12h", quote(s))
	case v <= 0:
		d.failAt(n, path, "duration must be positive, got %s", quote(s))
	default:
		return Duration{v}
	}
	return Duration{}
}

// connCap decodes a connection cap: a positive number, or none (-1: no
// cap). Null is 0, the default.
func (d *decoder) connCap(n *yaml.Node, path string) int {
	s := d.str(n, path)
	if s == "" {
		return 0
	}
	if s == "none" {
		return -1
	}
	v, err := strconv.Atoi(s)
	if err != nil || v <= 0 || !isDigits(s) {
		d.failAt(n, path, "expected a positive number of connections, or none, got %s", quote(s))
		return 0
	}
	return v
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// config decodes the document's root mapping into c.
func (d *decoder) config(root *yaml.Node, c *Config) {
	d.mapping(root, "", "a mapping of settings (data_dir, listen, identities, targets, policies, grants, tls)", []field{
		{"data_dir", func(p string, v *yaml.Node) { c.DataDir = d.str(v, p) }},
		{"listen", func(p string, v *yaml.Node) {
			d.mapping(v, p, "a mapping of listeners (api, aws, postgres, public, max_connections, max_connections_per_host)", []field{
				{"api", func(p string, v *yaml.Node) { c.Listen.API = d.str(v, p) }},
				{"aws", func(p string, v *yaml.Node) { c.Listen.AWS = d.str(v, p) }},
				{"postgres", func(p string, v *yaml.Node) { c.Listen.Postgres = d.str(v, p) }},
				{"max_connections", func(p string, v *yaml.Node) { c.Listen.MaxConnections = d.connCap(v, p) }},
				{"max_connections_per_host", func(p string, v *yaml.Node) { c.Listen.MaxConnectionsPerHost = d.connCap(v, p) }},
				{"public", func(p string, v *yaml.Node) {
					d.mapping(v, p, "a mapping of the addresses clients use (api, aws, postgres)", []field{
						{"api", func(p string, v *yaml.Node) { c.Listen.Public.API = d.str(v, p) }},
						{"aws", func(p string, v *yaml.Node) { c.Listen.Public.AWS = d.str(v, p) }},
						{"postgres", func(p string, v *yaml.Node) { c.Listen.Public.Postgres = d.str(v, p) }},
					})
				}},
			})
		}},
		{"identities", func(p string, v *yaml.Node) {
			d.sequence(v, p, "a list of identities", func(p string, v *yaml.Node) {
				c.Identities = append(c.Identities, d.identity(v, p))
			})
		}},
		{"targets", func(p string, v *yaml.Node) {
			d.sequence(v, p, "a list of targets", func(p string, v *yaml.Node) {
				c.Targets = append(c.Targets, d.target(v, p))
			})
		}},
		{"policies", func(p string, v *yaml.Node) { c.Policies = d.str(v, p) }},
		{"tls", func(p string, v *yaml.Node) {
			t := &c.TLS
			d.mapping(v, p, "a mapping of TLS settings (cert_file, key_file, allow_plaintext)", []field{
				{"cert_file", func(p string, v *yaml.Node) { t.CertFile = d.str(v, p) }},
				{"key_file", func(p string, v *yaml.Node) { t.KeyFile = d.str(v, p) }},
				{"allow_plaintext", func(p string, v *yaml.Node) {
					if b := d.boolean(v, p); b != nil {
						t.AllowPlaintext = *b
					}
				}},
			})
		}},
		{"grants", func(p string, v *yaml.Node) {
			g := &c.Grants
			d.mapping(v, p, "a mapping of grant settings (max_duration, pending_timeout, require_reason)", []field{
				{"max_duration", func(p string, v *yaml.Node) { g.MaxDuration = d.duration(v, p) }},
				{"pending_timeout", func(p string, v *yaml.Node) { g.PendingTimeout = d.duration(v, p) }},
				{"require_reason", func(p string, v *yaml.Node) { g.RequireReason = d.boolean(v, p) }},
			})
		}},
		{"audit", func(p string, v *yaml.Node) { d.audit(v, p, &c.Audit) }},
		{"notify", func(p string, v *yaml.Node) { d.notify(v, p, &c.Notify) }},
		{"store", func(p string, v *yaml.Node) { c.Store = d.str(v, p) }},
		{"keys", func(p string, v *yaml.Node) { d.keys(v, p, &c.Keys) }},
		{"oidc", func(p string, v *yaml.Node) { d.oidcIssuers(v, p, c) }},
		{"identity_binding", func(p string, v *yaml.Node) { c.IdentityBinding = d.str(v, p) }},
		{"findings_window", func(p string, v *yaml.Node) { c.FindingsWindow = d.duration(v, p) }},
		{"sso", func(p string, v *yaml.Node) {
			s := &SSO{}
			d.mapping(v, p, "a mapping of SSO settings (issuer, client_id, client_secret_env, identity_claim, redirect_url, groups_claim, required_groups)", []field{
				{"issuer", func(p string, v *yaml.Node) { s.Issuer = d.str(v, p) }},
				{"client_id", func(p string, v *yaml.Node) { s.ClientID = d.str(v, p) }},
				{"client_secret_env", func(p string, v *yaml.Node) { s.ClientSecretEnv = d.str(v, p) }},
				{"identity_claim", func(p string, v *yaml.Node) { s.IdentityClaim = d.str(v, p) }},
				{"redirect_url", func(p string, v *yaml.Node) { s.RedirectURL = d.str(v, p) }},
				{"groups_claim", func(p string, v *yaml.Node) { s.GroupsClaim = d.str(v, p) }},
				{"required_groups", func(p string, v *yaml.Node) { s.RequiredGroups = d.stringList(v, p) }},
			})
			c.SSO = s
		}},
	})
}

// identity decodes one element of identities. An element that is not a
// mapping still yields a (zero) Identity so that indexes in later messages
// match the file.
func (d *decoder) identity(n *yaml.Node, path string) Identity {
	var id Identity
	if !d.mapping(n, path, "an identity (a mapping with name, kind, owner, groups, key_sha256)", []field{
		{"name", func(p string, v *yaml.Node) { id.Name = d.str(v, p) }},
		{"kind", func(p string, v *yaml.Node) { id.Kind = d.str(v, p) }},
		{"owner", func(p string, v *yaml.Node) { id.Owner = d.str(v, p) }},
		{"groups", func(p string, v *yaml.Node) { id.Groups = d.stringList(v, p) }},
		{"key_sha256", func(p string, v *yaml.Node) { id.KeySHA256 = d.str(v, p) }},
		{"slack_user", func(p string, v *yaml.Node) { id.SlackUser = d.str(v, p) }},
		{"oidc", func(p string, v *yaml.Node) { id.OIDC = d.identityOIDC(v, p) }},
		{"identity_binding", func(p string, v *yaml.Node) { id.IdentityBinding = d.str(v, p) }},
		{"email", func(p string, v *yaml.Node) { id.Email = d.str(v, p) }},
	}) && !d.bad[path] {
		d.failAt(n, path, "expected an identity (a mapping with name, kind, owner, groups, key_sha256), got nothing")
	}
	return id
}

// target decodes one element of targets; see identity.
func (d *decoder) target(n *yaml.Node, path string) Target {
	var t Target
	if !d.mapping(n, path, "a target (a mapping with name, kind, account, ...)", []field{
		{"name", func(p string, v *yaml.Node) { t.Name = d.str(v, p) }},
		{"kind", func(p string, v *yaml.Node) { t.Kind = d.str(v, p) }},
		{"account", func(p string, v *yaml.Node) { t.Account = d.str(v, p) }},
		{"region", func(p string, v *yaml.Node) { t.Region = d.str(v, p) }},
		{"endpoint", func(p string, v *yaml.Node) { t.Endpoint = d.str(v, p) }},
		{"upstream", func(p string, v *yaml.Node) { t.Upstream = d.str(v, p) }},
		{"password_env", func(p string, v *yaml.Node) { t.PasswordEnv = d.str(v, p) }},
		{"redact_parameters", func(p string, v *yaml.Node) {
			if b := d.boolean(v, p); b != nil {
				t.RedactParameters = *b
			}
		}},
		{"max_sessions_per_grant", func(p string, v *yaml.Node) { t.MaxSessionsPerGrant = d.connCap(v, p) }},
		{"sts_endpoint", func(p string, v *yaml.Node) { t.STSEndpoint = d.str(v, p) }},
		{"endpoints", func(p string, v *yaml.Node) { t.Endpoints = d.endpoints(v, p) }},
		{"credentials", func(p string, v *yaml.Node) {
			var c Credentials
			if d.mapping(v, p, "a mapping of credentials (access_key_id_env, secret_access_key_env, role_arn)", []field{
				{"access_key_id_env", func(p string, v *yaml.Node) { c.AccessKeyIDEnv = d.str(v, p) }},
				{"secret_access_key_env", func(p string, v *yaml.Node) { c.SecretAccessKeyEnv = d.str(v, p) }},
				{"role_arn", func(p string, v *yaml.Node) { c.RoleARN = d.str(v, p) }},
			}) {
				t.Credentials = &c
			}
		}},
	}) && !d.bad[path] {
		d.failAt(n, path, "expected a target (a mapping with name, kind, account, ...), got nothing")
	}
	return t
}
