package policy

import (
	"iter"
	"slices"

	"github.com/cedar-policy/cedar-go"
	"github.com/cedar-policy/cedar-go/ast"
	"github.com/cedar-policy/cedar-go/types"
	xast "github.com/cedar-policy/cedar-go/x/exp/ast"
)

// Policy slicing. cedar.Authorize evaluates every policy it is given, so a
// decision costs time proportional to the whole set. At load time each
// policy is filed under the targets and actions its scope names (or under
// "any"), and a pair is evaluated only against the policies that could
// match its (target, action); within that slice, policies whose principal
// scope cannot match the principal are skipped as well. A policy left out
// is one whose scope is false for the request; Cedar evaluates the scope
// before the conditions and stops at the first false, and scope tests never
// raise errors, so the left-out policy would have been neither satisfied
// nor an error: the decision and diagnostics are the same as with the whole
// set (slice_test.go checks this on generated requests).
//
// Inside a slice the scope tests the index has already decided are
// redundant, and cedar-go's are not free (action in [...] builds a set on
// every evaluation), so each policy is also compiled a second time with
// those scope parts replaced by "any": the principal scope (always decided
// by principalScope.matches), the action scope when the policy was filed
// by action, the resource scope when it was filed by target. That copy
// keeps the policy's id, annotations and position, and evaluates exactly
// its conditions, which is what the original evaluates to once its scope
// is known to hold.
//
// This relies on the shape of Airlock's entities: the request's entity
// store holds only the principal and the target; a principal's parents are
// Group entities, which have no parents themselves, and actions and targets
// have none. So "in" is never transitive beyond one step.

// principalScope is a policy's principal scope in a form that can be tested
// against the principal entity without Cedar's evaluator.
type principalScope struct {
	kind int // scopeAny, scopeEq, scopeIn, scopeIs, scopeIsIn
	typ  types.EntityType
	uid  types.EntityUID
}

const (
	scopeAny = iota
	scopeEq
	scopeIn
	scopeIs
	scopeIsIn
)

func newPrincipalScope(p *cedar.Policy) principalScope {
	switch s := (*xast.Policy)(p.AST()).Principal.(type) {
	case xast.ScopeTypeEq:
		return principalScope{kind: scopeEq, uid: s.Entity}
	case xast.ScopeTypeIn:
		return principalScope{kind: scopeIn, uid: s.Entity}
	case xast.ScopeTypeIs:
		return principalScope{kind: scopeIs, typ: s.Type}
	case xast.ScopeTypeIsIn:
		return principalScope{kind: scopeIsIn, typ: s.Type, uid: s.Entity}
	}
	return principalScope{kind: scopeAny}
}

// matches is Cedar's principal scope test for Airlock's entity shape. It
// compares against the principal's parent list rather than its EntityUIDSet:
// a principal has a handful of groups, and string comparisons beat hashing.
func (ps *principalScope) matches(e *entities) bool {
	switch ps.kind {
	case scopeEq:
		return e.principal.UID == ps.uid
	case scopeIn:
		return e.principal.UID == ps.uid || slices.Contains(e.parents, ps.uid)
	case scopeIs:
		return e.principal.UID.Type == ps.typ
	case scopeIsIn:
		return e.principal.UID.Type == ps.typ && (e.principal.UID == ps.uid || slices.Contains(e.parents, ps.uid))
	}
	return true
}

// requestSlice is the cedar.PolicyIterator for one authorization: the
// (target, action) slice, less the policies whose principal scope cannot
// match.
type requestSlice struct {
	policies policySlice
	env      *entities
}

func (r *requestSlice) All() iter.Seq2[cedar.PolicyID, *cedar.Policy] {
	return func(yield func(cedar.PolicyID, *cedar.Policy) bool) {
		for _, m := range r.policies {
			if !m.principal.matches(r.env) {
				continue
			}
			if !yield(m.id, m.eval) {
				return
			}
		}
	}
}

// policySlice is the list of policies filed under one (target, action).
type policySlice []*policyMeta

// conditionsOnly compiles the copy of p described above.
func conditionsOnly(p *cedar.Policy, byTarget, byAction bool) *cedar.Policy {
	a := *(*xast.Policy)(p.AST())
	a.Principal = xast.ScopeTypeAll{}
	if byAction {
		a.Action = xast.ScopeTypeAll{}
	}
	if byTarget {
		a.Resource = xast.ScopeTypeAll{}
	}
	return cedar.NewPolicyFromAST((*ast.Policy)(&a))
}

// actionIndex holds, for one target bucket, the slice per named action and
// the slice for any other action (policies whose action scope is "any").
type actionIndex struct {
	byAction map[string]policySlice
	other    policySlice
}

type index struct {
	byTarget map[string]*actionIndex
	other    *actionIndex // targets no policy names
}

func (ix *index) lookup(target, action string) policySlice {
	ai, ok := ix.byTarget[target]
	if !ok {
		ai = ix.other
	}
	if s, ok := ai.byAction[action]; ok {
		return s
	}
	return ai.other
}

type scoped struct {
	m                *policyMeta
	targets, actions []string // nil: any
}

func buildIndex(order []*policyMeta) *index {
	all := make([]scoped, len(order))
	var targets []string
	for i, m := range order {
		m.principal = newPrincipalScope(m.p)
		t, a := scopeSets(m.p)
		m.eval = conditionsOnly(m.full, t != nil, a != nil)
		all[i] = scoped{m: m, targets: t, actions: a}
		for _, x := range t {
			if !slices.Contains(targets, x) {
				targets = append(targets, x)
			}
		}
	}
	ix := &index{byTarget: make(map[string]*actionIndex, len(targets))}
	for _, t := range targets {
		ix.byTarget[t] = buildActionIndex(all, func(sc scoped) bool {
			return sc.targets == nil || slices.Contains(sc.targets, t)
		})
	}
	ix.other = buildActionIndex(all, func(sc scoped) bool { return sc.targets == nil })
	return ix
}

func buildActionIndex(all []scoped, forTarget func(scoped) bool) *actionIndex {
	var mine []scoped
	var actions []string
	for _, sc := range all {
		if !forTarget(sc) {
			continue
		}
		mine = append(mine, sc)
		for _, a := range sc.actions {
			if !slices.Contains(actions, a) {
				actions = append(actions, a)
			}
		}
	}
	ai := &actionIndex{byAction: make(map[string]policySlice, len(actions))}
	for _, a := range actions {
		var s policySlice
		for _, sc := range mine {
			if sc.actions == nil || slices.Contains(sc.actions, a) {
				s = append(s, sc.m)
			}
		}
		ai.byAction[a] = s
	}
	for _, sc := range mine {
		if sc.actions == nil {
			ai.other = append(ai.other, sc.m)
		}
	}
	return ai
}
