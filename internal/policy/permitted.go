package policy

import (
	"slices"

	"github.com/cedar-policy/cedar-go/x/exp/ast"
)

// Permit describes one permit policy that may allow a principal's requests
// on a target: what list_targets (MCP) and GET /v1/targets show an agent so
// it can ask for something policy can grant.
type Permit struct {
	Policy string `json:"policy"`
	// Actions are the actions the policy's scope names; ["*"] when its scope
	// does not limit the action.
	Actions []string `json:"actions"`
	// Approval is "auto" (granted at once) or "human" (a person decides).
	Approval string `json:"approval"`
	// Conditional is true when the policy has when/unless conditions (on the
	// resource pattern, duration, reason...), so that not every request
	// within its actions is allowed.
	Conditional bool `json:"conditional"`
}

// Permitted lists the permit policies whose scope matches principal p and
// target t, in load order. It reads policy scopes only, never evaluates
// conditions and ignores forbid policies: it is a hint of what to ask for,
// and Decide remains the only authority.
func (s *Set) Permitted(p Principal, t Target) []Permit {
	env, err := s.entities(p, t)
	if err != nil {
		return nil
	}
	var out []Permit
	for _, m := range s.order {
		if m.forbid || !m.principal.matches(env) {
			continue
		}
		targets, actions := scopeSets(m.p)
		if targets != nil && !slices.Contains(targets, t.Name) {
			continue
		}
		if actions == nil {
			actions = []string{"*"}
		}
		actions = slices.DeleteFunc(slices.Clone(actions), func(a string) bool { return a == ApproveAction })
		if len(actions) == 0 {
			continue // an approve policy, not a request policy
		}
		out = append(out, Permit{
			Policy: string(m.id), Actions: actions, Approval: m.approval,
			Conditional: len((*ast.Policy)(m.p.AST()).Conditions) > 0,
		})
	}
	return out
}
