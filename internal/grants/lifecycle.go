package grants

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/airlock-dev/airlock/internal/apierr"
	"github.com/airlock-dev/airlock/internal/auditlog"
	"github.com/airlock-dev/airlock/internal/gateway"
	"github.com/airlock-dev/airlock/internal/model"
	"github.com/airlock-dev/airlock/internal/policy"
	"github.com/airlock-dev/airlock/internal/scope"
	"github.com/airlock-dev/airlock/internal/store"
)

// MaxReasonLength bounds free-text reasons and comments.
const MaxReasonLength = 1024

// RequestInput is a request for a grant, as the API receives it.
type RequestInput struct {
	Target   string   `json:"target"`
	Scope    []string `json:"scope"`
	Duration string   `json:"duration"`
	Reason   string   `json:"reason"`
	Extends  string   `json:"extends,omitempty"`
}

// MaxPendingPerIdentity bounds the requests of one identity that wait
// for approval at once: more are refused (429) until some are decided,
// withdrawn or time out (see SetMaxPending).
const MaxPendingPerIdentity = 32

// SetMaxPending changes the bound on one identity's requests waiting for
// approval (MaxPendingPerIdentity unless set), for a test that needs a
// longer queue from one identity. n < 1 is taken as 1.
func (s *Service) SetMaxPending(n int) { s.maxPending.Store(int64(max(n, 1))) }

// pendingLock prefixes the lock key under which an identity's requests
// that wait for a person are counted and created.
const pendingLock = "pending-requests:"

// Request validates in, asks policy, and records the new grant: active if
// policy approves it outright, pending if a person must, denied otherwise.
// Invalid input creates nothing.
func (s *Service) Request(ctx context.Context, caller model.Identity, in RequestInput) (model.Grant, error) {
	var set *policy.Set
	g, err := s.request(ctx, caller, in, &set)
	if err != nil || set == nil {
		return g, err
	}
	return s.decidedBeforeLoad(ctx, g, set), nil
}

