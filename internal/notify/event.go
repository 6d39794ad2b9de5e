package notify

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"time"

	"github.com/airlock-dev/airlock/internal/grants"
	"github.com/airlock-dev/airlock/internal/model"
)

// Event is the JSON body of a webhook delivery: one lifecycle change.
type Event struct {
	// ID is unique per event and the same on every retry of it (also sent
	// as X-Airlock-Delivery), so a receiver can drop duplicates.
	ID string `json:"id"`
	// Type is the log entry's type: grant.requested, grant.approved,
	// grant.denied, grant.activated, grant.ended, grant.expired,
	// grant.revoked or grant.cancelled.
	Type string `json:"type"`
	// Time is when Airlock saw the change committed.
	Time time.Time `json:"time"`
	// Actor is who caused it: a person, an agent, "policy" or "airlock".
	Actor string `json:"actor"`
	Grant Grant  `json:"grant"`
}

// Grant is the grant as an event shows it: what a reviewer needs, no
// credential material.
type Grant struct {
	ID             string           `json:"id"`
	Status         string           `json:"status"`
	Identity       string           `json:"identity"`
	IdentityKind   string           `json:"identity_kind"`
	Owner          string           `json:"owner,omitempty"`
	Target         string           `json:"target"`
	Account        string           `json:"account"`
	RequestedScope []string         `json:"requested_scope"`
	GrantedScope   []string         `json:"granted_scope,omitempty"`
	Duration       string           `json:"duration"`
	Reason         string           `json:"reason"`
	Policy         string           `json:"policy_explanation"`
	RequestedAt    time.Time        `json:"requested_at"`
	DecideBy       time.Time        `json:"decide_by,omitzero"`
	StartedAt      time.Time        `json:"started_at,omitzero"`
	ExpiresAt      time.Time        `json:"expires_at,omitzero"`
	EndedAt        time.Time        `json:"ended_at,omitzero"`
	EndReason      string           `json:"end_reason,omitempty"`
	EndedBy        string           `json:"ended_by,omitempty"`
	EndComment     string           `json:"end_comment,omitempty"`
	Approvals      []model.Approval `json:"approvals,omitempty"`
}

func newEvent(c grants.Change, now time.Time) Event {
	g := c.Grant
	return Event{ID: eventID(), Type: c.Type, Time: now.UTC(), Actor: c.Actor, Grant: Grant{
		ID: g.ID, Status: string(g.Status), Identity: g.Identity, IdentityKind: string(g.IdentityKind), Owner: g.Owner,
		Target: g.Target, Account: g.Account, RequestedScope: g.RequestedScope.Strings(), GrantedScope: g.GrantedScope.Strings(),
		Duration: g.Duration.String(), Reason: g.Reason, Policy: g.Decision.Explanation,
		RequestedAt: g.RequestedAt, DecideBy: g.DecideBy, StartedAt: g.StartedAt, ExpiresAt: g.ExpiresAt, EndedAt: g.EndedAt,
		EndReason: g.EndReason, EndedBy: g.EndedBy, EndComment: g.EndComment, Approvals: g.Approvals,
	}}
}

func marshalEvent(ev Event) ([]byte, error) { return json.Marshal(ev) }

func eventID() string {
	var b [12]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("notify: crypto/rand failed: " + err.Error())
	}
	return "evt_" + hex.EncodeToString(b[:])
}
