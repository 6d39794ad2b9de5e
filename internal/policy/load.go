package policy

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/cedar-policy/cedar-go"
	"github.com/cedar-policy/cedar-go/types"
	xast "github.com/cedar-policy/cedar-go/x/exp/ast"

	"github.com/airlock-dev/airlock/internal/actionname"
	"github.com/airlock-dev/airlock/internal/fsperm"
	"github.com/airlock-dev/airlock/internal/scope"
)

// Entity types and attributes of the policy vocabulary (DESIGN.md, "Policy
// vocabulary"). Load rejects anything else: Cedar evaluates a misspelt
// entity type as "never matches" and a misspelt attribute as an evaluation
// error that skips the policy, so a typo in a forbid would silently stop it
// from forbidding. Without a Cedar schema, this is the check that catches it.
const (
	typeAgent  = types.EntityType("Agent")
	typeHuman  = types.EntityType("Human")
	typeGroup  = types.EntityType("Group")
	typeAction = types.EntityType("Action")
	typeTarget = types.EntityType("Target")
)

// ApproveAction is the action of approve policies (Action::"approve"). It is
// never a requestable action: Decide denies a pair that names it.
const ApproveAction = "approve"

var (
	knownTypes = []types.EntityType{typeAgent, typeHuman, typeGroup, typeAction, typeTarget}
	knownAttrs = map[string][]string{
		"principal": {"name", "owner"},
		"resource":  {"account"},
		"context":   {"resource", "duration_seconds", "reason", "requester", "action"},
	}
)

