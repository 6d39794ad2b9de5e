package grants

import (
	"context"
	"strings"

	"github.com/airlock-dev/airlock/internal/auditlog"
	"github.com/airlock-dev/airlock/internal/model"
)

// Change is one committed lifecycle change of a grant, as the log records
// it: Type is the log entry's type (grant.requested, grant.decided,
// grant.approved, grant.denied, grant.activated, grant.ended,
// grant.expired, grant.revoked, grant.cancelled), Actor who caused it, and
// Grant the record as committed with that change (shared by every change of
// one commit; watchers must not modify it). Its Usage, derived from the
// grant's sessions and no part of the record, is zero: a transition reads
// none of the grant's sessions in the log's writer (transitionTx).
type Change struct {
	Type  string
	Actor string
	Grant model.Grant
	// Trigger is, for a request denied by the policy set because a set
	// loaded since no longer permits it, or a grant revoked because a
	// forbid loaded since matches it, what loaded the set
	// ("SIGHUP", "start"); empty for every other change, a denial by
	// policy at the request included.
	Trigger string
}

// OnChange registers fn to be told of every lifecycle change after it has
// been committed to the store and the log, in commit order for any one
// grant. fn runs on the lifecycle's path, with the grant's lock held: it
// must not block or call back into the Service (hand the change to a queue
// and return; package notify does).
func (s *Service) OnChange(fn func(Change)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.changes = append(s.changes, fn)
}

// changed tells the watchers about the grant.* events just committed for g.
func (s *Service) changed(events []auditlog.Event, g model.Grant) {
	s.mu.RLock()
	fns := s.changes
	s.mu.RUnlock()
	if len(fns) == 0 {
		return
	}
	for _, ev := range events {
		if !strings.HasPrefix(ev.Type, "grant.") || ev.GrantID != g.ID {
			continue
		}
		c := Change{Type: ev.Type, Actor: ev.Actor, Grant: g}
		if d, ok := ev.Data.(map[string]any); ok {
			c.Trigger, _ = d["trigger"].(string)
		}
		for _, fn := range fns {
			fn(c)
		}
	}
}

// channelKey carries the channel a person's decision came through.
type channelKey struct{}

type channel struct{ via, slackUser string }

// WithChannel marks ctx as carrying a decision made through a channel
// ("api", "console", "slack", "webhook"), with the chat user who made it.
// Approve and Deny record both in the approval, and Revoke the channel in
// its entry, so the log says where the decision was made.
func WithChannel(ctx context.Context, via, slackUser string) context.Context {
	return context.WithValue(ctx, channelKey{}, channel{via, slackUser})
}

func channelFrom(ctx context.Context) (via, slackUser string) {
	c, _ := ctx.Value(channelKey{}).(channel)
	return c.via, c.slackUser
}