// request makes the request; *used is the policy set that decided it.
func (s *Service) request(ctx context.Context, caller model.Identity, in RequestInput, used **policy.Set) (model.Grant, error) {
	// The caller authenticated a moment ago; if it was disabled since, stop
	// here rather than hand it a grant that DisableAgent has already swept for.
	if cur, ok := s.dir.Lookup(caller.Name); !ok || cur.Disabled {
		return model.Grant{}, apierr.Forbidden("", "identity %s is disabled", caller.Name)
	}
	t, ok := s.targets[in.Target]
	if in.Target == "" {
		return model.Grant{}, apierr.Invalid("target", "a target is required")
	}
	if !ok {
		return model.Grant{}, apierr.Invalid("target", "unknown target %s", apierr.Quote(in.Target))
	}
	sc, err := parseScope(in.Scope)
	if err == nil {
		err = scope.ValidateFor(t.Kind, sc)
	}
	if err == nil && t.Kind == "postgres" && t.Database != "" {
		err = checkDatabase(t, sc)
	}
	if err != nil {
		return model.Grant{}, scopeInvalid(err)
	}
	d, err := s.parseDuration(in.Duration)
	if err != nil {
		return model.Grant{}, err
	}
	reason, err := checkText("reason", in.Reason, s.reason)
	if err != nil {
		return model.Grant{}, err
	}
	if in.Extends != "" {
		// The record alone (no usage): its holder, target and status.
		prev, err := s.st.GrantRecord(ctx, in.Extends)
		switch {
		case errors.Is(err, store.ErrNotFound):
			return model.Grant{}, apierr.Invalid("extends", "no grant %s", apierr.Quote(in.Extends))
		case err != nil:
			return model.Grant{}, err
		case prev.Identity != caller.Name:
			// Another's grant answers as a missing one does: ids cannot be probed.
			return model.Grant{}, apierr.Invalid("extends", "no grant %s", apierr.Quote(in.Extends))
		case prev.Target != t.Name:
			return model.Grant{}, apierr.Invalid("extends", "grant %s is for target %s, not %s", in.Extends, prev.Target, t.Name)
		case prev.Status != model.Active:
			return model.Grant{}, apierr.Invalid("extends", "grant %s is %s; only an active grant can be extended", in.Extends, prev.Status)
		}
	}

	set := s.pol.Current()
	*used = set
	if id := namedAfterAdding(set, caller); id != "" {
		return model.Grant{}, apierr.Forbidden("", "policy %s names agent %s, which %s added through the API: an agent that policies name is defined in the configuration (airlock.yaml) by an operator", apierr.Quote(id), caller.Name, caller.CreatedBy)
	}
	dec := s.noApprover(set, caller, t, sc.Pairs(), d, reason, set.Decide(policy.Request{
		Principal: principalOf(caller),
		Target:    policy.Target{Name: t.Name, Account: t.Account},
		Pairs:     sc.Pairs(), Duration: d, Reason: reason,
	}))
	if dec.Outcome == policy.OutcomeHuman {
		// A request that waits for a person goes to every approver's
		// queue (and to Slack): an identity's open requests are bounded,
		// so that an agent in a loop cannot bury the queue, or wear
		// approvers down until one clicks Approve. Counted under a lock
		// of the identity's, so that concurrent requests on this replica
		// cannot all pass the count at once.
		unlock := s.lock(pendingLock + caller.Name)
		defer unlock()
		limit := int(s.maxPending.Load())
		open, err := s.st.Grants(ctx, store.GrantFilter{Identity: caller.Name, Status: []model.GrantStatus{model.Pending}, Limit: limit, RecordsOnly: true})
		if err != nil {
			return model.Grant{}, s.logErr("the request", err)
		}
		if len(open) >= limit {
			return model.Grant{}, apierr.TooMany("identity %s already has %d requests waiting for approval; withdraw some (airlock end GRANT) or wait for decisions", caller.Name, len(open))
		}
	}
	id := newID("g_")
	// build makes the grant and its entries as of now: the time read in
	// the transaction that records them (see txNow).
	build := func(now time.Time) (model.Grant, []auditlog.Event) {
		dec := dec
		dec.At = now
		g := model.Grant{
			ID: id, Identity: caller.Name, IdentityKind: caller.Kind, Owner: caller.Owner,
			Target: t.Name, TargetKind: t.Kind, Account: t.Account,
			RequestedScope: sc, Reason: reason, Duration: d, Extends: in.Extends,
			Status: model.Pending, RequestedAt: now, DecideBy: now.Add(s.pending), Decision: dec,
			Auth: caller.Auth, RequestedFrom: caller.Instance,
		}
		requested := map[string]any{
			"identity": caller.Name, "identity_kind": caller.Kind, "owner": caller.Owner,
			"target": t.Name, "target_kind": t.Kind, "account": t.Account, "scope": sc.Strings(),
			"duration": d.String(), "reason": reason, "extends": in.Extends, "decide_by": g.DecideBy,
		}
		// How the requester authenticated and from where; absent for callers
		// inside the process (tests, the demo), so older entries read the same.
		if g.Auth != "" {
			requested["auth"] = g.Auth
		}
		if g.RequestedFrom != nil {
			requested["requested_from"] = g.RequestedFrom
		}
		var shared []auditlog.Event
		if f := s.sharedAtRequest(caller, g); f != nil {
			g.Findings = append(g.Findings, *f)
			shared = append(shared, auditlog.Event{Type: "finding", Time: now, GrantID: g.ID, Actor: "airlock", Data: *f})
		}
		events := []auditlog.Event{
			// Entry times are the record's own times, so that the review can
			// be derived from the log (internal/review.Deriver).
			{Type: "grant.requested", Time: now, GrantID: g.ID, Actor: caller.Name, Data: requested},
			{Type: "grant.decided", Time: now, GrantID: g.ID, Actor: "policy", Data: dec},
		}
		events = append(events, shared...)
		switch dec.Outcome {
		case "auto":
			g.DecidedAt = now
			s.activate(&g, now)
			events = append(events, activatedEvent(g, "policy"))
		case "human":
			// waits for a person; armCancel below
		default:
			g.Status, g.DecidedAt, g.EndedAt = model.Denied, now, now
			g.EndReason, g.EndedBy, g.EndComment = "denied", "policy", dec.Explanation
			events = append(events, auditlog.Event{Type: "grant.denied", Time: now, GrantID: g.ID, Actor: "policy", Data: map[string]any{"by": "policy", "reason": dec.Explanation}})
		}
		return g, events
	}

	unlock := s.lock(id)
	defer unlock()
	if s.beforeRequestWrite != nil {
		s.beforeRequestWrite()
	}
	gen := s.rep.rereads.Load()
	var g model.Grant
	var events []auditlog.Event
	err = s.log.Do(ctx, func(ctx context.Context, tx store.Tx) ([]auditlog.Event, error) {
		// Checked again in the transaction that creates the grant: the
		// directory may not yet know of a disable committed meanwhile (on
		// another replica, or between the check above and here), whose
		// sweep of the agent's grants then never sees this one.
		if cur, err := tx.Identity(ctx, caller.Name); err == nil && cur.Disabled {
			return nil, apierr.Forbidden("", "identity %s is disabled", caller.Name)
		} else if err != nil && !errors.Is(err, store.ErrNotFound) {
			return nil, err
		}
		// The grant extended is read again here too: a revoke committed
		// since the check above (on another replica, or while policy
		// decided) has already ended the extensions it found, and must
		// not miss this one (see endExtensions). Its status alone, where
		// the store can (both stores): Grant sums the usage of every
		// session of the grant, here in the log's writer.
		if in.Extends != "" {
			var status model.GrantStatus
			var err error
			if gs, ok := tx.(store.GrantStatusTx); ok {
				status, err = gs.GrantStatus(ctx, in.Extends)
			} else {
				var prev model.Grant
				prev, err = tx.Grant(ctx, in.Extends)
				status = prev.Status
			}
			if err != nil {
				return nil, err
			}
			if status != model.Active {
				return nil, apierr.Invalid("extends", "grant %s is %s; only an active grant can be extended", in.Extends, status)
			}
		}
		now, err := s.txNow(ctx, tx)
		if err != nil {
			return nil, err
		}
		g, events = build(now)
		if err := tx.CreateGrant(ctx, g); err != nil {
			return nil, err
		}
		return events, s.notifyChange(ctx, tx, g.ID)
	})
	if err != nil {
		return model.Grant{}, s.logErr("the request", err)
	}
	s.changed(events, g)
	switch g.Status {
	case model.Active:
		s.activateInMemory(g)
		s.recheck(ctx, g.ID, gen)
	case model.Pending:
		s.armCancel(g)
	}
	s.logger.Info("grant requested", "grant", g.ID, "identity", g.Identity, "target", g.Target, "status", g.Status, "policies", dec.PolicyIDs)
	return g, nil
}

// parseDuration reads a request's duration (parseDurationSyntax) and
// refuses one longer than grants.max_duration.
func (s *Service) parseDuration(v string) (time.Duration, error) {
	d, err := parseDurationSyntax(v)
	if err != nil {
		return 0, err
	}
	if d > s.maxDur {
		return 0, apierr.Invalid("duration", "%s exceeds the cap of %s", d, s.maxDur)
	}
	return d, nil
}

// parseDurationSyntax reads a request's duration, a positive Go duration,
// whatever the server's cap on it.
func parseDurationSyntax(v string) (time.Duration, error) {
	if strings.TrimSpace(v) == "" {
		return 0, apierr.Invalid("duration", "a duration is required (a Go duration such as 10m or 2h)")
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, apierr.Invalid("duration", "%s is not a duration (use a Go duration such as 90s, 10m or 2h)", apierr.Quote(v))
	}
	if d <= 0 {
		return 0, apierr.Invalid("duration", "must be positive, got %s", apierr.Quote(v))
	}
	return d, nil
}

