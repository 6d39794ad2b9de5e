package policy

import (
	"slices"

	"github.com/cedar-policy/cedar-go/types"
	xast "github.com/cedar-policy/cedar-go/x/exp/ast"
)

// agentNames is what a policy's conditions say about principal.name: the
// names it compares it with (==, !=, a set of names' contains), the
// patterns it matches it against (like), and whether it uses it in any
// other way (compared with something other than string literals), which
// could hold for any name. Like Agent::"x", such a policy was written for
// particular agents, whom the operator defines in the configuration: a
// person adding an agent by a name it matches would be served by it (see
// Set.NamingAgent).
type agentNames struct {
	names    []string
	patterns []types.Pattern
	any      bool
}

// matches reports whether the policy's conditions single out name.
func (a agentNames) matches(name string) bool {
	return a.any || slices.Contains(a.names, name) ||
		slices.ContainsFunc(a.patterns, func(p types.Pattern) bool { return p.Match(types.String(name)) })
}

// mayServeAgents reports whether a policy's principal can be an agent
// asking for access: not when its scope limits it to Action::"approve"
// (the principal is then the approver, a person: "principal.name !=
// context.requester" there names nobody) or to Human principals.
func mayServeAgents(a *xast.Policy, actions []string) bool {
	if len(actions) > 0 && !slices.ContainsFunc(actions, func(x string) bool { return x != ApproveAction }) {
		return false
	}
	switch s := a.Principal.(type) {
	case xast.ScopeTypeEq:
		return s.Entity.Type != typeHuman
	case xast.ScopeTypeIs:
		return s.Type != typeHuman
	case xast.ScopeTypeIsIn:
		return s.Type != typeHuman
	}
	return true
}

// namesOf reads agentNames from a policy's conditions. Every occurrence of
// principal.name is counted; those inside a comparison with string
// literals are resolved to names or patterns, and if any is left over the
// policy is taken to match every name.
func namesOf(a *xast.Policy) agentNames {
	var out agentNames
	seen, resolved := 0, 0
	// literals returns the strings n holds if it is a string literal or a
	// set of string literals.
	literals := func(n xast.IsNode) ([]string, bool) {
		var strs []string
		add := func(v types.Value) bool {
			s, ok := v.(types.String)
			strs = append(strs, string(s))
			return ok
		}
		switch n := n.(type) {
		case xast.NodeValue:
			if set, ok := n.Value.(types.Set); ok {
				for e := range set.All() {
					if !add(e) {
						return nil, false
					}
				}
				return strs, true
			}
			if !add(n.Value) {
				return nil, false
			}
			return strs, true
		case xast.NodeTypeSet:
			for _, e := range n.Elements {
				v, ok := e.(xast.NodeValue)
				if !ok || !add(v.Value) {
					return nil, false
				}
			}
			return strs, true
		}
		return nil, false
	}
	// compared resolves principal.name on one side of n against literals
	// on the other.
	compared := func(name, other xast.IsNode) {
		if !isPrincipalName(name) {
			return
		}
		if strs, ok := literals(other); ok {
			out.names = append(out.names, strs...)
			resolved++
		}
	}
	// inSet resolves the occurrences of principal.name among the elements
	// of set literal set against literals ([principal.name].containsAny([...])).
	inSet := func(set, other xast.IsNode) {
		s, ok := set.(xast.NodeTypeSet)
		if !ok {
			return
		}
		strs, ok := literals(other)
		if !ok {
			return
		}
		for _, e := range s.Elements {
			if isPrincipalName(e) {
				out.names = append(out.names, strs...)
				resolved++
			}
		}
	}
	for _, c := range a.Conditions {
		xast.Inspect(xast.NewNode(c.Body), func(n xast.IsNode) bool {
			switch n := n.(type) {
			case xast.NodeTypeAccess:
				if isPrincipalName(n) {
					seen++
				}
			case xast.NodeTypeEquals:
				compared(n.Left, n.Right)
				compared(n.Right, n.Left)
			case xast.NodeTypeNotEquals:
				// A forbid on every name but one lets that one through.
				compared(n.Left, n.Right)
				compared(n.Right, n.Left)
			case xast.NodeTypeContains:
				compared(n.Right, n.Left)
			case xast.NodeTypeContainsAny:
				inSet(n.Left, n.Right)
				inSet(n.Right, n.Left)
			case xast.NodeTypeContainsAll:
				inSet(n.Left, n.Right)
				inSet(n.Right, n.Left)
			case xast.NodeTypeLike:
				if isPrincipalName(n.Arg) {
					out.patterns = append(out.patterns, n.Value)
					resolved++
				}
			}
			return true
		})
	}
	out.any = seen > resolved
	return out
}

// isPrincipalName reports whether n is principal.name.
func isPrincipalName(n xast.IsNode) bool {
	a, ok := n.(xast.NodeTypeAccess)
	if !ok || a.Value != "name" {
		return false
	}
	v, ok := a.Arg.(xast.NodeTypeVariable)
	return ok && v.Name == "principal"
}
