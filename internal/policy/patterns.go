package policy

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/cedar-policy/cedar-go"
	"github.com/cedar-policy/cedar-go/ast"
	"github.com/cedar-policy/cedar-go/types"
	xast "github.com/cedar-policy/cedar-go/x/exp/ast"

	"github.com/airlock-dev/airlock/internal/scope"
)

// context.resource is a pattern, not a resource: "arn:aws:s3:::logs/*"
// covers every object under logs/. Cedar compares it as a plain string, so
// a test that should hold for every resource the pattern covers holds only
// for the string itself:
//
//	forbid (principal, action, resource) when { context.resource like "arn:aws:s3:::logs/secret/*" };
//
// does not match the string "arn:aws:s3:::logs/*", and a request for
// logs/* would be granted, secrets included, past the forbid.
//
// Where a test on context.resource makes a decision more permissive the
// plain string comparison is sound: a `like` pattern that matches "P*"
// (its last wildcard takes the "*") matches every string that starts with
// P, and `==` means the same pattern. Where it makes a decision less
// permissive (the condition of a forbid's when, of a permit's unless, or
// under an odd number of !), the test must hold if it holds for ANY
// resource the pattern covers. Load rewrites each such test T on
// context.resource into
//
//	T || context["airlock:overlaps"].contains(k)
//
// and every context carries the set of the tests k that some resource
// covered by the requested pattern passes (overlaps). A test whose sense
// cannot be told (inside an if's condition, compared with a boolean, in a
// set...) is refused at load: it could be bypassed either way.
const overlapsAttr = "airlock:overlaps"

// resourceTest is one rewritten test on context.resource.
type resourceTest struct {
	like bool
	pat  []patternToken // like: the pattern, one token per byte or wildcard
	lit  string         // ==: the string, read as a scope pattern
	// like: the literal text before the pattern's first wildcard, and
	// whether the pattern is just that and one trailing wildcard (the
	// common "arn:aws:s3:::bucket/prefix/*"), decided without the NFA.
	head   string
	simple bool
}

func newLikeTest(toks []patternToken) resourceTest {
	t := resourceTest{like: true, pat: toks}
	var head []byte
	for _, tok := range toks {
		if tok.wild {
			break
		}
		head = append(head, tok.c)
	}
	t.head = string(head)
	t.simple = len(toks) == len(head)+1
	return t
}

type patternToken struct {
	wild bool
	c    byte
}

// overlaps reports whether some resource covered by the requested pattern
// (scope grammar: a trailing "*" is a prefix) passes the test.
func (t *resourceTest) overlaps(pattern string) bool {
	if !t.like {
		return scope.Overlap(pattern, t.lit)
	}
	prefix, isPrefix := strings.CutSuffix(pattern, "*")
	// Every match starts with head: a prefix that parts from it overlaps
	// nothing.
	if n := min(len(prefix), len(t.head)); prefix[:n] != t.head[:n] {
		return false
	}
	if t.simple {
		return isPrefix || strings.HasPrefix(prefix, t.head)
	}
	// An NFA over the pattern's tokens: cur[j] means the first j tokens
	// can match what has been read. After the prefix, any live state can
	// still reach the end (literals can be supplied, wildcards can be
	// empty), so a prefix overlaps iff some state is live.
	n := len(t.pat)
	cur, next := make([]bool, n+1), make([]bool, n+1)
	closure := func(s []bool) bool {
		live := false
		for j := 0; j <= n; j++ {
			if s[j] && j < n && t.pat[j].wild {
				s[j+1] = true
			}
			live = live || s[j]
		}
		return live
	}
	cur[0] = true
	closure(cur)
	for i := 0; i < len(prefix); i++ {
		clear(next)
		for j := 0; j < n; j++ {
			if !cur[j] {
				continue
			}
			if t.pat[j].wild {
				next[j] = true
			} else if t.pat[j].c == prefix[i] {
				next[j+1] = true
			}
		}
		cur, next = next, cur
		if !closure(cur) {
			return false
		}
	}
	if isPrefix {
		return true
	}
	return cur[n]
}

