package grants

import (
	"github.com/airlock-dev/airlock/internal/auditlog"
	"github.com/airlock-dev/airlock/internal/model"
)

// fromCaller adds caller's instance fingerprint (model.Instance: address,
// user agent, client certificate hash, instance claims) to a map-valued
// event as "instance", so that every state-changing API call leaves where
// it came from in the log. Callers inside the process (timers, the demo,
// Slack actions, tests) have no instance; their events are unchanged. The
// field is additive: the review derivation ignores it.
func fromCaller(ev auditlog.Event, caller model.Identity) auditlog.Event {
	if caller.Instance == nil {
		return ev
	}
	if d, ok := ev.Data.(map[string]any); ok {
		d["instance"] = caller.Instance
	}
	return ev
}

// approvedData is a grant.approved entry: the approval as stored on the
// grant, and the approver's instance.
type approvedData struct {
	model.Approval
	Instance *model.Instance `json:"instance,omitempty"`
}