// checkText trims and bounds a free-text field, and refuses control
// characters but the tab: C0, DEL and the C1 controls (U+0080–U+009F, CSI
// U+009B and NEL U+0085 among them), which a terminal may act on and which
// have no place in a one-line reason. Only C0 was refused, so DEL and C1
// reached the log. Bidirectional controls stay allowed: a reason may be in
// a right-to-left script, and every human output escapes them (textesc).
func checkText(field, v string, required bool) (string, error) {
	v = strings.TrimSpace(v)
	if required && v == "" {
		return "", apierr.Invalid(field, "a %s is required", field)
	}
	if len(v) > MaxReasonLength {
		return "", apierr.Invalid(field, "longer than %d bytes", MaxReasonLength)
	}
	for _, r := range v {
		if (r < 0x20 && r != '\t') || (r >= 0x7f && r <= 0x9f) {
			return "", apierr.Invalid(field, "contains control characters (U+%04X)", r)
		}
	}
	return v, nil
}

// activate turns g active at now: granted scope, window and credential.
func (s *Service) activate(g *model.Grant, now time.Time) {
	g.Status = model.Active
	g.StartedAt = now
	g.ExpiresAt = now.Add(g.Duration)
	g.GrantedScope = g.RequestedScope
	g.CredentialID = newCredentialID()
	g.CredentialFingerprint = fingerprint(s.secretFor(g.CredentialID))
}

func activatedEvent(g model.Grant, by string) auditlog.Event {
	return auditlog.Event{Type: "grant.activated", Time: g.StartedAt, GrantID: g.ID, Actor: by, Data: map[string]any{
		"granted_scope": g.GrantedScope.Strings(), "started_at": g.StartedAt, "expires_at": g.ExpiresAt,
		"credential_id": g.CredentialID, "credential_fingerprint": g.CredentialFingerprint,
	}}
}

// activateInMemory publishes an active grant to the gateways and arms its expiry.
func (s *Service) activateInMemory(g model.Grant) {
	gg := gateway.NewGrant(gateway.Info{
		ID: g.ID, Identity: g.Identity, Owner: g.Owner, Target: g.Target, TargetKind: g.TargetKind,
		Account: g.Account, Scope: g.GrantedScope, ExpiresAt: g.ExpiresAt,
		CredentialID: g.CredentialID, Secret: s.secretFor(g.CredentialID),
		SessionToken: s.sessionTokenFor(g.CredentialID),
	})
	s.auth.Add(gg, g.RequestedFrom)
	s.rep.forgetMiss(g.CredentialID)
	id := g.ID
	s.setTimer(id, g.ExpiresAt, s.retrying(id, "expiring grant", s.expire))
	s.notify(id)
}

// retrying returns a timer function that runs fn for grant id and, if the
// record cannot be written (the log is unavailable), tries again with
// backoff up to a minute apart until it succeeds or the service closes.
// The grant is already cut off in memory by then; this is about the record.
func (s *Service) retrying(id, what string, fn func(context.Context, string) error) func() {
	delay := time.Second
	var attempt func()
	attempt = func() {
		err := fn(context.Background(), id)
		if err == nil {
			return
		}
		s.logger.Error(what+"; will retry", "grant", id, "err", err, "retry_in", delay)
		s.setTimer(id, s.now().Add(delay), attempt)
		delay = min(2*delay, time.Minute)
	}
	return attempt
}

func (s *Service) armCancel(g model.Grant) {
	id := g.ID
	s.setTimer(id, g.DecideBy, s.retrying(id, "cancelling overdue request", s.cancelOverdue))
}

// transition applies change to grant id inside a group-committed
// transaction, after checking it is in one of the from states. It returns
// the grant as committed.
func (s *Service) transition(ctx context.Context, op, id string, from []model.GrantStatus, change func(g *model.Grant) ([]auditlog.Event, error)) (model.Grant, error) {
	return s.transitionTx(ctx, op, id, from, func(_ context.Context, _ store.Tx, g *model.Grant) ([]auditlog.Event, error) {
		return change(g)
	})
}

// transitionTx is transition with the transaction handed to change.
//
// The grant is read in the log's writer as its record alone, its Usage
// zero (grantRecord): Grant sums the usage over every session of the
// grant, and a revoke or end of a grant of thousands of sessions read
// them all there while every gateway's records waited (bench/HISTORY.md,
// "A grant's transitions read no sessions in the log's writer"). Nothing
// written depends on it: UpdateGrant ignores Usage, no entry carries it.
// The grant returned, and the one the watchers are told of, is the record
// as committed, its Usage zero; a caller that answers with the usage
// reads it after the commit (withUsage: Revoke, End).
func (s *Service) transitionTx(ctx context.Context, op, id string, from []model.GrantStatus, change func(ctx context.Context, tx store.Tx, g *model.Grant) ([]auditlog.Event, error)) (model.Grant, error) {
	var out model.Grant
	var committed []auditlog.Event
	err := s.log.Do(ctx, func(ctx context.Context, tx store.Tx) ([]auditlog.Event, error) {
		g, err := grantRecord(ctx, tx, id)
		if errors.Is(err, store.ErrNotFound) {
			return nil, apierr.NotFound("no grant %s", apierr.Quote(id))
		}
		if err != nil {
			return nil, err
		}
		if !statusIn(g.Status, from) {
			return nil, apierr.Conflict("grant %s is %s; cannot %s it", id, g.Status, op)
		}
		events, err := change(ctx, tx, &g)
		if err != nil {
			return nil, err
		}
		if err := tx.UpdateGrant(ctx, g); err != nil {
			return nil, err
		}
		if err := s.notifyChange(ctx, tx, id); err != nil {
			return nil, err
		}
		out = g
		committed = events
		return events, nil
	})
	if err != nil {
		return model.Grant{}, s.logErr(op, err)
	}
	s.changed(committed, out)
	return out, nil
}

