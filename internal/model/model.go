// Package model defines the records Airlock keeps: identities, grants with
// their policy decision and approvals, and gateway sessions. The types are
// plain data shared by the store, the lifecycle service, the API and the CLI;
// they carry no behaviour beyond small derived helpers.
package model

import (
	"time"

	"github.com/airlock-dev/airlock/internal/scope"
)

// IdentityKind is "agent" or "human".
type IdentityKind string

const (
	Agent IdentityKind = "agent"
	Human IdentityKind = "human"
)

// Identity is one named principal. Only the SHA-256 of its key is kept.
type Identity struct {
	Name      string       `json:"name"`
	Kind      IdentityKind `json:"kind"`
	Owner     string       `json:"owner,omitempty"`
	Groups    []string     `json:"groups,omitempty"`
	KeySHA256 string       `json:"-"`
	// Source is "config" for identities from airlock.yaml, "api" for agents
	// added with `airlock agent add`.
	Source    string    `json:"source"`
	Disabled  bool      `json:"disabled"`
	CreatedAt time.Time `json:"created_at,omitzero"`
	CreatedBy string    `json:"created_by,omitempty"`
}

// GrantStatus is a grant's place in its lifecycle.
type GrantStatus string

const (
	Pending   GrantStatus = "pending"
	Active    GrantStatus = "active"
	Expired   GrantStatus = "expired"
	Revoked   GrantStatus = "revoked"
	Ended     GrantStatus = "ended"
	Denied    GrantStatus = "denied"
	Cancelled GrantStatus = "cancelled"
)

// Final reports whether the status can no longer change.
func (s GrantStatus) Final() bool { return s != Pending && s != Active }

// Valid reports whether s is one of the defined statuses.
func (s GrantStatus) Valid() bool {
	switch s {
	case Pending, Active, Expired, Revoked, Ended, Denied, Cancelled:
		return true
	}
	return false
}

// Grant is one access from request to end: the record that answers the five
// review questions.
type Grant struct {
	ID           string       `json:"id"`
	Identity     string       `json:"identity"`
	IdentityKind IdentityKind `json:"identity_kind"`
	Owner        string       `json:"owner,omitempty"`
	Target       string       `json:"target"`
	TargetKind   string       `json:"target_kind"`
	Account      string       `json:"account"`

	RequestedScope scope.Scope `json:"requested_scope"`
	// GrantedScope is empty until the grant is approved.
	GrantedScope scope.Scope   `json:"granted_scope,omitempty"`
	Reason       string        `json:"reason"`
	Duration     time.Duration `json:"duration_ns"`
	// Extends is the id of the grant this request extends, if any.
	Extends string `json:"extends,omitempty"`

	Status      GrantStatus `json:"status"`
	RequestedAt time.Time   `json:"requested_at"`
	// DecideBy is when a pending grant is cancelled if nobody decided.
	DecideBy  time.Time `json:"decide_by,omitzero"`
	DecidedAt time.Time `json:"decided_at,omitzero"`
	StartedAt time.Time `json:"started_at,omitzero"`
	ExpiresAt time.Time `json:"expires_at,omitzero"`
	EndedAt   time.Time `json:"ended_at,omitzero"`
	// EndReason says why the grant ended: expired, revoked, ended, denied,
	// cancelled, with EndedBy naming the person or "airlock" and EndComment
	// the stated reason.
	EndReason  string `json:"end_reason,omitempty"`
	EndedBy    string `json:"ended_by,omitempty"`
	EndComment string `json:"end_comment,omitempty"`

	Decision  PolicyDecision `json:"decision"`
	Approvals []Approval     `json:"approvals,omitempty"`

	// CredentialID is the public half of the grant credential a gateway
	// authenticates (an access key id); the secret is never stored.
	CredentialID          string `json:"credential_id,omitempty"`
	CredentialFingerprint string `json:"credential_fingerprint,omitempty"`

	Usage Usage `json:"usage"`

	// LogMismatch lists how this record differs from what the audit log
	// implies for it (set when it is read, never stored). A record with
	// entries here is not proven by the log and must not be shown as if
	// it were.
	LogMismatch []string `json:"log_mismatch,omitempty"`
}

// Deadline is the latest moment the grant can still be live: its decision
// deadline while pending, its expiry while active, its end once final.
func (g *Grant) Deadline() time.Time {
	switch {
	case g.Status.Final():
		return g.EndedAt
	case g.Status == Active:
		return g.ExpiresAt
	default:
		return g.DecideBy
	}
}

// Usage summarises what the grant's sessions did; filled by the store from
// session records.
type Usage struct {
	Sessions    int64    `json:"sessions"`
	Calls       int64    `json:"calls"`
	DeniedCalls int64    `json:"denied_calls"`
	BytesIn     int64    `json:"bytes_in"`
	BytesOut    int64    `json:"bytes_out"`
	ScopeUsed   []string `json:"scope_used,omitempty"`
}

// PolicyDecision is the policy engine's answer to a request, kept verbatim.
type PolicyDecision struct {
	// Outcome is "auto" (granted by policy), "human" (waits for an approver)
	// or "deny".
	Outcome       string         `json:"outcome"`
	PolicySetHash string         `json:"policy_set_hash"`
	PolicyIDs     []string       `json:"policy_ids,omitempty"`
	Explanation   string         `json:"explanation"`
	Pairs         []PairDecision `json:"pairs,omitempty"`
	At            time.Time      `json:"at"`
}

// PairDecision is the decision for one (action, resource pattern) pair.
type PairDecision struct {
	Action   string   `json:"action"`
	Resource string   `json:"resource"`
	Allowed  bool     `json:"allowed"`
	Approval string   `json:"approval,omitempty"`
	Policies []string `json:"policies,omitempty"`
	Errors   []string `json:"errors,omitempty"`
}

// Approval is one person's decision on a pending grant.
type Approval struct {
	Approver string `json:"approver"`
	// Decision is "approved" or "denied".
	Decision string    `json:"decision"`
	Comment  string    `json:"comment,omitempty"`
	At       time.Time `json:"at"`
	// Policies are the approve policies that permitted this person, and
	// PolicySetHash the set they were evaluated in.
	Policies      []string `json:"policies,omitempty"`
	PolicySetHash string   `json:"policy_set_hash,omitempty"`
	// Via names the channel the decision came through when it was not the
	// API or CLI ("slack"), and SlackUser the Slack user id who clicked.
	Via       string `json:"via,omitempty"`
	SlackUser string `json:"slack_user,omitempty"`
}

// Session is one connection or stream of calls through a gateway under a grant.
type Session struct {
	ID        string    `json:"id"`
	GrantID   string    `json:"grant_id"`
	Identity  string    `json:"identity"`
	Target    string    `json:"target"`
	Client    string    `json:"client,omitempty"`
	StartedAt time.Time `json:"started_at"`
	EndedAt   time.Time `json:"ended_at,omitzero"`
	Calls     int64     `json:"calls"`
	Denied    int64     `json:"denied"`
	BytesIn   int64     `json:"bytes_in"`
	BytesOut  int64     `json:"bytes_out"`
	// Used lists the distinct "action resource" pairs the session exercised.
	Used []string `json:"used,omitempty"`
	// LogMismatch is as for Grant.
	LogMismatch []string `json:"log_mismatch,omitempty"`
}