func patternTokens(p types.Pattern) ([]patternToken, error) {
	b, err := p.MarshalJSON()
	if err != nil {
		return nil, err
	}
	var comps []json.RawMessage
	if err := json.Unmarshal(b, &comps); err != nil {
		return nil, err
	}
	var out []patternToken
	for _, c := range comps {
		if string(c) == `"Wildcard"` {
			out = append(out, patternToken{wild: true})
			continue
		}
		var lit struct{ Literal string }
		if err := json.Unmarshal(c, &lit); err != nil {
			return nil, err
		}
		for i := 0; i < len(lit.Literal); i++ {
			out = append(out, patternToken{c: lit.Literal[i]})
		}
	}
	return out, nil
}

// Senses of a test within a condition.
const (
	senseMixed    = 0  // cannot be told
	senseAllows   = -1 // true makes the decision more permissive
	senseRestrict = 1  // true makes the decision less permissive
)

// resourceRewriter rewrites the policies of one Set, numbering their tests.
type resourceRewriter struct {
	tests    []resourceTest
	problems []string
}

// policy returns p with its restricting tests on context.resource
// rewritten (p itself when it has none), or problems.
func (rw *resourceRewriter) policy(p *cedar.Policy, forbid bool) *cedar.Policy {
	a := *(*xast.Policy)(p.AST())
	before := len(rw.tests)
	conds := make([]xast.ConditionType, len(a.Conditions))
	for i, c := range a.Conditions {
		// A forbid's when restricts; so does a permit's unless.
		sense := senseAllows
		if forbid == (c.Condition == xast.ConditionWhen) {
			sense = senseRestrict
		}
		conds[i] = xast.ConditionType{Condition: c.Condition, Body: rw.node(c.Body, sense)}
	}
	if len(rw.tests) == before {
		return p
	}
	a.Conditions = conds
	return cedar.NewPolicyFromAST((*ast.Policy)(&a))
}

func (rw *resourceRewriter) node(n xast.IsNode, sense int) xast.IsNode {
	switch n := n.(type) {
	case xast.NodeTypeAnd:
		return xast.NodeTypeAnd{BinaryNode: xast.BinaryNode{Left: rw.node(n.Left, sense), Right: rw.node(n.Right, sense)}}
	case xast.NodeTypeOr:
		return xast.NodeTypeOr{BinaryNode: xast.BinaryNode{Left: rw.node(n.Left, sense), Right: rw.node(n.Right, sense)}}
	case xast.NodeTypeNot:
		return xast.NodeTypeNot{UnaryNode: xast.UnaryNode{Arg: rw.node(n.Arg, -sense)}}
	case xast.NodeTypeIfThenElse:
		return xast.NodeTypeIfThenElse{If: rw.node(n.If, senseMixed), Then: rw.node(n.Then, sense), Else: rw.node(n.Else, sense)}
	case xast.NodeTypeLike:
		if isContextResource(n.Arg) {
			if sense == senseAllows {
				rw.literalStar(n.Value)
			}
			return rw.test(n, sense, "like", func() (resourceTest, error) {
				toks, err := patternTokens(n.Value)
				return newLikeTest(toks), err
			})
		}
	case xast.NodeTypeEquals:
		if lit, ok := resourceLiteral(n.BinaryNode); ok {
			return rw.test(n, sense, "==", func() (resourceTest, error) { return resourceTest{lit: lit}, nil })
		}
	case xast.NodeTypeNotEquals:
		if lit, ok := resourceLiteral(n.BinaryNode); ok {
			eq := rw.test(xast.NodeTypeEquals{BinaryNode: n.BinaryNode}, -sense, "!=", func() (resourceTest, error) { return resourceTest{lit: lit}, nil })
			if _, same := eq.(xast.NodeTypeEquals); same {
				return n
			}
			return xast.NodeTypeNot{UnaryNode: xast.UnaryNode{Arg: eq}}
		}
	}
	if usesContextResource(n) {
		rw.problems = append(rw.problems, "context.resource is used other than in `context.resource like \"…\"` or `context.resource == \"…\"` (or !=) combined with &&, || and !; it is the requested pattern (a trailing * covers every resource with that prefix), and only those tests are decided for every resource it covers")
	}
	return n
}