// withUsage fills in the usage of g, an active grant that a revoke or end
// has just ended and committed (transitionTx), from the store, outside
// the log's writer: what the caller is answered with, as before. The end
// is committed whatever this read does: if it fails, g is answered with
// its usage zero and the failure logged, not the caller told that a
// committed revoke or end failed. No read once ctx has ended: nobody
// waits for the answer then.
func (s *Service) withUsage(ctx context.Context, g model.Grant) model.Grant {
	if ctx.Err() != nil {
		return g
	}
	cur, err := s.st.Grant(ctx, g.ID)
	if err != nil {
		s.logger.Warn("reading an ended grant's usage for the answer; answering without it", "grant", g.ID, "err", err)
		return g
	}
	g.Usage = cur.Usage
	return g
}

func statusIn(s model.GrantStatus, set []model.GrantStatus) bool {
	for _, x := range set {
		if s == x {
			return true
		}
	}
	return false
}

func endEvent(g model.Grant) auditlog.Event {
	d := map[string]any{"at": g.EndedAt, "by": g.EndedBy, "reason": g.EndComment, "status": g.Status}
	// The credential a person denied or revoked with: an auditor must be
	// able to tell which one ended it (model.SignIn).
	if g.EndedAuth != nil {
		d["auth"] = g.EndedAuth
	}
	return auditlog.Event{Type: "grant." + g.EndReason, Time: g.EndedAt, GrantID: g.ID, Actor: g.EndedBy, Data: d}
}

// mayDecide checks that caller is a person, not the requester, and permitted
// by an approve policy for every pair of g.
func (s *Service) mayDecide(caller model.Identity, g model.Grant, verb string) ([]string, string, error) {
	if caller.Kind != model.Human {
		return nil, "", apierr.Forbidden("", "only a person can %s a grant; %s is an agent", verb, caller.Name)
	}
	if caller.Name == g.Identity {
		return nil, "", apierr.Forbidden(apierr.CodeSelfApproval, "nobody may %s their own grant", verb)
	}
	if req, ok := s.dir.Lookup(g.Identity); verb == "approve" && ok && req.Kind == model.Agent && req.Source == "api" && req.CreatedBy == caller.Name {
		// POST /v1/agents handed the caller this agent's only key: its
		// request is the caller's own, and approving it would let one
		// person grant themselves access through an agent they hold.
		// Denying or revoking it takes access away, so that stays open.
		return nil, "", apierr.Forbidden(apierr.CodeSelfApproval, "nobody may approve their own request: %s added agent %s and holds its key; another person must approve", caller.Name, g.Identity)
	}
	set := s.pol.Current()
	t := s.targets[g.Target]
	ok, pols, why := set.MayApprove(principalOf(caller), g.Identity, policy.Target{Name: t.Name, Account: t.Account}, g.RequestedScope.Pairs(), g.Duration, g.Reason)
	if !ok {
		return nil, "", apierr.Forbidden("", "%s may not %s grants on %s: %s", caller.Name, verb, g.Target, why)
	}
	return pols, set.Hash(), nil
}

// stillPermitted checks that the policies in force now still let g's
// requester ask for it (auto or human): a person approves what policy
// permits, not what it permitted when the request was made. Without it, a
// permit withdrawn (or a forbid added) by a reload during an incident
// still let an approver activate the requests made before it. The load
// denies such requests itself now (endRefused), and a start those whose
// target the configuration removed (configRefusal); this stays for the
// ones they missed.
func (s *Service) stillPermitted(g model.Grant) error {
	who, ok := s.dir.Lookup(g.Identity)
	if !ok || who.Disabled {
		return apierr.Conflict("grant %s was requested by %s, which is no longer an active identity; deny it", g.ID, g.Identity)
	}
	t, ok := s.targets[g.Target]
	if !ok {
		// Removed from the configuration since the request: policies that
		// name no target (resource unconstrained) would still permit it,
		// and the grant would go active on a target nothing serves.
		return apierr.Conflict("grant %s is for target %s, which is no longer configured; deny it", g.ID, g.Target)
	}
	set := s.pol.Current()
	if id := namedAfterAdding(set, who); id != "" {
		return apierr.Conflict("grant %s was requested by %s, which %s added through the API, and policy %s names it: an agent that policies name is defined in the configuration; deny it", g.ID, g.Identity, who.CreatedBy, apierr.Quote(id))
	}
	// The same refusal that denies the request at a load (endRefused):
	// found here only when the load's sweep, or the request's own check
	// against a load that passed it by (decidedBeforeLoad), failed.
	if dec, refused := s.policyRefusal(set, who, t, g); refused {
		return apierr.Conflict("grant %s is no longer permitted by the policies in force (set %s): %s; deny it, and the requester may ask again", g.ID, dec.PolicySetHash, dec.Explanation)
	}
	return nil
}

// getForDecision reads a grant for a decision. An agent is refused before
// the lookup, and may only see its own grants, so neither answer reveals
// whether another agent's grant id exists. The record alone, its usage
// zero: the checks before a decision, revoke or end read the grant's
// holder, target, scope, status and times, and Grant summed the usage of
// every session of a grant being revoked for none of them.
func (s *Service) getForDecision(ctx context.Context, caller model.Identity, id, verb string) (model.Grant, error) {
	if verb != "end" && caller.Kind != model.Human {
		return model.Grant{}, apierr.Forbidden("", "only a person can %s a grant; %s is an agent", verb, caller.Name)
	}
	g, err := s.st.GrantRecord(ctx, id)
	if errors.Is(err, store.ErrNotFound) || (err == nil && !canSee(caller, g.Identity)) {
		return model.Grant{}, apierr.NotFound("no grant %s", apierr.Quote(id))
	}
	return g, err
}

