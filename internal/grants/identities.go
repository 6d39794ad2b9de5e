package grants

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"

	"github.com/airlock-dev/airlock/internal/apierr"
	"github.com/airlock-dev/airlock/internal/auditlog"
	"github.com/airlock-dev/airlock/internal/authn"
	"github.com/airlock-dev/airlock/internal/model"
	"github.com/airlock-dev/airlock/internal/policy"
	"github.com/airlock-dev/airlock/internal/store"
)

var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,62}$`)

// identityData is an identity.* entry's data: the identity's whole state
// after the change, which `audit verify` compares its row with.
//
// key_sha256 is the whole SHA-256 of the key, as the database stores it:
// with only a prefix, a row whose hash was swapped for that of another key
// with the same first 8 hex digits (made by trying about 2^32 keys) passed
// the check. It is a hash of 32 random bytes for agents added through the
// API; for configured keys it is what airlock.yaml states. The prefix is
// kept for readers of earlier entries; entries written before December 2026
// have only the prefix, and verify checks their rows' hashes only that far.
//
// A configured identity's entry also states its bindings (email,
// slack_user, oidc; "" when none), which airlock.yaml holds: who can sign
// in to the console or click Approve in Slack as a person, or present a
// workload token as an agent, is part of who the identity is. The row
// keeps them too (model.Identity.Bindings), so verify checks them as it
// checks the key hash.
func identityData(id model.Identity) map[string]any {
	d := map[string]any{"name": id.Name, "kind": id.Kind, "owner": id.Owner, "groups": id.Groups,
		"source": id.Source, "disabled": id.Disabled, "key_sha256": id.KeySHA256, "key_sha256_prefix": prefix(id.KeySHA256)}
	if b := id.Bindings; b != nil {
		d["email"], d["slack_user"], d["oidc"] = b.Email, b.SlackUser, b.OIDC
	}
	return d
}

// sameBindings reports whether a and b record the same bindings (nil:
// none recorded).
func sameBindings(a, b *model.Bindings) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

// prefix keeps 8 hex digits of a key hash: enough to tell keys apart at a
// glance.
func prefix(h string) string {
	if len(h) > 8 {
		return h[:8]
	}
	return h
}

// SyncIdentities makes the stored identities match the configuration: new
// ones are added, changed ones updated, and config identities no longer in
// the file disabled. Agents added through the API are left alone. Every
// change is logged. It then loads the directory used to authenticate.
//
// A configured identity's Bindings (nil is none) are compared with those
// its row recorded, so a change of them in airlock.yaml is an
// identity.updated entry that also states the bindings it replaces
// ("previous"). The comparison reads one row per identity, never the log,
// and in the transaction that writes the entry: replicas starting on the
// same file write it once.
func (s *Service) SyncIdentities(ctx context.Context, configured []model.Identity) error {
	// It runs before Start: the times it writes are the database's too.
	if err := s.startClock(ctx); err != nil {
		return err
	}
	err := s.log.Do(ctx, func(ctx context.Context, tx store.Tx) ([]auditlog.Event, error) {
		var events []auditlog.Event
		seen := map[string]bool{}
		for _, want := range configured {
			seen[want.Name] = true
			want.Source = "config"
			if want.Bindings == nil {
				want.Bindings = &model.Bindings{}
			}
			have, err := tx.Identity(ctx, want.Name)
			switch {
			case errors.Is(err, store.ErrNotFound):
				want.CreatedAt, want.CreatedBy = s.now(), "config"
				events = append(events, auditlog.Event{Type: "identity.added", Time: s.now(), Actor: "config", Data: identityData(want)})
			case err != nil:
				return nil, err
			default:
				// A disable (API or config removal) survives restarts: re-enabling
				// an identity is a deliberate act, not a side effect of a restart.
				want.CreatedAt, want.CreatedBy, want.Disabled = have.CreatedAt, have.CreatedBy, have.Disabled
				// A row whose entries never stated bindings (written
				// before they did) gets them recorded once it has some.
				if have.Bindings == nil && *want.Bindings == (model.Bindings{}) {
					want.Bindings = nil
				}
				if sameIdentity(have, want) {
					continue
				}
				d := identityData(want)
				if have.Bindings != nil && !sameBindings(have.Bindings, want.Bindings) {
					d["previous"] = map[string]string{"email": have.Bindings.Email, "slack_user": have.Bindings.SlackUser, "oidc": have.Bindings.OIDC}
				}
				events = append(events, auditlog.Event{Type: "identity.updated", Time: s.now(), Actor: "config", Data: d})
			}
			if err := tx.PutIdentity(ctx, want); err != nil {
				return nil, err
			}
			if err := s.notifyIdentity(ctx, tx, want.Name); err != nil {
				return nil, err
			}
		}
		// Config identities removed from the file are disabled, not deleted:
		// their grants must stay attributable.
		all, err := s.st.Identities(ctx)
		if err != nil {
			return nil, err
		}
		for _, have := range all {
			if have.Source == "config" && !seen[have.Name] && !have.Disabled {
				have.Disabled = true
				events = append(events, auditlog.Event{Type: "identity.disabled", Time: s.now(), Actor: "config", Data: identityData(have)})
				if err := tx.PutIdentity(ctx, have); err != nil {
					return nil, err
				}
				if err := s.notifyIdentity(ctx, tx, have.Name); err != nil {
					return nil, err
				}
			}
		}
		return events, nil
	})
	if err != nil {
		return err
	}
	all, err := s.st.Identities(ctx)
	if err != nil {
		return err
	}
	s.dir.Replace(all)
	return nil
}

func sameIdentity(a, b model.Identity) bool {
	return a.Kind == b.Kind && a.Owner == b.Owner && slices.Equal(a.Groups, b.Groups) &&
		a.KeySHA256 == b.KeySHA256 && a.Source == b.Source && a.Disabled == b.Disabled &&
		sameBindings(a.Bindings, b.Bindings)
}

// AddAgent creates an agent identity and returns its key, which is shown
// once and never stored.
func (s *Service) AddAgent(ctx context.Context, caller model.Identity, name, owner string, groups []string) (model.Identity, string, error) {
	if caller.Kind != model.Human {
		return model.Identity{}, "", apierr.Forbidden("", "only a person may add agents")
	}
	if err := CheckAgentInput(name, owner, groups); err != nil {
		return model.Identity{}, "", err
	}
	// An agent's owner is one of its groups in policy, and its groups are
	// what policies grant on: a person who could give an agent any of them
	// could mint one that a team's @approval("auto") policies serve, and
	// take its credentials. So a person adds agents only into teams and
	// groups they belong to themselves.
	for _, g := range append([]string{owner}, groups...) {
		if !slices.Contains(caller.Groups, g) {
			return model.Identity{}, "", apierr.Forbidden("", "%s may not add an agent in group %s: a person adds agents only to teams and groups they belong to (owner and --group)", caller.Name, g)
		}
	}
	// A policy naming Agent::"name", or testing principal.name against
	// it, was written for particular agents, which the operator defines
	// in the configuration: a person adding an agent by a name no
	// identity holds yet would be served by it.
	if ids := s.pol.Current().NamingAgent(name); len(ids) > 0 {
		return model.Identity{}, "", apierr.Forbidden("", "policy %s names agent %q (as Agent::%q or by principal.name): an agent that policies name is defined in the configuration, not added by a person", apierr.Quote(ids[0]), name, name)
	}
	key, sha := authn.NewKey()
	id := model.Identity{Name: name, Kind: model.Agent, Owner: owner, Groups: groups, KeySHA256: sha,
		Source: "api", CreatedAt: s.now(), CreatedBy: caller.Name}
	err := s.log.Do(ctx, func(ctx context.Context, tx store.Tx) ([]auditlog.Event, error) {
		if _, err := tx.Identity(ctx, name); err == nil {
			return nil, &apierr.Error{Status: 409, Code: apierr.CodeAlreadyExists, Field: "name", Message: "an identity named " + name + " already exists"}
		} else if !errors.Is(err, store.ErrNotFound) {
			return nil, err
		}
		if err := tx.PutIdentity(ctx, id); err != nil {
			return nil, err
		}
		return []auditlog.Event{fromCaller(auditlog.Event{Type: "identity.added", Time: s.now(), Actor: caller.Name, Data: identityData(id)}, caller)}, s.notifyIdentity(ctx, tx, id.Name)
	})
	if err != nil {
		return model.Identity{}, "", s.logErr("the new agent", err)
	}
	s.putIdentity(ctx, id)
	return id, key, nil
}

// namedAfterAdding returns the id of a policy in set that names agent who
// (Agent::"x" or principal.name, see policy.Set.NamingAgent) if who was
// added through the API, "" otherwise. AddAgent refuses such a name, but
// only against the policies in force then: one loaded since (a reload, a
// restart) was written for an agent the operator means to configure, and
// must not serve the one a person added by that name first.
func namedAfterAdding(set *policy.Set, who model.Identity) string {
	if who.Kind != model.Agent || who.Source != "api" {
		return ""
	}
	if ids := set.NamingAgent(who.Name); len(ids) > 0 {
		return ids[0]
	}
	return ""
}

// DisableAgent disables an agent and revokes its active grants.
func (s *Service) DisableAgent(ctx context.Context, caller model.Identity, name, reason string) (model.Identity, error) {
	if caller.Kind != model.Human {
		return model.Identity{}, apierr.Forbidden("", "only a person may disable agents")
	}
	// The reason goes into the log as the other verbs' do: bounded, and
	// free of control characters (it was neither checked nor trimmed).
	reason, err := checkText("reason", reason, false)
	if err != nil {
		return model.Identity{}, err
	}
	var out model.Identity
	err = s.log.Do(ctx, func(ctx context.Context, tx store.Tx) ([]auditlog.Event, error) {
		id, err := tx.Identity(ctx, name)
		if errors.Is(err, store.ErrNotFound) {
			return nil, apierr.NotFound("no identity %s", apierr.Quote(name))
		}
		if err != nil {
			return nil, err
		}
		if id.Kind != model.Agent {
			return nil, apierr.Invalid("name", "%s is a person; only agents are disabled here", name)
		}
		id.Disabled = true
		out = id
		d := identityData(id)
		d["reason"] = reason
		if err := tx.PutIdentity(ctx, id); err != nil {
			return nil, err
		}
		return []auditlog.Event{fromCaller(auditlog.Event{Type: "identity.disabled", Time: s.now(), Actor: caller.Name, Data: d}, caller)}, s.notifyIdentity(ctx, tx, id.Name)
	})
	if err != nil {
		return model.Identity{}, s.logErr("the change", err)
	}
	s.putIdentity(ctx, out)
	// The records alone: endForDisable reads each again under its lock.
	active, err := s.st.Grants(ctx, store.GrantFilter{Identity: name, Status: []model.GrantStatus{model.Active, model.Pending}, RecordsOnly: true})
	if err != nil {
		return out, err
	}
	for _, g := range active {
		if err := s.endForDisable(ctx, caller, g); err != nil {
			return out, err
		}
	}
	return out, nil
}

// endForDisable revokes (or, if pending, cancels) a grant of a disabled agent.
func (s *Service) endForDisable(ctx context.Context, caller model.Identity, listed model.Grant) error {
	return s.endOpen(ctx, caller, listed, "identity "+listed.Identity+" disabled")
}

// endOpen ends listed, if it is still open, on caller's say-so with
// comment: an active grant is revoked, a pending request cancelled. One
// that lapsed on its own first is recorded as such, and left.
func (s *Service) endOpen(ctx context.Context, caller model.Identity, listed model.Grant, comment string) error {
	unlock := s.lock(listed.ID)
	defer unlock()
	// Re-read under the lock: the listing may be stale.
	// The record alone: nothing here needs its usage.
	g, err := s.st.GrantRecord(ctx, listed.ID)
	if err != nil {
		return err
	}
	if g.Status.Final() {
		return nil // ended meanwhile
	}
	now := s.now()
	if err := s.settleLapsed(ctx, g, now, "revoke"); err != nil {
		if isConflict(err) {
			return nil // it ended on its own already
		}
		return err
	}
	s.cutOff(g.ID, "revoked")
	_, err = s.transition(ctx, "revoke", g.ID, []model.GrantStatus{model.Active, model.Pending}, func(g *model.Grant) ([]auditlog.Event, error) {
		if g.Status == model.Pending {
			g.Status, g.EndReason = model.Cancelled, "cancelled"
		} else {
			g.Status, g.EndReason = model.Revoked, "revoked"
		}
		g.EndedAt, g.EndedBy, g.EndComment = now, caller.Name, comment
		return []auditlog.Event{fromCaller(endEvent(*g), caller)}, nil
	})
	s.stopTimer(g.ID)
	s.notify(g.ID)
	return err
}

// Identities lists every identity (people only).
func (s *Service) Identities(ctx context.Context, caller model.Identity) ([]model.Identity, error) {
	if caller.Kind != model.Human {
		return nil, apierr.Forbidden("", "only people may list identities")
	}
	return s.st.Identities(ctx)
}

// ReloadPolicies reloads the policy directory. An invalid set leaves the old
// one in force; both outcomes are logged with the set's hash. Once a set
// is loaded, every pending request that it no longer permits is denied,
// and every active grant that one of its forbids matches revoked
// (endRefused).
func (s *Service) ReloadPolicies(ctx context.Context, trigger string) error {
	set, changed, err := s.pol.Reload()
	if err != nil {
		cur := s.pol.Current()
		_ = s.log.Append(ctx, auditlog.Event{Type: "policy.load_failed", Time: s.now(), Actor: "airlock", Data: map[string]any{
			"error": err.Error(), "kept_hash": cur.Hash(), "trigger": trigger}})
		s.logger.Error("policy reload failed; keeping the previous set", "err", err, "hash", cur.Hash())
		return err
	}
	s.loaded.Store(&policyLoad{hash: set.Hash(), trigger: trigger})
	d := policyData(set, trigger)
	d["changed"] = changed
	if err := s.log.Append(ctx, auditlog.Event{Type: "policy.loaded", Time: s.now(), Actor: "airlock", Data: d}); err != nil {
		return err
	}
	s.logger.Info("policies loaded", "hash", set.Hash(), "policies", set.Len(), "changed", changed)
	// Also when unchanged: a reload is how an operator retries a sweep
	// that failed (the store was unreachable, say).
	if err := s.endRefused(ctx, set, trigger); err != nil {
		s.logger.Error("policies loaded, but the requests and grants they no longer permit could not all be ended; reload again", "err", err)
		return err
	}
	return nil
}

// CheckAgentInput refuses, as AddAgent does, a name, owner or group that
// is not an identity name (nameRE), and a group given twice. The CLI
// checks agent add's arguments with it before asking: such a value is a
// usage error there (exit 2), not a command that failed.
func CheckAgentInput(name, owner string, groups []string) error {
	if !nameRE.MatchString(name) {
		return apierr.Invalid("name", "%s is not a valid name (lowercase letters, digits, '.', '_', '-'; up to 63)", apierr.Quote(name))
	}
	if !nameRE.MatchString(owner) {
		return apierr.Invalid("owner", "an agent needs an owner team (lowercase letters, digits, '.', '_', '-')")
	}
	// A group given twice is refused: the list was stored, logged and
	// listed as sent, up to the 1 MiB body (["a","a",…] 100,000 times).
	// With that, it holds no more than the caller's own groups (AddAgent).
	seen := make(map[string]bool, len(groups))
	for i, g := range groups {
		if !nameRE.MatchString(g) {
			return apierr.Invalid("groups", "%s is not a valid group name", apierr.Quote(g))
		}
		if seen[g] {
			return apierr.Invalid(fmt.Sprintf("groups[%d]", i), "%s is given twice", apierr.Quote(g))
		}
		seen[g] = true
	}
	return nil
}
