package grants

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/airlock-dev/airlock/internal/auditlog"
	"github.com/airlock-dev/airlock/internal/model"
	"github.com/airlock-dev/airlock/internal/policy"
	"github.com/airlock-dev/airlock/internal/store"
)

// policyActor names the policy set as the one who ended a grant, as it
// names it for the decisions it makes on requests (grant.decided, an auto
// approval's grant.activated, a policy denial): no person did.
const policyActor = "policy"

// revokeForbidden re-decides every active grant against set, just loaded
// (trigger: "start" or what reloaded it), and revokes each one that a
// forbid in set now matches. An operator who adds a forbid during an
// incident expects the access it names to stop, sessions included; before,
// a grant already active ran on until it expired. A grant that set merely
// no longer permits (a permit withdrawn, no forbid) is left to end on its
// own: narrowing a permit affects new requests, a forbid stops what runs.
//
// Among replicas each one runs this on its own reload; the revoke's
// transaction re-reads the grant, so the first replica records it and the
// others find it ended and write nothing.
func (s *Service) revokeForbidden(ctx context.Context, set *policy.Set, trigger string) error {
	active, err := s.st.Grants(ctx, store.GrantFilter{Status: []model.GrantStatus{model.Active}})
	if err != nil {
		return fmt.Errorf("reading the active grants to check them against policy set %s: %w", set.Hash(), err)
	}
	var errs []string
	for _, g := range active {
		dec, ok := s.forbidden(set, g)
		if !ok {
			continue
		}
		if err := s.revokeByPolicy(ctx, g, dec, trigger); err != nil && !isConflict(err) {
			errs = append(errs, fmt.Sprintf("%s: %v", g.ID, err))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("revoking grants that policy set %s forbids: %s", set.Hash(), strings.Join(errs, "; "))
	}
	return nil
}

// forbidden decides g's granted scope against set and reports whether an
// explicit forbid denies it (Decide lists the forbids of the denied pairs
// in PolicyIDs, none when a pair is merely not permitted). A grant whose
// identity or target is no longer configured is left alone: disabling an
// identity ends its grants already, and no gateway serves a removed target.
func (s *Service) forbidden(set *policy.Set, g model.Grant) (model.PolicyDecision, bool) {
	who, ok := s.dir.Lookup(g.Identity)
	if !ok {
		return model.PolicyDecision{}, false
	}
	t, ok := s.targets[g.Target]
	if !ok {
		return model.PolicyDecision{}, false
	}
	sc := g.GrantedScope
	if len(sc.Pairs()) == 0 {
		sc = g.RequestedScope
	}
	dec := set.Decide(policy.Request{
		Principal: principalOf(who),
		Target:    policy.Target{Name: t.Name, Account: t.Account},
		Pairs:     sc.Pairs(), Duration: g.Duration, Reason: g.Reason,
	})
	return dec, dec.Outcome == policy.OutcomeDeny && len(dec.PolicyIDs) > 0
}

// revokeByPolicy revokes active grant listed because the forbids of dec
// match it: as a person's revoke does (cut off first, so no call slips
// through while the record commits; kept cut off and recorded later if the
// log cannot be written; its extensions ended with it), recorded with the
// policy set as the actor, the forbidding policy ids and the set's hash.
func (s *Service) revokeByPolicy(ctx context.Context, listed model.Grant, dec model.PolicyDecision, trigger string) error {
	out, err := s.revokeByPolicyLocked(ctx, listed, dec, trigger)
	if err != nil || out.ID == "" {
		return err
	}
	return s.endExtensions(context.WithoutCancel(ctx), model.Identity{Name: policyActor}, out)
}

func (s *Service) revokeByPolicyLocked(ctx context.Context, listed model.Grant, dec model.PolicyDecision, trigger string) (model.Grant, error) {
	id := listed.ID
	unlock := s.lock(id)
	defer unlock()
	// Re-read under the lock: the listing may be stale, and another
	// replica may have revoked it first.
	g, err := s.st.Grant(ctx, id)
	if err != nil {
		return model.Grant{}, err
	}
	if g.Status != model.Active {
		return model.Grant{}, nil
	}
	now := s.now()
	if err := s.settleLapsed(ctx, g, now, "revoke"); err != nil {
		if isConflict(err) {
			return model.Grant{}, nil // it expired first
		}
		return model.Grant{}, err
	}
	s.cutOff(id, "revoked")
	quoted := make([]string, len(dec.PolicyIDs))
	for i, p := range dec.PolicyIDs {
		quoted[i] = strconv.Quote(p)
	}
	when := "on " + trigger
	if trigger == "start" {
		when = "at start"
	}
	comment := fmt.Sprintf("forbidden by policy %s of policy set %s, loaded %s; no person revoked it",
		strings.Join(quoted, ", "), dec.PolicySetHash, when)
	ids := dec.PolicyIDs
	record := func(ctx context.Context) (model.Grant, error) {
		return s.transition(ctx, "revoke", id, []model.GrantStatus{model.Active}, func(g *model.Grant) ([]auditlog.Event, error) {
			g.Status, g.EndedAt, g.EndReason, g.EndedBy, g.EndComment = model.Revoked, endAt(now, g), "revoked", policyActor, comment
			ev := endEvent(*g)
			d := ev.Data.(map[string]any)
			d["policy_ids"], d["policy_set_hash"], d["trigger"] = ids, dec.PolicySetHash, trigger
			return []auditlog.Event{ev}, nil
		})
	}
	out, err := record(ctx)
	if err != nil {
		if isConflict(err) {
			// Ended meanwhile (another replica's revoke): it is cut off
			// here too, as its record says.
			return model.Grant{}, nil
		}
		return out, s.keepCutOff(id, "revoke", err, record)
	}
	s.stopTimer(id)
	s.notify(id)
	s.logger.Warn("grant revoked: a policy now forbids it", "grant", id, "identity", out.Identity, "target", out.Target,
		"policies", ids, "hash", dec.PolicySetHash, "trigger", trigger)
	return out, nil
}