// Approve activates a pending grant on a permitted person's say-so.
func (s *Service) Approve(ctx context.Context, caller model.Identity, id, comment string) (model.Grant, error) {
	gen := s.rep.rereads.Load()
	out, err := s.decidePending(ctx, caller, id, "approve", "comment", comment, false,
		func(g *model.Grant, a model.Approval) []auditlog.Event {
			s.activate(g, a.At)
			return []auditlog.Event{
				{Type: "grant.approved", Time: a.At, GrantID: g.ID, Actor: caller.Name, Data: approvedData{a, caller.Instance}},
				activatedEvent(*g, caller.Name),
			}
		},
		func(out model.Grant) {
			s.activateInMemory(out)
			s.recheck(ctx, out.ID, gen)
			s.logger.Info("grant approved", "grant", id, "approver", caller.Name)
		})
	return out, s.refusedDecision(ctx, caller, "approve", id, err)
}

// Deny refuses a pending grant.
func (s *Service) Deny(ctx context.Context, caller model.Identity, id, reason string) (model.Grant, error) {
	out, err := s.decidePending(ctx, caller, id, "deny", "reason", reason, true,
		func(g *model.Grant, a model.Approval) []auditlog.Event {
			g.Status, g.EndedAt = model.Denied, a.At
			g.EndReason, g.EndedBy, g.EndComment, g.EndedAuth = "denied", caller.Name, a.Comment, caller.SignIn
			ev := endEvent(*g)
			// The person's decision is part of the record; the review derives it from here.
			ev.Data.(map[string]any)["approval"] = a
			return []auditlog.Event{fromCaller(ev, caller)}
		},
		func(model.Grant) { s.notify(id) })
	return out, s.refusedDecision(ctx, caller, "deny", id, err)
}

// decidePending runs a person's decision on a pending grant: the text
// check, the grant lock, the permission check, settling a request whose
// deadline already passed, and the recorded transition. apply completes the
// grant for this decision and returns its log events; after runs once the
// decision is committed, still under the grant's lock.
func (s *Service) decidePending(ctx context.Context, caller model.Identity, id, verb, field, text string, required bool,
	apply func(g *model.Grant, a model.Approval) []auditlog.Event, after func(model.Grant)) (model.Grant, error) {
	text, err := checkText(field, text, required)
	if err != nil {
		return model.Grant{}, err
	}
	unlock := s.lock(id)
	defer unlock()
	g, err := s.getForDecision(ctx, caller, id, verb)
	if err != nil {
		return g, err
	}
	pols, hash, err := s.mayDecide(caller, g, verb)
	if err != nil {
		return model.Grant{}, err
	}
	if verb == "approve" {
		if err := s.stillPermitted(g); err != nil {
			return model.Grant{}, err
		}
		if err := s.extendsRevoked(ctx, g); err != nil {
			return model.Grant{}, err
		}
	}
	if verb == "approve" && g.Duration > s.maxDur {
		// The cap was lowered since the request: it holds for every
		// grant, whatever policy or a person says.
		return model.Grant{}, apierr.Conflict("grant %s asks for %s, more than the cap of %s on any grant (grants.max_duration); deny it, and the requester may ask again within the cap", id, g.Duration, s.maxDur)
	}
	now := s.now()
	if err := s.settleLapsed(ctx, g, now, verb); err != nil {
		return model.Grant{}, err
	}
	decision := map[string]string{"approve": "approved", "deny": "denied"}[verb]
	lapsed := false
	out, err := s.transitionTx(ctx, verb, id, []model.GrantStatus{model.Pending}, func(ctx context.Context, tx store.Tx, g *model.Grant) ([]auditlog.Event, error) {
		if !now.Before(g.DecideBy) {
			// A decision must never resurrect or settle an overdue request.
			return nil, apierr.Conflict("grant %s passed its decision deadline (%s)", g.ID, g.DecideBy.Format(time.RFC3339))
		}
		if pols, hash, err = s.storedDecider(ctx, tx, caller, *g, verb, pols, hash); err != nil {
			return nil, err
		}
		// Among replicas the deadline is also checked against the
		// database's clock, which they all share: a replica whose own
		// clock is slow must not decide a request the others (and the
		// database) already see as overdue. That clock is also the
		// decision's time (and an approved grant's start and expiry):
		// this replica's time is corrected to it only at its last
		// measurement (dbclock.go), and a step of its clock since would
		// otherwise be written into the record.
		at := now
		if _, ok := tx.(store.ClockTx); ok {
			dbNow, err := s.txNow(ctx, tx)
			if err != nil {
				return nil, err
			}
			if !dbNow.Before(g.DecideBy) {
				lapsed = true
				return nil, apierr.Conflict("grant %s passed its decision deadline (%s) by the database's clock (%s; this replica's reads %s)",
					g.ID, g.DecideBy.Format(time.RFC3339), dbNow.UTC().Format(time.RFC3339Nano), now.Format(time.RFC3339Nano))
			}
			at = dbNow
		}
		a := model.Approval{Approver: caller.Name, Decision: decision, Comment: text, At: at, Policies: pols, PolicySetHash: hash, Auth: caller.SignIn}
		a.Via, a.SlackUser = channelFrom(ctx)
		g.Approvals = append(g.Approvals, a)
		g.DecidedAt = at
		return apply(g, a), nil
	})
	if lapsed {
		// Overdue by the shared clock: cancel it now, with its deadline
		// as its end, as the other replicas' timers do (written once).
		if cerr := s.cancelOverdueLocked(ctx, id); cerr != nil {
			s.logger.Warn("cancelling a request found overdue by the database's clock", "grant", id, "err", cerr)
		}
		s.logger.Warn("refused a decision after the request's deadline by the database's clock; is this replica's clock slow?", "grant", id, "local", now)
	}
	if err != nil {
		return out, err
	}
	s.stopTimer(id)
	after(out)
	return out, nil
}

// identityReader reads one identity: the store, or a transaction.
type identityReader interface {
	Identity(ctx context.Context, name string) (model.Identity, error)
}

