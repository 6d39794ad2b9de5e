package grants

import (
	"context"
	"fmt"

	"github.com/airlock-dev/airlock/internal/auditlog"
	"github.com/airlock-dev/airlock/internal/model"
)

// configActor names the configuration (airlock.yaml) as the one who ended
// a grant, as a start names it for an identity taken out of it: no person
// did.
const configActor = "config"

// configRefusal reports why the configuration in force refuses open grant
// g, or "" when it does not: its target is no longer configured (an
// active grant or a request), or it asks for more than grants.max_duration
// (a request only). The configuration is read at start only (SIGHUP
// reloads the policies), so these change only across a restart.
//
// An active grant longer than a lowered cap is left to run: the cap
// bounds what is granted from now on, and a person approved it within the
// cap of its time. A removed target is another matter: no gateway serves
// it any more, so the grant could not be used, yet it was listed active
// (airlock grants, the console, GET /v1/grants) until it expired, and a
// pending request for it waited in every approver's queue, refused only
// when someone tried to approve it.
func (s *Service) configRefusal(g model.Grant) string {
	if _, ok := s.targets[g.Target]; !ok {
		return fmt.Sprintf("target %s is no longer in the configuration (airlock.yaml) this server started with; no person %s it",
			g.Target, map[model.GrantStatus]string{model.Pending: "denied", model.Active: "revoked"}[g.Status])
	}
	if g.Status == model.Pending && g.Duration > s.maxDur {
		return fmt.Sprintf("asks for %s, more than the cap of %s on any grant (grants.max_duration) in the configuration this server started with; no person denied it, and the requester may ask again within the cap",
			g.Duration, s.maxDur)
	}
	return ""
}

// endByConfig ends listed, if still open, because the configuration
// refuses it (comment, from configRefusal): a pending request is denied,
// an active grant revoked (cut off first, its extensions ended with it),
// by "config". Its transition requires the status listed, so among
// replicas the first records it and the others get a conflict.
func (s *Service) endByConfig(ctx context.Context, listed model.Grant, comment string) error {
	out, err := s.endByConfigLocked(ctx, listed, comment)
	if err != nil || out.ID == "" || out.Status != model.Revoked {
		return err
	}
	return s.endExtensions(context.WithoutCancel(ctx), model.Identity{Name: configActor}, out)
}

func (s *Service) endByConfigLocked(ctx context.Context, listed model.Grant, comment string) (model.Grant, error) {
	unlock := s.lock(listed.ID)
	defer unlock()
	// Re-read under the lock: the listing may be stale, and another
	// replica may have ended it first.
	// The record alone: nothing here needs its sessions' usage.
	g, err := s.st.GrantRecord(ctx, listed.ID)
	if err != nil {
		return model.Grant{}, err
	}
	if g.Status != listed.Status || g.Status.Final() {
		return model.Grant{}, nil
	}
	now := s.now()
	verb := map[model.GrantStatus]string{model.Pending: "deny", model.Active: "revoke"}[g.Status]
	if err := s.settleLapsed(ctx, g, now, verb); err != nil {
		if isConflict(err) {
			return model.Grant{}, nil // it lapsed first
		}
		return model.Grant{}, err
	}
	if g.Status == model.Active {
		s.cutOff(g.ID, "revoked")
	}
	out, err := s.transition(ctx, verb, g.ID, []model.GrantStatus{g.Status}, func(g *model.Grant) ([]auditlog.Event, error) {
		if g.Status == model.Pending {
			g.Status, g.EndReason = model.Denied, "denied"
		} else {
			g.Status, g.EndReason = model.Revoked, "revoked"
		}
		g.EndedAt, g.EndedBy, g.EndComment = endAt(now, g), configActor, comment
		return []auditlog.Event{endEvent(*g)}, nil
	})
	if err != nil {
		return model.Grant{}, err
	}
	s.stopTimer(g.ID)
	s.notify(g.ID)
	s.logger.Warn("grant ended: the configuration no longer permits it", "grant", g.ID, "identity", out.Identity, "target", out.Target,
		"status", out.Status, "why", comment)
	return out, nil
}
