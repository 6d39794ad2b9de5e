// Package review turns grant records into review rows: one row per grant
// answering the five questions of an access review (who, what scope, when
// and why it ended, who or what approved it, what happened).
package review

import (
	"fmt"
	"strings"
	"time"

	"github.com/airlock-dev/airlock/internal/model"
	"github.com/airlock-dev/airlock/internal/textesc"
)

// Row is one grant's answers. Field order is the CSV column order.
type Row struct {
	Grant string `json:"grant"`
	// 1. Who
	Identity     string `json:"identity"`
	IdentityKind string `json:"identity_kind"`
	Owner        string `json:"owner"`
	// 2. What scope
	Target         string   `json:"target"`
	Account        string   `json:"account"`
	ScopeRequested []string `json:"scope_requested"`
	ScopeGranted   []string `json:"scope_granted"`
	ScopeUsed      []string `json:"scope_used"`
	Reason         string   `json:"reason"`
	// 3. When, and why it ended
	Status      string    `json:"status"`
	RequestedAt time.Time `json:"requested_at"`
	StartedAt   time.Time `json:"started_at,omitzero"`
	ExpiresAt   time.Time `json:"expires_at,omitzero"`
	EndedAt     time.Time `json:"ended_at,omitzero"`
	EndReason   string    `json:"end_reason"`
	EndedBy     string    `json:"ended_by"`
	EndComment  string    `json:"end_comment"`
	// 4. Who or what approved
	ApprovedBy    string    `json:"approved_by"`
	ApprovalKind  string    `json:"approval_kind"` // "person", "policy", or "" (not approved)
	DecidedAt     time.Time `json:"decided_at,omitzero"`
	PolicyIDs     []string  `json:"policy_ids"`
	PolicySetHash string    `json:"policy_set_hash"`
	Explanation   string    `json:"explanation"`
	// 5. What happened
	Sessions    int64 `json:"sessions"`
	Calls       int64 `json:"calls"`
	DeniedCalls int64 `json:"denied_calls"`
	BytesIn     int64 `json:"bytes_in"`
	BytesOut    int64 `json:"bytes_out"`
	// LogMismatch lists how the stored record differs from what the audit
	// log implies (model.Grant.LogMismatch); empty when the log proves it.
	LogMismatch []string `json:"log_mismatch,omitempty"`
	// Auth is how the requester authenticated: "key" or
	// "oidc:<issuer> <subject>" (part of who).
	Auth string `json:"auth"`
	// Findings are the shared-identity and credential-moved findings
	// raised about the grant (part of who, and of what happened).
	Findings []model.Finding `json:"findings"`
	// ApprovedAuth and EndedAuth are the credentials the person who
	// approved, and the person who denied or revoked, decided with
	// (model.SignIn.String: "api_key k_…" or "sso <issuer> <subject>"),
	// so that the review tells which credential decided; "" where the
	// decision came through Slack or a webhook, was policy's, or was
	// recorded before decisions carried it (part of who approved). In
	// JSON they are left out when empty, unlike the other fields: an
	// evidence bundle's rows, which leave them out (evidence.deriveRows),
	// must encode back to their signed bytes.
	ApprovedAuth string `json:"approved_auth,omitempty"`
	EndedAuth    string `json:"ended_auth,omitempty"`
}

// UsedCapNote is what a human view of a review adds to a scope used that
// may have been cut at MaxUsed distinct pairs per session, so that nobody
// takes it for the whole: a session's 101st distinct resource is in its
// recording, not in the summary.
const UsedCapNote = "at most 100 distinct per session are listed here; airlock session show has every call"

// UsedMayBeCapped reports whether used (a grant's or a session's scope
// used) may be missing pairs because a session reached MaxUsed: it holds
// MaxUsed or more (a grant's list merges its sessions'). An agent could
// otherwise read 100 decoys first and the one object it wanted after, and
// the review's "scope used" would not show it, nor that anything is left
// out.
func UsedMayBeCapped(used []string) bool { return len(used) >= MaxUsed }

// FindingSummary renders one finding for a table cell or CSV field:
// "credential-moved from 127.0.0.2 (refused)".
func FindingSummary(f model.Finding) string {
	s := f.Kind + " from " + f.Instance
	if f.Refused {
		s += " (refused)"
	}
	return s
}