// storedDecider checks caller's decision (verb) on g against the person as
// r holds them, and returns the approve policies that permit it and their
// set's hash (pols and hash, from the check against caller, when the
// stored person is the same). Read in the transaction that records the
// decision: caller is what this replica's directory said at sign-in, and a
// person removed from the configuration (disabled) or moved out of the
// approvers' group by another replica's restart is not known here until
// its notice arrives (or its listener reconnects). Until then the person
// kept deciding here, with their old groups.
func (s *Service) storedDecider(ctx context.Context, r identityReader, caller model.Identity, g model.Grant, verb string, pols []string, hash string) ([]string, string, error) {
	cur, err := r.Identity(ctx, caller.Name)
	if errors.Is(err, store.ErrNotFound) {
		return pols, hash, nil
	}
	if err != nil {
		return nil, "", err
	}
	if cur.Disabled {
		return nil, "", apierr.Forbidden("", "identity %s is disabled; it cannot %s grants", caller.Name, verb)
	}
	if cur.Kind != caller.Kind || !slices.Equal(cur.Groups, caller.Groups) {
		cur.Instance, cur.Auth = caller.Instance, caller.Auth
		return s.mayDecide(cur, g, verb)
	}
	return pols, hash, nil
}

// Revoke cuts an active grant off now. The cache entry goes first, so no
// call slips through while the record commits; if the record cannot be
// written the grant stays cut off (fail closed) and the error is returned.
// The grants that extend it (RequestInput.Extends) end with it: see
// endExtensions.
func (s *Service) Revoke(ctx context.Context, caller model.Identity, id, reason string) (model.Grant, error) {
	out, err := s.revoke(ctx, caller, id, reason)
	if err != nil {
		return out, s.refusedDecision(ctx, caller, "revoke", id, err)
	}
	// Not cut short by the caller going away (a Ctrl-C) once the revoke
	// is recorded.
	return out, s.endExtensions(context.WithoutCancel(ctx), caller, out)
}

// endExtensions ends the open grants that extend g, which caller has just
// revoked, and those that extend them in turn. An extension continues g's
// access under fresh credentials: left alone, an active one kept the
// holder in after the revoke, and a pending one waited in the queue for
// an approver to bring the access back. Each is ended as an identity's
// disable ends its grants (an active one revoked, a pending one cancelled),
// by caller, with a comment naming g. Request reads the grant it extends
// again in its own transaction, so no extension can be recorded after the
// revoke and be missed here.
func (s *Service) endExtensions(ctx context.Context, caller model.Identity, g model.Grant) error {
	// The records alone: endOpen reads each again under its lock.
	open, err := s.st.Grants(ctx, store.GrantFilter{Identity: g.Identity, Target: g.Target,
		Status: []model.GrantStatus{model.Pending, model.Active}, RecordsOnly: true})
	if err != nil {
		return apierr.Unavailable("grant %s was revoked, but the grants that extend it could not be read (%v); revoke them too", g.ID, err)
	}
	comment := extensionEnd(g)
	bases := []string{g.ID}
	for len(bases) > 0 {
		base := bases[0]
		bases = bases[1:]
		for _, x := range open {
			if x.Extends != base {
				continue
			}
			if err := s.endOpen(ctx, caller, x, comment); err != nil && !isConflict(err) {
				return apierr.Unavailable("grant %s was revoked, but %s, which extends it, could not be ended (%v); revoke it too", g.ID, x.ID, err)
			}
			bases = append(bases, x.ID)
		}
	}
	return nil
}

// extensionEnd is the end comment of a grant that extends base, which was
// revoked.
func extensionEnd(base model.Grant) string {
	return fmt.Sprintf("extends %s, which %s revoked: %s", base.ID, base.EndedBy, base.EndComment)
}

// extendsRevoked refuses to approve g if the grant it extends was revoked:
// endExtensions cancels such a request, unless its write failed (or
// Airlock stopped) after the revoke committed, and then it must not be
// left for an approver to bring the revoked access back.
func (s *Service) extendsRevoked(ctx context.Context, g model.Grant) error {
	if g.Extends == "" {
		return nil
	}
	// The record alone: its status and end, not its usage.
	base, err := s.st.GrantRecord(ctx, g.Extends)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if base.Status == model.Revoked {
		return apierr.Conflict("grant %s extends %s, which %s revoked at %s (%s); deny it", g.ID, base.ID, base.EndedBy, base.EndedAt.Format(time.RFC3339), base.EndComment)
	}
	return nil
}

func (s *Service) revoke(ctx context.Context, caller model.Identity, id, reason string) (model.Grant, error) {
	reason, err := checkText("reason", reason, true)
	if err != nil {
		return model.Grant{}, err
	}
	unlock := s.lock(id)
	defer unlock()
	g, err := s.getForDecision(ctx, caller, id, "revoke")
	if err != nil {
		return g, err
	}
	pols, hash, err := s.mayDecide(caller, g, "revoke")
	if err != nil {
		return model.Grant{}, err
	}
	if g.Status == model.Pending {
		return model.Grant{}, apierr.Conflict("grant %s is pending; deny it instead", id)
	}
	// The person as the store holds them, as a decision on a pending
	// grant checks them (storedDecider): on a replica that has not heard
	// of their removal, a person no longer permitted revoked, and the
	// record named someone without the right. Read here first so that
	// such a caller does not cut the grant off (ending its sessions on
	// this replica) before the transaction refuses them.
	if _, _, err := s.storedDecider(ctx, s.st, caller, g, "revoke", pols, hash); err != nil {
		return model.Grant{}, err
	}
	now := s.now()
	if err := s.settleLapsed(ctx, g, now, "revoke"); err != nil {
		return model.Grant{}, err
	}
	s.cutOff(id, endedAs(g, "revoked"))
	// Read here, not from the context record runs in: keepCutOff's
	// retries run it in one of their own, which carries no channel.
	via, _ := channelFrom(ctx)
	record := func(ctx context.Context) (model.Grant, error) {
		return s.transitionTx(ctx, "revoke", id, []model.GrantStatus{model.Active}, func(ctx context.Context, tx store.Tx, g *model.Grant) ([]auditlog.Event, error) {
			// Again in the transaction that records it: the person may
			// have been removed since the read above.
			if _, _, err := s.storedDecider(ctx, tx, caller, *g, "revoke", pols, hash); err != nil {
				return nil, err
			}
			g.Status, g.EndedAt, g.EndReason, g.EndedBy, g.EndComment = model.Revoked, endAt(now, g), "revoked", caller.Name, reason
			g.EndedAuth = caller.SignIn
			ev := endEvent(*g)
			// Where the revoke was made, as an approval records it
			// (absent from entries written before, and from a revoke
			// made by Go code with no channel).
			if via != "" {
				ev.Data.(map[string]any)["via"] = via
			}
			return []auditlog.Event{fromCaller(ev, caller)}, nil
		})
	}
	out, err := record(ctx)
	if err != nil {
		if apierr.From(err).Code == apierr.CodeForbidden {
			// Refused in the transaction: the grant is still active, so
			// this replica serves it again, as the record says.
			if serr := s.syncGrantLocked(context.WithoutCancel(ctx), id, false); serr != nil {
				s.logger.Warn("re-reading a grant after a refused revoke", "grant", id, "err", serr)
			}
			return out, err
		}
		return out, s.keepCutOff(id, "revoke", err, record)
	}
	s.stopTimer(id)
	s.notify(id)
	s.logger.Info("grant revoked", "grant", id, "by", caller.Name)
	return s.withUsage(ctx, out), nil
}

