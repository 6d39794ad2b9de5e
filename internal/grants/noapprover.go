package grants

import (
	"fmt"
	"strings"
	"time"

	"github.com/airlock-dev/airlock/internal/model"
	"github.com/airlock-dev/airlock/internal/policy"
	"github.com/airlock-dev/airlock/internal/scope"
)

// noApprover turns dec, a decision that waits for a person, into a denial
// when no enabled person but the requester who (nor, for an agent added
// through the API, the person who added it and holds its key) may approve
// it under set: an approval is refused for everyone, so the request would
// wait in nobody's queue, and its requester (an agent waiting with
// --wait) would hear nothing until its deadline cancelled it. It is denied
// by policy, as a request no policy permits is, its explanation saying
// why. Any other decision is returned as is.
func (s *Service) noApprover(set *policy.Set, who model.Identity, t Target, pairs []scope.Pair, d time.Duration, reason string, dec model.PolicyDecision) model.PolicyDecision {
	if dec.Outcome != policy.OutcomeHuman {
		return dec
	}
	pt := policy.Target{Name: t.Name, Account: t.Account}
	for _, p := range s.dir.People() {
		if p.Name == who.Name || (who.Source == "api" && who.CreatedBy == p.Name) {
			continue
		}
		if ok, _, _ := set.MayApprove(principalOf(p), who.Name, pt, pairs, d, reason); ok {
			return dec
		}
	}
	out := dec
	out.Outcome = policy.OutcomeDeny
	out.PolicyIDs = nil // a denial's ids are the policies that refuse it: none does
	out.Explanation = fmt.Sprintf("no policy lets anyone approve this request: it waits for a person's approval (policy %s), and no approve policy permits any configured person other than %s to approve it on target %s",
		strings.Join(dec.PolicyIDs, ", "), who.Name, t.Name)
	return out
}