// FromGrant derives a row.
func FromGrant(g model.Grant) Row {
	r := Row{
		Grant: g.ID, Identity: g.Identity, IdentityKind: string(g.IdentityKind), Owner: g.Owner,
		Target: g.Target, Account: g.Account,
		ScopeRequested: g.RequestedScope.Strings(), ScopeGranted: g.GrantedScope.Strings(), ScopeUsed: g.Usage.ScopeUsed,
		Reason: g.Reason, Status: string(g.Status),
		RequestedAt: g.RequestedAt, StartedAt: g.StartedAt, ExpiresAt: g.ExpiresAt, EndedAt: g.EndedAt,
		EndReason: g.EndReason, EndedBy: g.EndedBy, EndComment: g.EndComment,
		DecidedAt: g.DecidedAt, PolicyIDs: g.Decision.PolicyIDs, PolicySetHash: g.Decision.PolicySetHash,
		Explanation: g.Decision.Explanation,
		Sessions:    g.Usage.Sessions, Calls: g.Usage.Calls, DeniedCalls: g.Usage.DeniedCalls,
		BytesIn: g.Usage.BytesIn, BytesOut: g.Usage.BytesOut, LogMismatch: g.LogMismatch,
		Auth: g.Auth, Findings: g.Findings, EndedAuth: g.EndedAuth.String(),
	}
	if r.Findings == nil {
		r.Findings = []model.Finding{}
	}
	if r.ScopeRequested == nil {
		r.ScopeRequested = []string{}
	}
	if r.ScopeGranted == nil {
		r.ScopeGranted = []string{}
	}
	if r.ScopeUsed == nil {
		r.ScopeUsed = []string{}
	}
	if r.PolicyIDs == nil {
		r.PolicyIDs = []string{}
	}
	for _, a := range g.Approvals {
		if a.Decision == "approved" {
			r.ApprovedBy, r.ApprovalKind, r.ApprovedAuth = a.Approver, "person", a.Auth.String()
			r.PolicyIDs = a.Policies
			r.PolicySetHash = a.PolicySetHash
		}
	}
	if r.ApprovalKind == "" && g.Decision.Outcome == "auto" && !g.StartedAt.IsZero() {
		r.ApprovedBy, r.ApprovalKind = "policy "+strings.Join(g.Decision.PolicyIDs, ","), "policy"
	}
	return r
}

// Header is the CSV header.
var Header = []string{
	"grant", "identity", "identity_kind", "owner", "target", "account", "scope_requested", "scope_granted",
	"scope_used", "reason", "status", "requested_at", "started_at", "expires_at", "ended_at", "end_reason",
	"ended_by", "end_comment", "approved_by", "approval_kind", "decided_at", "policy_ids", "policy_set_hash",
	"explanation", "sessions", "calls", "denied_calls", "bytes_in", "bytes_out", "log_mismatch",
	"auth", "findings", "approved_auth", "ended_auth",
}

// Record renders the row as CSV fields in Header order. Lists are joined
// with "; " and times are RFC 3339 UTC (empty when unset). A field that a
// spreadsheet would read as a formula (one starting with =, +, -, @, a tab
// or a carriage return: an agent's reason or end comment, say) is written
// with a leading apostrophe, so that opening the review in a spreadsheet
// shows the text rather than running it (see CSVField). Control
// characters, bidirectional overrides and bytes that are not UTF-8 (in an
// S3 key the agent read, its reason) are written as visible escapes
// (textesc.String): the CSV is read by people, in a spreadsheet or a
// terminal, where a carriage return and ESC[2K rewrite a line. -o json
// keeps every value exact.
func (r Row) Record() []string {
	rec := r.record()
	for i, f := range rec {
		rec[i] = CSVField(textesc.String(f))
	}
	return rec
}

// CSVField neutralises a CSV field that a spreadsheet would evaluate as a
// formula (OWASP's "CSV injection"): it prefixes it with an apostrophe.
// Every other field is returned unchanged.
func CSVField(s string) string {
	if s == "" {
		return s
	}
	switch s[0] {
	case '=', '+', '-', '@', '\t', '\r':
		return "'" + s
	}
	return s
}

func (r Row) record() []string {
	ts := func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.UTC().Format(time.RFC3339Nano)
	}
	j := func(s []string) string { return strings.Join(s, "; ") }
	n := func(v int64) string { return fmt.Sprint(v) }
	return []string{
		r.Grant, r.Identity, r.IdentityKind, r.Owner, r.Target, r.Account, j(r.ScopeRequested), j(r.ScopeGranted),
		j(r.ScopeUsed), r.Reason, r.Status, ts(r.RequestedAt), ts(r.StartedAt), ts(r.ExpiresAt), ts(r.EndedAt), r.EndReason,
		r.EndedBy, r.EndComment, r.ApprovedBy, r.ApprovalKind, ts(r.DecidedAt), j(r.PolicyIDs), r.PolicySetHash,
		r.Explanation, n(r.Sessions), n(r.Calls), n(r.DeniedCalls), n(r.BytesIn), n(r.BytesOut), j(r.LogMismatch),
		r.Auth, j(findingList(r.Findings)), r.ApprovedAuth, r.EndedAuth,
	}
}

func findingList(fs []model.Finding) []string {
	out := make([]string, len(fs))
	for i, f := range fs {
		out[i] = FindingSummary(f)
	}
	return out
}
