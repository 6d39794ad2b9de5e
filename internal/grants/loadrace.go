package grants

import (
	"context"

	"github.com/airlock-dev/airlock/internal/model"
	"github.com/airlock-dev/airlock/internal/policy"
)

// policyLoad is the last policy set loaded, and what loaded it.
type policyLoad struct{ hash, trigger string }

// decidedBeforeLoad checks request g, just recorded, decided under set
// used, against the set in force now. A load between its decision and
// its write (a SIGHUP while it was recorded) swept the pending requests
// and active grants before this one was there to be listed: left as
// recorded, a request the new set refuses stayed pending (its approval
// refused, denied only at the next load), and a grant auto-approved
// under the old set that a new forbid matches stayed active. So this
// ends it now as that load's sweep would have (endRefused), by policy
// with the load's trigger. The load swaps the set in before it lists, so
// whichever is later, the listing or this check, sees the other: the
// request is written before this reads the set. It returns g as stored
// after.
func (s *Service) decidedBeforeLoad(ctx context.Context, g model.Grant, used *policy.Set) model.Grant {
	cur := s.pol.Current()
	if cur.Hash() == used.Hash() || g.Status.Final() {
		return g
	}
	trigger := "reload"
	if l := s.loaded.Load(); l != nil && l.hash == cur.Hash() {
		trigger = l.trigger
	}
	var err error
	switch g.Status {
	case model.Pending:
		if dec, refused := s.refused(cur, g); refused {
			err = s.denyByPolicy(ctx, g, dec, trigger)
		}
	case model.Active:
		if dec, ok := s.forbidden(cur, g); ok {
			err = s.revokeByPolicy(ctx, g, dec, trigger)
		}
	}
	if err != nil && !isConflict(err) {
		s.logger.Error("a request decided under the policy set before a load could not be ended; reload again", "grant", g.ID, "hash", cur.Hash(), "err", err)
	}
	if out, err := s.st.Grant(ctx, g.ID); err == nil {
		return out
	}
	return g
}