// endedAs is the reason to cut g off for, read from the store by a revoke
// or end that gives reason: the record's own if g already ended. Another
// replica may have ended it before this one heard (its notice is on its
// way, or its listener reconnects); cut off for this call's reason, the
// grant said so to the gateways' clients and in this replica's sessions,
// though the call is refused and the record says otherwise.
func endedAs(g model.Grant, reason string) string {
	if g.EndReason != "" {
		return g.EndReason
	}
	return reason
}

// keepCutOff follows a revoke or end (op) of active grant id that this
// process already cut off, and whose record failed with err. If the record
// was refused (the grant is no longer active, say), err is returned as is.
// If the log could not be written, the grant stays cut off: it is marked
// unrecorded, so that neither a cache miss nor a re-read of its
// still-active row (applyRecord) puts it back, and record, which carries
// the original time, person and reason, is tried again with backoff until
// it is recorded or the grant has ended another way. Otherwise the
// revoke would last only until the next call with the credential (a
// miss among replicas) or the log's recovery, and the replicas that never
// cut the grant off would serve it on. The caller is told so. A restart
// before the record is written forgets the revoke: the grant is as
// recorded, active.
func (s *Service) keepCutOff(id, op string, err error, record func(context.Context) (model.Grant, error)) error {
	var ae *apierr.Error
	if errors.As(err, &ae) && ae.Code != apierr.CodeUnavailable {
		return err
	}
	retry := s.retrying(id, "recording a grant's "+op, func(ctx context.Context, id string) error {
		unlock := s.lock(id)
		defer unlock()
		_, err := record(ctx)
		var ae *apierr.Error
		if err != nil && !(errors.As(err, &ae) && ae.Code != apierr.CodeUnavailable) {
			return err
		}
		// Recorded, or ended another way meanwhile (a conflict).
		s.stopTimer(id)
		s.notify(id)
		return nil
	})
	s.setTimer(id, s.now().Add(time.Second), retry)
	s.mu.Lock()
	s.unrecorded[id] = true
	s.mu.Unlock()
	return apierr.Unavailable("could not record the %s of grant %s durably; it is cut off on this server, which will record the %s once the log can be written again", op, id, op)
}

// End gives a grant up early (active → ended) or withdraws a request
// (pending → cancelled). Only the holder may.
func (s *Service) End(ctx context.Context, caller model.Identity, id, comment string) (model.Grant, error) {
	comment, err := checkText("comment", comment, false)
	if err != nil {
		return model.Grant{}, err
	}
	unlock := s.lock(id)
	defer unlock()
	g, err := s.getForDecision(ctx, caller, id, "end")
	if err != nil {
		return g, err
	}
	if g.Identity != caller.Name {
		return model.Grant{}, apierr.Forbidden("", "only the holder (%s) may end grant %s", g.Identity, id)
	}
	now := s.now()
	if err := s.settleLapsed(ctx, g, now, "end"); err != nil {
		return model.Grant{}, err
	}
	s.cutOff(id, endedAs(g, "ended"))
	record := func(ctx context.Context, from ...model.GrantStatus) (model.Grant, error) {
		return s.transition(ctx, "end", id, from, func(g *model.Grant) ([]auditlog.Event, error) {
			if g.Status == model.Pending {
				g.Status, g.EndReason = model.Cancelled, "cancelled"
				if comment == "" {
					comment = "withdrawn by the requester"
				}
			} else {
				g.Status, g.EndReason = model.Ended, "ended"
			}
			g.EndedAt, g.EndedBy, g.EndComment = endAt(now, g), caller.Name, comment
			return []auditlog.Event{fromCaller(endEvent(*g), caller)}, nil
		})
	}
	out, err := record(ctx, model.Active, model.Pending)
	if err != nil {
		if g.Status != model.Active {
			// A request withdrawn: nothing was cut off, nothing changed.
			return out, err
		}
		return out, s.keepCutOff(id, "end", err, func(ctx context.Context) (model.Grant, error) { return record(ctx, model.Active) })
	}
	s.stopTimer(id)
	s.notify(id)
	if out.Status == model.Ended {
		// An active grant's sessions; a request withdrawn (cancelled)
		// had none, its usage zero.
		out = s.withUsage(ctx, out)
	}
	return out, nil
}

// expire ends an active grant at its expiry time. The end time recorded is
// ExpiresAt itself, also when Airlock was down at that moment, unless the
// machine's clock had not reached it (lapsedEnd).
func (s *Service) expire(ctx context.Context, id string) error {
	unlock := s.lock(id)
	defer unlock()
	return s.expireLocked(ctx, id)
}

