package grants

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/airlock-dev/airlock/internal/apierr"
	"github.com/airlock-dev/airlock/internal/auditlog"
	"github.com/airlock-dev/airlock/internal/model"
)

// RefusedDecisionType is the log entry of a decision (approve, deny,
// revoke) the service refused to a caller of the API (the CLI) or the
// console: who tried, what, through which channel, and why it was refused.
// Slack's and webhooks' refusals are recorded by internal/notify as
// integration.refused, with what those channels know (the Slack user,
// the signature's fate), so they are not recorded here twice.
//
// Without it, an attempt to approve one's own request, or one no approve
// policy lets the caller decide, left no trace but the caller's error: the
// log showed a Slack user's refused click, and nothing of the same person
// trying the same thing with airlock approve.
const RefusedDecisionType = "decision.refused"

// maxRefusalRecords bounds how many refused decisions a minute this
// process writes to the log; the rest go to the process log only. The
// callers are authenticated, but an agent's key in a loop must not fill
// the log with its refusals.
const maxRefusalRecords = 120

// refusalLimiter counts refusal records in the current minute.
type refusalLimiter struct {
	mu    sync.Mutex
	start time.Time
	count int
}

func (l *refusalLimiter) allow(now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.start) >= time.Minute || now.Before(l.start) {
		l.start, l.count = now, 0
	}
	if l.count >= maxRefusalRecords {
		return false
	}
	l.count++
	return true
}

// refusedDecision records err, the refusal of caller's verb on grant id,
// when it refuses the caller (403: an agent, their own request, no approve
// policy permits them, disabled): an attempt to decide what they must
// not. A conflict with the grant's state (decided already, past its
// deadline, ended) is a race between people or with a timer, which the
// grant's own entries explain; a malformed text, a grant the caller may
// not see and a failure of the log itself are no attempt either. It
// returns err.
func (s *Service) refusedDecision(ctx context.Context, caller model.Identity, verb, id string, err error) error {
	var ae *apierr.Error
	if err == nil || !errors.As(err, &ae) || (ae.Code != apierr.CodeForbidden && ae.Code != apierr.CodeSelfApproval) {
		return err
	}
	via, _ := channelFrom(ctx)
	switch via {
	case "slack", "webhook":
		return err // recorded by the channel (integration.refused)
	case "":
		via = "api"
	}
	s.logger.Warn("decision refused", "grant", id, "by", caller.Name, "kind", caller.Kind, "action", verb, "via", via, "code", ae.Code)
	if !s.refusals.allow(s.clk.Now()) {
		return err
	}
	data := map[string]any{"action": verb, "via": via, "identity_kind": caller.Kind, "code": ae.Code, "reason": ae.Message}
	// The credential as a decision records it (model.SignIn: the API
	// key's id, the SSO session's issuer and subject, a workload token's
	// issuer and subject); it was the old "key" or "oidc:…" string, and
	// nothing for the console.
	if caller.SignIn != nil {
		data["auth"] = caller.SignIn
	}
	ev := fromCaller(auditlog.Event{Type: RefusedDecisionType, Time: s.now(), Actor: caller.Name, Data: data}, caller)
	// The grant's id only when it names one as grants issue them: the
	// path of an API call may hold anything.
	if validGrantID(id) {
		ev.GrantID = id
	} else {
		data["grant"] = "(not a grant id)"
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if lerr := s.log.Append(rctx, ev); lerr != nil {
		s.logger.Error("recording a refused decision", "grant", id, "by", caller.Name, "err", lerr)
	}
	return err
}

// validGrantID: "g_" then lower-case letters and digits, as newID makes them.
func validGrantID(s string) bool {
	if len(s) < 3 || len(s) > 42 || s[:2] != "g_" {
		return false
	}
	for _, c := range s[2:] {
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') {
			return false
		}
	}
	return true
}
