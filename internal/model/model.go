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
	// Auth is how this caller authenticated on this request: "key", or
	// "oidc:<issuer> <subject>" for a workload token. Set per request by
	// the API, never stored with the identity.
	Auth string `json:"auth,omitempty"`
	// Instance is the fingerprint of the caller's instance on this
	// request (set per request, never stored with the identity).
	Instance *Instance `json:"instance,omitempty"`
	// SignIn is the credential a person presented on this request (set
	// per request by the API and the console, never stored with the
	// identity): the decisions they make record it.
	SignIn *SignIn `json:"-"`
	// AuthMethods is how this identity may authenticate: "key" when it has
	// an API key, and "oidc:<issuer> <subject> <claim>=<value>..." for its
	// workload token binding. The API fills it from the running
	// configuration when it shows an identity; it is never stored.
	AuthMethods []string `json:"auth_methods,omitempty"`
	// Bindings are the other ways airlock.yaml lets one act as this
	// configured identity, as its newest identity.* entry recorded them.
	// They are stored so that a start compares the file with one row per
	// identity (not with the log) to find a change it must log. nil when
	// no entry recorded any: agents added through the API, and identities
	// last written before entries stated them.
	Bindings *Bindings `json:"-"`
}

// SignIn is the credential a person's decision was made with, so that an
// auditor can tell which one approved: an API key (Method "api_key", with
// KeyID, authn.KeyID of the key's hash: never the key or its hash) or an
// SSO console session (Method "sso", with the ID token's issuer and
// subject that opened it). A console session opened with a key records
// that key's "api_key". An agent that signed in with a workload token has
// Method "oidc", with the token's issuer and subject: the record of a
// decision refused to it (decision.refused) names it so.
type SignIn struct {
	Method  string `json:"method"`
	KeyID   string `json:"key_id,omitempty"`
	Issuer  string `json:"issuer,omitempty"`
	Subject string `json:"subject,omitempty"`
}

// Sign-in methods.
const (
	SignInAPIKey = "api_key"
	SignInSSO    = "sso"
	SignInOIDC   = "oidc"
)

// String is s on one line: "api_key k_…", "sso <issuer> <subject>",
// "oidc <issuer> <subject>", or "" for nil (a decision recorded before
// decisions carried it, or made through Slack or a webhook, which record
// their own).
func (s *SignIn) String() string {
	switch {
	case s == nil:
		return ""
	case s.Method == SignInAPIKey:
		return s.Method + " " + s.KeyID
	case s.Method == SignInSSO, s.Method == SignInOIDC:
		return s.Method + " " + s.Issuer + " " + s.Subject
	}
	return s.Method
}

// Bindings are how a configured identity is acted as other than with its
// API key: a person's email (console SSO sign-in) and Slack member id
// (Approve/Deny clicks), an agent's workload token binding
// (workload.Binding.Describe). "" is none.
type Bindings struct {
	Email     string `json:"email"`
	SlackUser string `json:"slack_user"`
	OIDC      string `json:"oidc"`
}

// Instance is what tells one running copy of a client from another: its
// source address (IP, without the port), user agent, the SHA-256 of its TLS
// client certificate, and for workload tokens the issuer's configured
// instance claims (a pod name, a CI run id).
type Instance struct {
	IP        string            `json:"ip"`
	UserAgent string            `json:"user_agent,omitempty"`
	TLSClient string            `json:"tls_client,omitempty"`
	Claims    map[string]string `json:"claims,omitempty"`
}

// Finding kinds.
const (
	FindingSharedIdentity  = "shared-identity"
	FindingCredentialMoved = "credential-moved"
)

// Finding is a sign that "who" may not be one agent: one identity active
// from several instances at once (shared-identity), or a grant's gateway
// credentials used from another instance than the one that requested them
// (credential-moved). Each is a "finding" log event.
type Finding struct {
	Kind     string    `json:"kind"`
	At       time.Time `json:"at"`
	Identity string    `json:"identity"`
	Grant    string    `json:"grant,omitempty"`
	Session  string    `json:"session,omitempty"`
	// Instance is the instance the finding was raised for (the new one),
	// as a short description; Others the instances it conflicts with (at
	// most findings.MaxOthers of them; Detail counts them all).
	Instance string   `json:"instance"`
	Others   []string `json:"others,omitempty"`
	// Refused is true when identity_binding: refuse turned the call away.
	Refused bool   `json:"refused"`
	Detail  string `json:"detail"`
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
	EndReason string `json:"end_reason,omitempty"`
	EndedBy   string `json:"ended_by,omitempty"`
	// EndedAuth is the credential EndedBy denied or revoked with, from the
	// API or the console (absent otherwise, and from grants ended before
	// decisions recorded it).
	EndedAuth  *SignIn `json:"ended_auth,omitempty"`
	EndComment string  `json:"end_comment,omitempty"`

	Decision  PolicyDecision `json:"decision"`
	Approvals []Approval     `json:"approvals,omitempty"`

	// CredentialID is the public half of the grant credential a gateway
	// authenticates (an access key id); the secret is never stored.
	CredentialID          string `json:"credential_id,omitempty"`
	CredentialFingerprint string `json:"credential_fingerprint,omitempty"`

	Usage Usage `json:"usage"`

	// Auth is how the requester authenticated: "key" or
	// "oidc:<issuer> <subject>".
	Auth string `json:"auth,omitempty"`
	// RequestedFrom is the requester's instance.
	RequestedFrom *Instance `json:"requested_from,omitempty"`
	// Findings raised about this grant (shared identity at request time,
	// credentials used from another instance).
	Findings []Finding `json:"findings,omitempty"`

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
	// Via names the channel the decision came through ("api" for the API
	// and CLI, "slack", "webhook", "console"), and SlackUser the Slack user
	// id who clicked. It is empty in approvals recorded before API
	// decisions carried "api" (an API or CLI decision then).
	Via       string `json:"via,omitempty"`
	SlackUser string `json:"slack_user,omitempty"`
	// Auth is the credential the person decided with, through the API or
	// the console (absent from Slack's and webhooks' decisions, and from
	// those recorded before decisions carried it).
	Auth *SignIn `json:"auth,omitempty"`
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