// literalStar refuses an escaped \* in a like pattern that allows (a
// permit's when): it matches the "*" that ends a requested pattern, which
// stands for every resource with its prefix, not for a "*" in a name (a
// scope has none elsewhere), so `like "arn:aws:s3:::logs/\*"` permitted
// arn:aws:s3:::logs/*, every object under logs/. A test that restricts
// may keep one: there it is decided for every resource the pattern
// covers, a name with a "*" in it included.
func (rw *resourceRewriter) literalStar(p types.Pattern) {
	toks, err := patternTokens(p)
	if err != nil {
		rw.problems = append(rw.problems, fmt.Sprintf("context.resource like: %v", err))
		return
	}
	for _, t := range toks {
		if !t.wild && t.c == '*' {
			rw.problems = append(rw.problems, `context.resource like with an escaped \* where it allows: the requested pattern's trailing * covers every resource with its prefix, and \* would match it as a plain *; write context.resource == "…*" to permit that pattern, or like "…*" for every pattern under a prefix`)
			return
		}
	}
}

// test rewrites a test on context.resource for its sense.
func (rw *resourceRewriter) test(n xast.IsNode, sense int, op string, mk func() (resourceTest, error)) xast.IsNode {
	switch sense {
	case senseAllows:
		return n
	case senseMixed:
		rw.problems = append(rw.problems, fmt.Sprintf("context.resource %s is inside an if's condition or compared as a value, where it cannot be decided for every resource the requested pattern covers; write it with &&, || and !", op))
		return n
	}
	t, err := mk()
	if err != nil {
		rw.problems = append(rw.problems, fmt.Sprintf("context.resource %s: %v", op, err))
		return n
	}
	k := len(rw.tests)
	rw.tests = append(rw.tests, t)
	return xast.NodeTypeOr{BinaryNode: xast.BinaryNode{
		Left: n,
		Right: xast.NodeTypeContains{BinaryNode: xast.BinaryNode{
			Left:  xast.NodeTypeAccess{StrOpNode: xast.StrOpNode{Arg: xast.NodeTypeVariable{Name: "context"}, Value: overlapsAttr}},
			Right: xast.NodeValue{Value: types.Long(k)},
		}},
	}}
}

func isContextResource(n xast.IsNode) bool {
	a, ok := n.(xast.NodeTypeAccess)
	if !ok || a.Value != "resource" {
		return false
	}
	v, ok := a.Arg.(xast.NodeTypeVariable)
	return ok && v.Name == "context"
}

// resourceLiteral matches context.resource == "s" either way round.
func resourceLiteral(b xast.BinaryNode) (string, bool) {
	l, r := b.Left, b.Right
	if !isContextResource(l) {
		l, r = r, l
	}
	if !isContextResource(l) {
		return "", false
	}
	if v, ok := r.(xast.NodeValue); ok {
		if s, ok := v.Value.(types.String); ok {
			return string(s), true
		}
	}
	return "", false
}

func usesContextResource(n xast.IsNode) bool {
	found := false
	xast.Inspect(xast.NewNode(n), func(n xast.IsNode) bool {
		found = found || isContextResource(n)
		return !found
	})
	return found
}

// overlapSet is the value of context["airlock:overlaps"] for a requested
// pattern: the tests that some resource it covers passes, or some resource
// whose data such a resource holds or reads (scope.Related: the table of a
// DynamoDB index, the log group of a stream and the streams of a group...),
// so that a forbid on a table or a log stream is not stepped around by
// asking for the index or the whole group. Allowing tests never see these:
// a permit on a table does not grant its indexes.
func (s *Set) overlapSet(pattern string) cedar.Set {
	var buf [4]string // no allocation for the few containers
	related := scope.Related(buf[:0], pattern)
	var ks []types.Value
	for k := range s.tests {
		hit := s.tests[k].overlaps(pattern)
		for _, r := range related {
			hit = hit || s.tests[k].overlaps(r)
		}
		if hit {
			ks = append(ks, types.Long(k))
		}
	}
	return types.NewSet(ks...)
}
