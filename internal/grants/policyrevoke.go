package grants

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/airlock-dev/airlock/internal/apierr"
	"github.com/airlock-dev/airlock/internal/auditlog"
	"github.com/airlock-dev/airlock/internal/model"
	"github.com/airlock-dev/airlock/internal/policy"
	"github.com/airlock-dev/airlock/internal/store"
)

// policyActor names the policy set as the one who ended a grant, as it
// names it for the decisions it makes on requests (grant.decided, an auto
// approval's grant.activated, a policy denial): no person did.
const policyActor = "policy"

// endForbidden re-decides every pending request and active grant against
// set, just loaded (trigger: "start" or what reloaded it), and ends each
// one that a forbid in set now matches: a request is denied, a grant
// revoked. An operator who adds a forbid during an incident expects the
// access it names to stop, sessions included; before, a grant already
// active ran on until it expired, and a request waited in every
// approver's queue (the console, `airlock pending`, Slack) as if it could
// be approved, refused only when someone tried, until its deadline
// cancelled it. A request or grant that set merely no longer permits (a
// permit withdrawn, no forbid) is left alone: narrowing a permit affects
// new requests and approvals, a forbid stops what is asked for or runs.
//
// Requests first: one approved while this waited for its lock (under the
// set before, on a check that ran before the load) is active by the time
// the grants are listed, and is revoked with them.
//
// Among replicas each one runs this on its own reload; each end's
// transaction re-reads the grant, so the first replica records it and the
// others find it ended and write nothing.
func (s *Service) endForbidden(ctx context.Context, set *policy.Set, trigger string) error {
	var errs []string
	for _, st := range []model.GrantStatus{model.Pending, model.Active} {
		open, err := s.st.Grants(ctx, store.GrantFilter{Status: []model.GrantStatus{st}})
		if err != nil {
			return fmt.Errorf("reading the %s grants to check them against policy set %s: %w", st, set.Hash(), err)
		}
		for _, g := range open {
			dec, ok := s.forbidden(set, g)
			if !ok {
				continue
			}
			end := s.revokeByPolicy
			if st == model.Pending {
				end = s.denyByPolicy
			}
			if err := end(ctx, g, dec, trigger); err != nil && !isConflict(err) {
				errs = append(errs, fmt.Sprintf("%s: %v", g.ID, err))
			}
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("ending requests and grants that policy set %s forbids: %s", set.Hash(), strings.Join(errs, "; "))
	}
	return nil
}

// forbidden decides g's granted scope (a request's: its requested one)
// against set and reports whether an explicit forbid denies it (Decide
// lists the forbids of the denied pairs in PolicyIDs, none when a pair is
// merely not permitted). A grant whose identity or target is no longer
// configured is left alone: disabling an identity ends its grants (and
// requests) already, and no gateway serves a removed target.
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
	comment := forbidComment(dec, trigger, "revoked")
	ids := dec.PolicyIDs
	record := func(ctx context.Context) (model.Grant, error) {
		return s.transition(ctx, "revoke", id, []model.GrantStatus{model.Active}, func(g *model.Grant) ([]auditlog.Event, error) {
			g.Status, g.EndedAt, g.EndReason, g.EndedBy, g.EndComment = model.Revoked, endAt(now, g), "revoked", policyActor, comment
			return []auditlog.Event{forbidEndEvent(*g, dec, trigger)}, nil
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

// forbidComment is the end comment of a request denied (verb) or a grant
// revoked because the forbids of dec, in the set loaded by trigger, match
// it: what `airlock grants`, `grant show` and the console show as why.
func forbidComment(dec model.PolicyDecision, trigger, verb string) string {
	quoted := make([]string, len(dec.PolicyIDs))
	for i, p := range dec.PolicyIDs {
		quoted[i] = strconv.Quote(p)
	}
	when := "on " + trigger
	if trigger == "start" {
		when = "at start"
	}
	return fmt.Sprintf("forbidden by policy %s of policy set %s, loaded %s; no person %s it",
		strings.Join(quoted, ", "), dec.PolicySetHash, when, verb)
}

// forbidEndEvent is the end entry of g, ended by the policy set because
// the forbids of dec match it: the usual end entry (by "policy") with the
// forbidding policy ids, the set's hash and what loaded it, which the
// grant's row does not hold.
func forbidEndEvent(g model.Grant, dec model.PolicyDecision, trigger string) auditlog.Event {
	ev := endEvent(g)
	d := ev.Data.(map[string]any)
	d["policy_ids"], d["policy_set_hash"], d["trigger"] = dec.PolicyIDs, dec.PolicySetHash, trigger
	return ev
}

// denyByPolicy denies pending request listed because the forbids of dec
// match it, as a denial by policy at the request is recorded: a
// grant.decided entry with the new decision (outcome deny, the forbidding
// policy ids, the set's hash), which becomes the request's decision, then
// grant.denied by "policy" at that decision's time. The review derives a
// policy denial's end and decision time from the last decision
// (docs/evidence-bundle.md), so the rows an auditor derives from the log
// match the stored ones without a rule of their own. The denial entry
// also carries the policy ids, the set's hash and the trigger, as a
// revocation by policy does.
func (s *Service) denyByPolicy(ctx context.Context, listed model.Grant, dec model.PolicyDecision, trigger string) error {
	id := listed.ID
	unlock := s.lock(id)
	defer unlock()
	// Re-read under the lock: the listing may be stale, another replica
	// may have denied it first, or a person decided it meanwhile (an
	// approval is the active sweep's, which follows).
	g, err := s.st.Grant(ctx, id)
	if err != nil {
		return err
	}
	if g.Status != model.Pending {
		return nil
	}
	if err := s.settleLapsed(ctx, g, s.now(), "deny"); err != nil {
		if isConflict(err) {
			return nil // its deadline passed first: cancelled
		}
		return err
	}
	comment := forbidComment(dec, trigger, "denied")
	out, err := s.transitionTx(ctx, "deny", id, []model.GrantStatus{model.Pending}, func(ctx context.Context, tx store.Tx, g *model.Grant) ([]auditlog.Event, error) {
		// The database's time among replicas, as a person's decision
		// and the request's own decision are recorded.
		now, err := s.txNow(ctx, tx)
		if err != nil {
			return nil, err
		}
		if !now.Before(g.DecideBy) {
			// Overdue by the shared clock: its deadline's timer cancels it.
			return nil, apierr.Conflict("grant %s passed its decision deadline (%s)", g.ID, g.DecideBy.Format(time.RFC3339))
		}
		d := dec
		d.At = endAt(now, g)
		g.Decision = d
		g.Status, g.DecidedAt, g.EndedAt = model.Denied, d.At, d.At
		g.EndReason, g.EndedBy, g.EndComment = "denied", policyActor, comment
		return []auditlog.Event{
			{Type: "grant.decided", Time: d.At, GrantID: g.ID, Actor: policyActor, Data: d},
			forbidEndEvent(*g, d, trigger),
		}, nil
	})
	if err != nil {
		return err
	}
	s.stopTimer(id)
	s.notify(id)
	s.logger.Warn("request denied: a policy now forbids it", "grant", id, "identity", out.Identity, "target", out.Target,
		"policies", dec.PolicyIDs, "hash", dec.PolicySetHash, "trigger", trigger)
	return nil
}