func (s *Service) expireLocked(ctx context.Context, id string) error {
	s.cutOff(id, "expired")
	_, err := s.transition(ctx, "expire", id, []model.GrantStatus{model.Active}, func(g *model.Grant) ([]auditlog.Event, error) {
		g.Status, g.EndReason, g.EndedBy = model.Expired, "expired", "airlock"
		g.EndedAt, g.EndComment = s.lapsedEnd(g.ExpiresAt, g.StartedAt, "reached its expiry time")
		return []auditlog.Event{endEvent(*g)}, nil
	})
	var ae *apierr.Error
	if errors.As(err, &ae) && ae.Code == apierr.CodeConflict {
		// Already ended another way, which disarmed its timer.
		return nil
	}
	s.stopTimer(id)
	s.notify(id)
	return err
}

// cancelOverdue cancels a request nobody decided before its deadline.
func (s *Service) cancelOverdue(ctx context.Context, id string) error {
	unlock := s.lock(id)
	defer unlock()
	return s.cancelOverdueLocked(ctx, id)
}

func (s *Service) cancelOverdueLocked(ctx context.Context, id string) error {
	_, err := s.transition(ctx, "cancel", id, []model.GrantStatus{model.Pending}, func(g *model.Grant) ([]auditlog.Event, error) {
		g.Status, g.EndReason, g.EndedBy = model.Cancelled, "cancelled", "airlock"
		g.EndedAt, g.EndComment = s.lapsedEnd(g.DecideBy, g.RequestedAt, "nobody decided before the deadline")
		return []auditlog.Event{endEvent(*g)}, nil
	})
	var ae *apierr.Error
	if errors.As(err, &ae) && ae.Code == apierr.CodeConflict {
		// Decided in time after all (an approval that committed while this
		// timer waited for the lock): the grant's timer is now its expiry
		// timer, which must stay armed.
		return nil
	}
	s.stopTimer(id)
	s.notify(id)
	return err
}

// endAt is when a grant revoked or ended at now ended: now, but never
// before it began (its start, or for a request its time). After the
// machine's clock stepped back past the start, now would make a record
// that ends before it began, which the review cannot read; the entries'
// order in the log still shows what came first.
func endAt(now time.Time, g *model.Grant) time.Time {
	floor := g.StartedAt
	if floor.IsZero() {
		floor = g.RequestedAt
	}
	if now.Before(floor) {
		return floor
	}
	return now
}

// lapsedEnd is when a grant that lapsed at due (its expiry, or a request's
// decision deadline) ended; floor is the earliest time its record allows
// (its start, or the request), and what says why it ended.
//
// Its timer ran for the time left until due, on elapsed time. Without a
// database clock (one process) the Service's time is the machine's, and
// after a step back of it nothing arms the timer again (armStepCheck
// watches for steps forward only): the timer cuts the grant off at its
// real duration, when the clock reads the step short of due. Recording
// due then wrote a time the clock had not reached, after the entries
// written later, as the moment the grant was cut off. The end is then the
// clock's reading, and the comment says so; never before floor, which a
// step back longer than the time since the start would give (the record
// would end before it began). A reading past due (a timer run late, a
// grant that lapsed while Airlock was down) is recorded as due, as
// before; one short of it by less than clockRearm is the clock's and the
// timers' jitter, not a step.
//
// With a database clock the record's times are the database's, the timers
// are armed by it and armed again when a measurement finds this replica's
// clock stepped back; a timer that runs before due by this replica's time
// is a step forward that the measurements absorbed (or a test's fake clock
// run ahead of the database's), and due stands as before.
func (s *Service) lapsedEnd(due, floor time.Time, what string) (time.Time, string) {
	if s.dbc.src != nil {
		return due, what
	}
	now := s.now()
	if !now.Before(due.Add(-clockRearm)) {
		return due, what
	}
	at := now
	if at.Before(floor) {
		at = floor
	}
	return at, fmt.Sprintf("%s (%s) by its timer, which counts elapsed time; this server's clock, stepped back, read %s then (%s before it), so the end is recorded at %s",
		what, due.Format(time.RFC3339Nano), now.Format(time.RFC3339Nano), due.Sub(now).Round(time.Millisecond), at.Format(time.RFC3339Nano))
}

// settleLapsed is called, with the grant's lock held, before a person or the
// holder ends g at now. If g already lapsed on its own (active past its
// expiry, or pending past its decision deadline) and its timer has not run
// yet, it records that end now, with its true time, and returns a conflict:
// a revoke, end or denial after the fact must not be recorded as the reason
// a grant ended, nor move its end past its expiry.
func (s *Service) settleLapsed(ctx context.Context, g model.Grant, now time.Time, op string) error {
	switch {
	case g.Status == model.Active && !now.Before(g.ExpiresAt):
		if err := s.expireLocked(ctx, g.ID); err != nil {
			return err
		}
		return apierr.Conflict("grant %s expired at %s; cannot %s it", g.ID, g.ExpiresAt.Format(time.RFC3339Nano), op)
	case g.Status == model.Pending && !now.Before(g.DecideBy):
		if err := s.cancelOverdueLocked(ctx, g.ID); err != nil {
			return err
		}
		return apierr.Conflict("grant %s passed its decision deadline (%s) and was cancelled; cannot %s it", g.ID, g.DecideBy.Format(time.RFC3339Nano), op)
	}
	return nil
}

func isConflict(err error) bool {
	var ae *apierr.Error
	return errors.As(err, &ae) && ae.Code == apierr.CodeConflict
}

// checkDatabase refuses a postgres scope statement whose resource names
// another database than target t's: the gateway connects to t's database
// only, so such a grant would be active and every statement under it
// refused, with the reason in the server's log alone.
func checkDatabase(t Target, sc scope.Scope) error {
	for i, st := range sc {
		db, _, _ := strings.Cut(st.Resource, ".")
		if db != t.Database {
			return &scope.Error{Index: i, Statement: st.String(), Msg: fmt.Sprintf("resource %s names database %s, but target %s is database %s: name it (%s.SCHEMA.TABLE)",
				apierr.Quote(st.Resource), apierr.Quote(db), t.Name, apierr.Quote(t.Database), t.Database)}
		}
	}
	return nil
}