// Load parses every *.cedar file in dir (not recursive, in name order) into
// a Set. An empty directory gives an empty Set, which denies everything.
//
// Besides Cedar syntax, Load checks what Cedar alone would accept but
// Airlock would silently misread: @approval values other than "auto" and
// "human", @approval on a forbid, duplicate or empty @id values, entity
// types and attributes outside the vocabulary, Action::"x" names that no
// request can carry (scope.CheckAction: "s3:*", "s3:getObject"), which
// Cedar would compare as plain names, Target::"x" references
// to targets that knownTarget does not know (nil knownTarget skips that
// check), and tests on context.resource that cannot be decided for every
// resource a pattern covers (patterns.go). All problems are reported
// together, each as file:line:col.
func Load(dir string, knownTarget func(string) bool) (*Set, error) {
	// Checked at every load, SIGHUP's included: whoever may write the
	// directory or a file in it writes a permit for themselves, which
	// the next reload would put in force.
	if err := fsperm.CheckDir(dir); err != nil {
		return nil, fmt.Errorf("policies: %w (whoever writes it could add a permit for themselves)", err)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("policies: %w", err)
	}
	var names []string
	for _, e := range ents {
		if !strings.HasSuffix(e.Name(), ".cedar") {
			continue
		}
		if e.IsDir() {
			continue
		}
		names = append(names, e.Name())
	}
	slices.Sort(names)

	s := &Set{files: names, meta: map[cedar.PolicyID]*policyMeta{}, memo: new(sync.Map), memoSize: new(atomic.Int64)}
	h := sha256.New()
	var errs []error
	var rw resourceRewriter
	for _, name := range names {
		path := filepath.Join(dir, name)
		data, err := fsperm.ReadFile(path, maxPolicyFile)
		if err != nil {
			errs = append(errs, fmt.Errorf("policies: %w", err))
			continue
		}
		// Length-prefix both fields so no two different file sets can
		// produce the same byte stream.
		_ = binary.Write(h, binary.BigEndian, uint64(len(name)))
		h.Write([]byte(name))
		_ = binary.Write(h, binary.BigEndian, uint64(len(data)))
		h.Write(data)

		list, err := cedar.NewPolicyListFromBytes(path, data)
		if err != nil {
			errs = append(errs, parseError(path, err))
			continue
		}
		for i, p := range list {
			m, perrs := checkPolicy(path, name, data, list, i, knownTarget)
			errs = append(errs, perrs...)
			if m == nil {
				continue
			}
			if prev, dup := s.meta[m.id]; dup {
				errs = append(errs, fmt.Errorf("%s: duplicate policy id %q (also at %s)", m.pos(), m.id, prev.pos()))
				continue
			}
			m.p = p
			m.full = rw.policy(p, m.forbid)
			for _, msg := range rw.problems {
				errs = append(errs, fmt.Errorf("%s: policy %q: %s", m.pos(), m.id, msg))
			}
			rw.problems = nil
			s.meta[m.id] = m
			s.order = append(s.order, m)
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	s.hash = "sha256:" + hex.EncodeToString(h.Sum(nil))
	s.all = make(cedar.PolicyMap, len(s.order))
	for _, m := range s.order {
		s.all[m.id] = m.full
	}
	s.tests = rw.tests
	s.index = buildIndex(s.order)
	return s, nil
}

var inputPosRE = regexp.MustCompile(`<input>:(\d+):(\d+)`)

// parseError puts the file name where cedar-go writes "<input>", so the
// message reads file:line:col like a compiler's.
func parseError(path string, err error) error {
	msg := strings.TrimPrefix(err.Error(), "parser error: ")
	if loc := inputPosRE.FindStringSubmatchIndex(msg); loc != nil {
		pos := path + ":" + msg[loc[2]:loc[3]] + ":" + msg[loc[4]:loc[5]]
		// cedar-go: `parse error at <input>:L:C "tok": detail`
		rest := strings.TrimSpace(msg[loc[1]:])
		if strings.HasPrefix(msg[:loc[0]], "parse error at") && rest != "" {
			if after, ok := strings.CutPrefix(rest, `"": `); ok {
				return fmt.Errorf("%s: parse error at end of file: %s", pos, after)
			}
			return fmt.Errorf("%s: parse error near %s", pos, rest)
		}
		return fmt.Errorf("%s: %s", pos, strings.TrimSpace(msg[:loc[0]]+" "+rest))
	}
	return fmt.Errorf("%s: %s", path, msg)
}

// checkPolicy validates policy i of a file and returns its metadata (nil if
// it has no usable id).
func checkPolicy(path, name string, data []byte, list cedar.PolicyList, i int, knownTarget func(string) bool) (*policyMeta, []error) {
	p := list[i]
	pos := p.Position()
	m := &policyMeta{file: path, line: pos.Line, col: pos.Column, forbid: p.Effect() == cedar.Forbid}
	var errs []error
	fail := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", m.pos(), fmt.Sprintf(format, args...)))
	}

	ann := p.Annotations()
	if id, ok := ann["id"]; ok {
		if strings.TrimSpace(string(id)) == "" {
			fail("empty @id")
			return nil, errs
		}
		m.id = cedar.PolicyID(id)
	} else {
		// cedar-go names unnamed policies "policy<n>" per document; with
		// several files those collide, so qualify them with the file.
		m.id = cedar.PolicyID(name + "#policy" + strconv.Itoa(i))
	}
	m.approval = approvalHuman
	if a, ok := ann["approval"]; ok {
		switch {
		case m.forbid:
			fail("policy %q: @approval has no meaning on a forbid policy", m.id)
		case a == approvalAuto || a == approvalHuman:
			m.approval = string(a)
		default:
			fail("policy %q: invalid @approval(%q); want \"auto\" or \"human\"", m.id, string(a))
		}
	}

	// The policy's text runs from its position to the next policy's.
	end := len(data)
	if i+1 < len(list) {
		end = list[i+1].Position().Offset
	}
	start := min(max(pos.Offset, 0), end)
	if _, actions := scopeSets(p); mayServeAgents((*xast.Policy)(p.AST()), actions) {
		m.names = namesOf((*xast.Policy)(p.AST()))
	}
	for _, v := range vocabulary(p) {
		switch {
		case v.badType != "":
			fail("policy %q: unknown entity type %s; the vocabulary is Agent, Human, Group, Action, Target", m.id, v.badType)
		case v.badAction != "":
			fail("policy %q: %s; Action::\"approve\" or a scope's action, which Cedar compares exactly", m.id, v.badAction)
		case v.badContextAction != "":
			fail("policy %q: %s", m.id, v.badContextAction)
		case v.emptyGroup:
			fail("policy %q: Group::\"\" names no group; group names are never empty", m.id)
		case v.badAttr != "":
			fail("policy %q: unknown attribute %s.%s; %s has %s", m.id, v.variable, v.badAttr, v.variable, strings.Join(knownAttrs[v.variable], ", "))
		case v.target != "" && knownTarget != nil && !knownTarget(v.target):
			line, col := locate(data[start:end], v.target, pos)
			errs = append(errs, fmt.Errorf("%s:%d:%d: policy %q: unknown target %q (not in the configuration)", path, line, col, m.id, v.target))
		case v.agent != "":
			m.agents = append(m.agents, v.agent)
		}
	}
	return m, errs
}

// locate finds the line and column of the first `Target::"id"` in a
// policy's text, falling back to the policy's own position.
func locate(text []byte, id string, pos cedar.Position) (line, col int) {
	re := regexp.MustCompile(`Target\s*::\s*` + regexp.QuoteMeta(strconv.Quote(id)))
	loc := re.FindIndex(text)
	if loc == nil {
		return pos.Line, pos.Column
	}
	line, col = pos.Line, pos.Column
	for _, c := range string(text[:loc[0]]) {
		if c == '\n' {
			line, col = line+1, 1
		} else {
			col++
		}
	}
	return line, col
}

// checkAction is scope.CheckAction, and refuses too a gateway's action in
// another case (s3:Deleteobject), which requests may not carry
// (grants refuses them) and Cedar would compare as a plain name: a forbid
// naming it would forbid nothing. Where CheckAction's advice for a
// lower-case first letter (the name capitalised) is not the gateway's
// spelling, the spelling is named instead: ec2:describeinstances was told
// to write ec2:Describeinstances, no action either.
func checkAction(a string) error {
	c, respelled := actionname.Respelled(a)
	err := scope.CheckAction(a)
	svc, name, _ := strings.Cut(a, ":")
	if respelled && (err == nil || svc != "pg" && svc == strings.ToLower(svc) && name != "" && svc+":"+strings.ToUpper(name[:1])+name[1:] != c) {
		return fmt.Errorf("action %q is spelled %s, and Airlock compares actions exactly", a, c)
	}
	return err
}

// finding is one thing vocabulary found in a policy: a Target reference, or
// a type or attribute outside the vocabulary.
type finding struct {
	target   string
	badType  types.EntityType
	variable string
	badAttr  string
	// badAction says why an Action::"x" names no action a request can
	// carry.
	badAction string
	// badContextAction says why a comparison of context.action (approve
	// policies) can never hold for an action a request carries.
	badContextAction string
	// agent is an Agent::"x" the policy names.
	agent string
	// emptyGroup: the policy names Group::"".
	emptyGroup bool
}

// vocabulary walks a policy's scope and conditions and reports every
// Target::"x" it names and every entity type or attribute it uses that the
// vocabulary does not have.
func vocabulary(p *cedar.Policy) []finding {
	a := (*xast.Policy)(p.AST())
	var out []finding
	seen := map[finding]bool{}
	add := func(f finding) {
		if !seen[f] {
			seen[f] = true
			out = append(out, f)
		}
	}
	typ := func(t types.EntityType) {
		if !slices.Contains(knownTypes, t) {
			add(finding{badType: t})
		}
	}
	uid := func(u types.EntityUID) {
		typ(u.Type)
		switch u.Type {
		case typeTarget:
			add(finding{target: string(u.ID)})
		case typeAgent:
			add(finding{agent: string(u.ID)})
		case typeGroup:
			if u.ID == "" {
				add(finding{emptyGroup: true})
			}
		case typeAction:
			// Cedar compares Action::"s3:*" or Action::"s3:deleteObject"
			// as a plain name that no request ever carries: a forbid
			// naming it would silently forbid nothing.
			if u.ID != ApproveAction {
				if err := checkAction(string(u.ID)); err != nil {
					add(finding{badAction: err.Error()})
				}
			}
		}
	}
	var value func(v types.Value)
	value = func(v types.Value) {
		switch v := v.(type) {
		case types.EntityUID:
			uid(v)
		case types.Set:
			for e := range v.All() {
				value(e)
			}
		case types.Record:
			for e := range v.Values() {
				value(e)
			}
		}
	}
	scopeNode := func(s xast.IsScopeNode) {
		switch s := s.(type) {
		case xast.ScopeTypeEq:
			uid(s.Entity)
		case xast.ScopeTypeIn:
			uid(s.Entity)
		case xast.ScopeTypeInSet:
			for _, e := range s.Entities {
				uid(e)
			}
		case xast.ScopeTypeIs:
			typ(s.Type)
		case xast.ScopeTypeIsIn:
			typ(s.Type)
			uid(s.Entity)
		}
	}
	scopeNode(a.Principal)
	scopeNode(a.Action)
	scopeNode(a.Resource)
	attr := func(arg xast.IsNode, name types.String) {
		v, ok := arg.(xast.NodeTypeVariable)
		if !ok {
			return
		}
		if known, ok := knownAttrs[string(v.Name)]; ok && !slices.Contains(known, string(name)) {
			add(finding{variable: string(v.Name), badAttr: string(name)})
		}
	}
	// context.action (approve policies) is a pair's action as a String:
	// compared with a name no request carries (s3:deleteObject), a forbid
	// on approving it would never hold, and approvers could approve what
	// its author meant to stop.
	literal := func(s string) {
		if err := checkAction(s); err != nil {
			add(finding{badContextAction: "context.action compared with " + err.Error() + "; Cedar compares strings exactly, so the comparison never holds for an action a request carries"})
		}
	}
	literals := func(n xast.IsNode) {
		switch n := n.(type) {
		case xast.NodeValue:
			if str, ok := n.Value.(types.String); ok {
				literal(string(str))
			}
			if set, ok := n.Value.(types.Set); ok {
				for e := range set.All() {
					if str, ok := e.(types.String); ok {
						literal(string(str))
					}
				}
			}
		case xast.NodeTypeSet:
			for _, e := range n.Elements {
				if v, ok := e.(xast.NodeValue); ok {
					if str, ok := v.Value.(types.String); ok {
						literal(string(str))
					}
				}
			}
		}
	}
	compared := func(b xast.BinaryNode) {
		switch {
		case isContextAction(b.Left):
			literals(b.Right)
		case isContextAction(b.Right):
			literals(b.Left)
		}
	}
	// [context.action].containsAny([...]) and containsAll.
	setCompared := func(b xast.BinaryNode) {
		if holdsContextAction(b.Left) {
			literals(b.Right)
		}
	}
	for _, c := range a.Conditions {
		xast.Inspect(xast.NewNode(c.Body), func(n xast.IsNode) bool {
			switch n := n.(type) {
			case xast.NodeTypeEquals:
				compared(n.BinaryNode)
			case xast.NodeTypeNotEquals:
				compared(n.BinaryNode)
			case xast.NodeTypeContains:
				if isContextAction(n.Right) {
					literals(n.Left)
				}
			case xast.NodeTypeContainsAll:
				setCompared(n.BinaryNode)
			case xast.NodeTypeContainsAny:
				setCompared(n.BinaryNode)
			case xast.NodeTypeLike:
				if isContextAction(n.Arg) {
					if err := checkActionPattern(n.Value); err != nil {
						add(finding{badContextAction: "context.action like " + err.Error()})
					}
				}
			case xast.NodeValue:
				value(n.Value)
			case xast.NodeTypeIs:
				typ(n.EntityType)
			case xast.NodeTypeIsIn:
				typ(n.EntityType)
			case xast.NodeTypeAccess:
				attr(n.Arg, n.Value)
			case xast.NodeTypeHas:
				attr(n.Arg, n.Value)
			}
			return true
		})
	}
	return out
}

// isContextAction reports whether n is context.action.
func isContextAction(n xast.IsNode) bool {
	a, ok := n.(xast.NodeTypeAccess)
	if !ok || a.Value != "action" {
		return false
	}
	v, ok := a.Arg.(xast.NodeTypeVariable)
	return ok && v.Name == "context"
}

// holdsContextAction reports whether n is a set literal with context.action
// among its elements ([context.action].containsAny([...])).
func holdsContextAction(n xast.IsNode) bool {
	s, ok := n.(xast.NodeTypeSet)
	return ok && slices.ContainsFunc(s.Elements, isContextAction)
}

// checkActionPattern reports a `like` pattern on context.action that no
// action can match because of how it is written: a service part that is
// not lower case, an AWS action name that does not start with a capital
// letter, a postgres pattern that matches none of the postgres actions,
// or one that matches a gateway's action only in another case.
// Patterns whose text before the first wildcard does not reach the colon
// (`*Delete*`) are not judged.
func checkActionPattern(p types.Pattern) error {
	text := string(p.MarshalCedar())
	if len(text) < 2 || strings.Contains(text, `\`) {
		return nil
	}
	text = text[1 : len(text)-1] // the quotes
	lit, _, _ := strings.Cut(text, "*")
	svc, name, ok := strings.Cut(lit, ":")
	if !ok {
		return nil
	}
	if !serviceRE.MatchString(svc) {
		return fmt.Errorf("%q: the service part (%q) of an action is lower case, and Cedar compares strings exactly", text, svc)
	}
	if svc == "pg" {
		if !slices.ContainsFunc(scope.PostgresActions(), func(a string) bool { return p.Match(types.String(a)) }) {
			return fmt.Errorf("%q matches no postgres action; they are %s", text, strings.Join(scope.PostgresActions(), ", "))
		}
		return nil
	}
	if name != "" && (name[0] < 'A' || name[0] > 'Z') {
		return fmt.Errorf("%q: AWS action names start with a capital letter (%s:%s), and Cedar compares strings exactly", text, svc, strings.ToUpper(text[len(svc)+1:len(svc)+2])+text[len(svc)+2:])
	}
	// One that matches a gateway's action only in another case
	// ("ec2:DescribeinStance*" for ec2:DescribeInstances) matches no
	// action a request carries (grants refuses those).
	var comps []any
	for i, part := range strings.Split(strings.ToLower(text), "*") {
		if i > 0 {
			comps = append(comps, types.Wildcard{})
		}
		comps = append(comps, part)
	}
	folded := types.NewPattern(comps...)
	if c, ok := actionname.InAnotherCase(func(a string) bool { return p.Match(types.String(a)) }, func(a string) bool { return folded.Match(types.String(a)) }); ok {
		return fmt.Errorf("%q matches no action as the gateways spell it, only %s in another case, and Cedar compares strings exactly", text, c)
	}
	return nil
}

// serviceRE is the service part of an action (scope's action grammar).
var serviceRE = regexp.MustCompile(`^[a-z][a-z0-9-]{0,31}$`)

// scopeSets reports which targets and actions a policy's scope limits it
// to; nil means "any". Anything not provably limited is "any", which only
// costs evaluation time, never correctness.
//
// action in Action::"a" and action in [...] are read as plain membership
// because Airlock gives Action entities no parents (the request's entity
// store holds only the principal and the target).
func scopeSets(p *cedar.Policy) (targets, actions []string) {
	a := (*xast.Policy)(p.AST())
	if s, ok := a.Resource.(xast.ScopeTypeEq); ok && s.Entity.Type == typeTarget {
		targets = []string{string(s.Entity.ID)}
	}
	switch s := a.Action.(type) {
	case xast.ScopeTypeEq:
		if s.Entity.Type == typeAction {
			actions = []string{string(s.Entity.ID)}
		}
	case xast.ScopeTypeIn:
		if s.Entity.Type == typeAction {
			actions = []string{string(s.Entity.ID)}
		}
	case xast.ScopeTypeInSet:
		actions = []string{}
		for _, e := range s.Entities {
			if e.Type != typeAction {
				return targets, nil
			}
			actions = append(actions, string(e.ID))
		}
	}
	return targets, actions
}

// maxPolicyFile bounds one policy file's size: far above any real set of
// policies, far below what would strain the process.
const maxPolicyFile = 16 << 20
