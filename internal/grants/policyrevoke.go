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
	"github.com/airlock-dev/airlock/internal/scope"
	"github.com/airlock-dev/airlock/internal/store"
)

// policyActor names the policy set as the one who ended a grant, as it
// names it for the decisions it makes on requests (grant.decided, an auto
// approval's grant.activated, a policy denial): no person did.
const policyActor = "policy"

// endRefused re-decides every pending request and active grant against
// set, just loaded (trigger: "start" or what reloaded it). A request that
// set no longer permits (a forbid matches it, no permit covers it any
// more, or a policy now names its API-added agent: whatever makes an
// approval refused, stillPermitted) is denied; a grant that a forbid in
// set now matches is revoked. An operator who adds a forbid during an
// incident expects the access it names to stop, sessions included;
// before, a grant already active ran on until it expired. A request that
// nobody may approve any more waited in every approver's queue (the
// console, `airlock pending`, Slack) as if it could be approved, refused
// only when someone tried, until its deadline cancelled it.
//
// A grant that set merely no longer permits (a permit withdrawn, no
// forbid) is left active: narrowing a permit affects new requests and
// approvals, a forbid stops what runs. A request that set would now
// approve without a person (its permit turned @approval("auto")) is left
// for a person too: a load only ever takes access away. Its requester
// asked, and its approvers may have looked at it and held back, under a
// set that wanted a person; activating it, and the whole backlog with it,
// on a reload meant to loosen new requests would hand out access nobody
// decided on. A person may still approve it; the requester may withdraw
// it and ask again, which the new set then approves at once.
//
// Requests first: one approved while this waited for its lock (under the
// set before, on a check that ran before the load) is active by the time
// the grants are listed, and is revoked with them if a forbid matches.
//
// A request or grant that the configuration refuses (its target removed,
// or a request longer than a lowered grants.max_duration: configRefusal)
// is ended first, by "config" (endByConfig), whatever the policies say.
// The configuration is read at start only, so that finds something only
// at start (or at the reload that retries a start's failed sweep).
//
// Among replicas each one runs this on its own reload; each end's
// transaction re-reads the grant, so the first replica records it and the
// others find it ended and write nothing.
func (s *Service) endRefused(ctx context.Context, set *policy.Set, trigger string) error {
	var errs []string
	for _, st := range []model.GrantStatus{model.Pending, model.Active} {
		// The records alone: what decides is the record, and each grant
		// ended is read again under its lock. With its usage, the sweep
		// read every session of every open grant on each reload.
		open, err := s.st.Grants(ctx, store.GrantFilter{Status: []model.GrantStatus{st}, RecordsOnly: true})
		if err != nil {
			return fmt.Errorf("reading the %s grants to check them against policy set %s: %w", st, set.Hash(), err)
		}
		for _, g := range open {
			var err error
			if why := s.configRefusal(g); why != "" {
				// Refused by the configuration this server started
				// with, whatever the policies say.
				err = s.endByConfig(ctx, g, why)
			} else if st == model.Pending {
				if dec, refused := s.refused(set, g); refused {
					err = s.denyByPolicy(ctx, g, dec, trigger)
				}
			} else if dec, ok := s.forbidden(set, g); ok {
				err = s.revokeByPolicy(ctx, g, dec, trigger)
			}
			if err != nil && !isConflict(err) {
				errs = append(errs, fmt.Sprintf("%s: %v", g.ID, err))
			}
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("ending requests and grants that policy set %s or the configuration no longer permits: %s", set.Hash(), strings.Join(errs, "; "))
	}
	return nil
}

// forbidden decides g's granted scope (a request's: its requested one)
// against set and reports whether an explicit forbid denies it (Decide
// lists the forbids of the denied pairs in PolicyIDs, none when a pair is
// merely not permitted). A grant whose identity or target is no longer
// configured is left alone: disabling an identity ends its grants (and
// requests) already, and endRefused ends those on a removed target first
// (configRefusal).
func (s *Service) forbidden(set *policy.Set, g model.Grant) (model.PolicyDecision, bool) {
	who, t, ok := s.configured(g)
	if !ok {
		return model.PolicyDecision{}, false
	}
	sc := g.GrantedScope
	if len(sc.Pairs()) == 0 {
		sc = g.RequestedScope
	}
	dec := decideAgain(set, who, t, sc.Pairs(), g)
	return dec, dec.Outcome == policy.OutcomeDeny && len(dec.PolicyIDs) > 0
}

// refused reports whether set refuses pending request g, as an approval
// under it would be refused (stillPermitted, which shares policyRefusal),
// with the decision that says why. A request whose identity or target is
// no longer configured is left alone, as forbidden leaves a grant.
func (s *Service) refused(set *policy.Set, g model.Grant) (model.PolicyDecision, bool) {
	who, t, ok := s.configured(g)
	if !ok {
		return model.PolicyDecision{}, false
	}
	return s.policyRefusal(set, who, t, g)
}

// configured looks up g's identity and target: not ok when either is no
// longer configured.
func (s *Service) configured(g model.Grant) (model.Identity, Target, bool) {
	who, ok := s.dir.Lookup(g.Identity)
	if !ok {
		return model.Identity{}, Target{}, false
	}
	t, ok := s.targets[g.Target]
	return who, t, ok
}

// policyRefusal decides pending request g of who on t against set, as a
// request made now would be, and reports whether set refuses it: a
// policy names who, an agent added through the API (the decision then
// names that policy), or the decision is deny (its forbids, or none when
// nothing permits a pair, or it waits for a person and no person may
// approve it: noApprover). A decision of auto or human is not a refusal.
func (s *Service) policyRefusal(set *policy.Set, who model.Identity, t Target, g model.Grant) (model.PolicyDecision, bool) {
	if id := namedAfterAdding(set, who); id != "" {
		return model.PolicyDecision{
			Outcome: policy.OutcomeDeny, PolicyIDs: []string{id}, PolicySetHash: set.Hash(),
			Explanation: fmt.Sprintf("policy %s names agent %s, which %s added through the API: an agent that policies name is defined in the configuration (airlock.yaml) by an operator",
				strconv.Quote(id), who.Name, who.CreatedBy),
		}, true
	}
	dec := s.noApprover(set, who, t, g.RequestedScope.Pairs(), g.Duration, g.Reason, decideAgain(set, who, t, g.RequestedScope.Pairs(), g))
	return dec, dec.Outcome == policy.OutcomeDeny
}

// decideAgain decides pairs of g (its identity who, on target t) against
// set, with g's duration and reason, as a request made now would be.
func decideAgain(set *policy.Set, who model.Identity, t Target, pairs []scope.Pair, g model.Grant) model.PolicyDecision {
	return set.Decide(policy.Request{
		Principal: principalOf(who),
		Target:    policy.Target{Name: t.Name, Account: t.Account},
		Pairs:     pairs, Duration: g.Duration, Reason: g.Reason,
	})
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
	// The record alone: nothing here needs its sessions' usage.
	g, err := s.st.GrantRecord(ctx, id)
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
	return fmt.Sprintf("forbidden by policy %s of policy set %s, loaded %s; no person %s it",
		strings.Join(quoted, ", "), dec.PolicySetHash, loadedWhen(trigger), verb)
}

// withdrawnComment is the end comment of a request denied because the set
// loaded by trigger no longer permits it, no forbid matching it (dec's
// explanation says what: the pair no policy permits any more, or the
// policy that names its API-added agent).
func withdrawnComment(dec model.PolicyDecision, trigger string) string {
	return fmt.Sprintf("no longer permitted by policy set %s, loaded %s: %s; no person denied it",
		dec.PolicySetHash, loadedWhen(trigger), dec.Explanation)
}

// loadedWhen says when a set loaded by trigger was loaded, for a comment.
func loadedWhen(trigger string) string {
	if trigger == "start" {
		return "at start"
	}
	return "on " + trigger
}

// byForbid reports whether dec denies because forbids match some of its
// pairs (rather than because nothing permits them any more, or because
// of who asked).
func byForbid(dec model.PolicyDecision) bool {
	for _, pd := range dec.Pairs {
		if !pd.Allowed && len(pd.Policies) > 0 {
			return true
		}
	}
	return false
}

// forbidEndEvent is the end entry of g, ended by the policy set loaded by
// trigger, which decided dec: the usual end entry (by "policy") with the
// deciding policy ids (the forbids; none when nothing permits it any
// more), the set's hash and what loaded it, which the grant's row does
// not hold.
func forbidEndEvent(g model.Grant, dec model.PolicyDecision, trigger string) auditlog.Event {
	ev := endEvent(g)
	d := ev.Data.(map[string]any)
	ids := dec.PolicyIDs
	if ids == nil {
		ids = []string{} // an array, as the decision's, never null
	}
	d["policy_ids"], d["policy_set_hash"], d["trigger"] = ids, dec.PolicySetHash, trigger
	return ev
}

// denyByPolicy denies pending request listed because the set loaded by
// trigger refuses it (dec: its forbids match it, or nothing permits it
// any more), as a denial by policy at the request is recorded: a
// grant.decided entry with the new decision (outcome deny, the forbidding
// policy ids or none, the set's hash), which becomes the request's
// decision, then grant.denied by "policy" at that decision's time. The review derives a
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
	// The record alone: nothing here needs its sessions' usage.
	g, err := s.st.GrantRecord(ctx, id)
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
	if !byForbid(dec) {
		comment = withdrawnComment(dec, trigger)
	}
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
	s.logger.Warn("request denied: the policies loaded no longer permit it", "grant", id, "identity", out.Identity, "target", out.Target,
		"policies", dec.PolicyIDs, "hash", dec.PolicySetHash, "trigger", trigger, "why", dec.Explanation)
	return nil
}
