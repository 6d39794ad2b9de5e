package cli

import (
	"bytes"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/airlock-dev/airlock/internal/model"
	"github.com/airlock-dev/airlock/internal/review"
)

// TestGrantsTableShowsScopes: the review table answers "what scope" in
// full: the scope granted, the scope requested where it differs, and the
// scope used itself (the first three entries, then how many more), not
// only a count of it.
func TestGrantsTableShowsScopes(t *testing.T) {
	at := time.Date(2026, 12, 4, 2, 6, 1, 0, time.UTC)
	logs := []string{"s3:GetObject,s3:ListBucket arn:aws:s3:::logs/app/*"}
	rows := []review.Row{
		{Grant: "g_same", Identity: "bot", ScopeRequested: logs, ScopeGranted: logs, Status: "ended", RequestedAt: at,
			ScopeUsed: []string{"s3:GetObject arn:aws:s3:::logs/app/a", "s3:GetObject arn:aws:s3:::logs/app/b", "s3:GetObject arn:aws:s3:::logs/app/c",
				"s3:GetObject arn:aws:s3:::logs/app/d", "s3:ListBucket arn:aws:s3:::logs/app/"}},
		{Grant: "g_narrowed", Identity: "bot", ScopeRequested: []string{"s3:GetObject arn:aws:s3:::logs/*"},
			ScopeGranted: []string{"s3:GetObject arn:aws:s3:::logs/app/*"}, Status: "active", RequestedAt: at,
			ScopeUsed: []string{"s3:GetObject arn:aws:s3:::logs/app/x"}},
		{Grant: "g_pending", Identity: "bot", ScopeRequested: []string{"pg:select orders.public.*"}, Status: "pending", RequestedAt: at},
	}
	var out bytes.Buffer
	if err := printGrantRows(tabwriter.NewWriter(&out, 0, 0, 2, ' ', 0), rows, true); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimRight(out.String(), "\n"), "\n")
	if len(lines) != 4 || !strings.Contains(lines[0], "SCOPE GRANTED") || !strings.Contains(lines[0], "SCOPE USED") {
		t.Fatalf("table:\n%s", out.String())
	}
	cols := regexp.MustCompile(` {2,}`)
	for i, want := range [][2]string{
		{"s3:GetObject,s3:ListBucket arn:aws:s3:::logs/app/*", "s3:GetObject arn:aws:s3:::logs/app/a; s3:GetObject arn:aws:s3:::logs/app/b; s3:GetObject arn:aws:s3:::logs/app/c (+2 more)"},
		{"s3:GetObject arn:aws:s3:::logs/app/* (requested: s3:GetObject arn:aws:s3:::logs/*)", "s3:GetObject arn:aws:s3:::logs/app/x"},
		{"(requested) pg:select orders.public.*", "-"},
	} {
		c := cols.Split(lines[i+1], -1)
		if len(c) < 4 || c[2] != want[0] || c[3] != want[1] {
			t.Errorf("row %d: scope cells %q, want %q", i+1, c, want)
		}
	}
}

// TestGrantsTableShowsWhyEnded: the review table answers "why it ended"
// (DESIGN.md: "revoked by whom and why, ended by the agent, task
// finished"), not only who ended it and when.
func TestGrantsTableShowsWhyEnded(t *testing.T) {
	at := time.Date(2026, 12, 4, 2, 6, 1, 0, time.UTC)
	sc := []string{"s3:GetObject arn:aws:s3:::logs/*"}
	rows := []review.Row{
		{Grant: "g_revoked", Identity: "bot", ScopeRequested: sc, ScopeGranted: sc, Status: "revoked", RequestedAt: at,
			EndReason: "revoked", EndedBy: "alice", EndedAt: at, EndComment: "incident closed"},
		{Grant: "g_ended", Identity: "bot", ScopeRequested: sc, ScopeGranted: sc, Status: "ended", RequestedAt: at,
			EndReason: "ended", EndedBy: "bot", EndedAt: at, EndComment: "command exited with status 0"},
		{Grant: "g_denied", Identity: "bot", ScopeRequested: sc, Status: "denied", RequestedAt: at,
			EndReason: "denied", EndedBy: "alice", EndedAt: at, EndComment: "not during the freeze"},
		{Grant: "g_expired", Identity: "bot", ScopeRequested: sc, ScopeGranted: sc, Status: "expired", RequestedAt: at,
			EndReason: "expired", EndedBy: "airlock", EndedAt: at, EndComment: "reached its expiry time"},
	}
	var out bytes.Buffer
	if err := printGrantRows(tabwriter.NewWriter(&out, 0, 0, 2, ' ', 0), rows, true); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimRight(out.String(), "\n"), "\n")
	if len(lines) != 5 {
		t.Fatalf("table:\n%s", out.String())
	}
	for i, want := range []string{
		"revoked by alice at 2026-12-04 02:06:01Z: incident closed",
		"ended by bot at 2026-12-04 02:06:01Z: command exited with status 0",
		"denied by alice at 2026-12-04 02:06:01Z: not during the freeze",
		"expired by airlock at 2026-12-04 02:06:01Z  ",
	} {
		if !strings.Contains(lines[i+1], want) {
			t.Errorf("row %d does not say %q:\n%s", i+1, want, lines[i+1])
		}
	}
}

// TestGrantsTableShowsWhenDecided: the review table answers "who or what
// approved it" with the time of the decision (DESIGN.md: "the person …,
// or the policy and its version, with the time"), for a person's approval
// and a policy's alike; a grant nobody approved shows "-".
func TestGrantsTableShowsWhenDecided(t *testing.T) {
	at := time.Date(2026, 12, 4, 2, 6, 1, 0, time.UTC)
	sc := []string{"s3:GetObject arn:aws:s3:::logs/*"}
	rows := []review.Row{
		{Grant: "g_person", Identity: "bot", ScopeRequested: sc, ScopeGranted: sc, Status: "active", RequestedAt: at,
			ApprovedBy: "alice", ApprovalKind: "person", DecidedAt: at.Add(3 * time.Minute)},
		{Grant: "g_policy", Identity: "bot", ScopeRequested: sc, ScopeGranted: sc, Status: "active", RequestedAt: at,
			ApprovedBy: "policy triage-reads-app-logs", ApprovalKind: "policy", DecidedAt: at},
		{Grant: "g_pending", Identity: "bot", ScopeRequested: sc, Status: "pending", RequestedAt: at},
	}
	var out bytes.Buffer
	if err := printGrantRows(tabwriter.NewWriter(&out, 0, 0, 2, ' ', 0), rows, true); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimRight(out.String(), "\n"), "\n")
	if len(lines) != 4 {
		t.Fatalf("table:\n%s", out.String())
	}
	cols := regexp.MustCompile(` {2,}`)
	for i, want := range []string{"alice at 2026-12-04 02:09:01Z", "policy triage-reads-app-logs at 2026-12-04 02:06:01Z", "-"} {
		c := cols.Split(lines[i+1], -1)
		if len(c) < 8 || c[7] != want {
			t.Errorf("row %d: APPROVED BY cell %q, want %q (cells %q)", i+1, c[min(7, len(c)-1)], want, c)
		}
	}
}

// TestGrantsTableMarksCappedScopeUsed: a session's scope used keeps at
// most review.MaxUsed distinct pairs, so an agent that read 100 decoys
// first had the object it wanted left out of the review's SCOPE USED,
// with nothing to say that the list was cut. The table says so where it
// may be, and not otherwise.
func TestGrantsTableMarksCappedScopeUsed(t *testing.T) {
	at := time.Date(2026, 12, 4, 2, 6, 1, 0, time.UTC)
	sc := []string{"s3:GetObject arn:aws:s3:::logs/*"}
	var full, some []string
	for i := range review.MaxUsed {
		full = append(full, fmt.Sprintf("s3:GetObject arn:aws:s3:::logs/app/decoy-%d", i))
	}
	some = full[:review.MaxUsed-1]
	rows := []review.Row{
		{Grant: "g_capped", Identity: "bot", ScopeRequested: sc, ScopeGranted: sc, Status: "active", RequestedAt: at, ScopeUsed: full},
		{Grant: "g_under", Identity: "bot", ScopeRequested: sc, ScopeGranted: sc, Status: "active", RequestedAt: at, ScopeUsed: some},
	}
	var out bytes.Buffer
	if err := printGrantRows(tabwriter.NewWriter(&out, 0, 0, 2, ' ', 0), rows, true); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimRight(out.String(), "\n"), "\n")
	if len(lines) != 3 {
		t.Fatalf("table:\n%s", out.String())
	}
	if !strings.Contains(lines[1], "(+97 more) ("+review.UsedCapNote+")") {
		t.Errorf("a scope used of %d pairs is not marked as possibly cut:\n%s", review.MaxUsed, lines[1])
	}
	if strings.Contains(lines[2], review.UsedCapNote) {
		t.Errorf("a scope used of %d pairs is marked as cut:\n%s", review.MaxUsed-1, lines[2])
	}
}

// TestGrantShowEndedWithoutComment: `airlock grant show` of a grant its
// holder gave up with no --comment printed "Ended: ended at … by bot: -",
// a "why" of "-" that the review table does not show; with a comment the
// comment follows, escaped.
func TestGrantShowEndedWithoutComment(t *testing.T) {
	at := time.Date(2026, 12, 4, 2, 6, 1, 0, time.UTC)
	for _, tc := range []struct{ comment, want string }{
		{"", "Ended:            ended at 2026-12-04 02:06:01Z by bot\n"},
		{"done\x1b[2J", "Ended:            ended at 2026-12-04 02:06:01Z by bot: done\\x1b[2J\n"},
	} {
		g := model.Grant{ID: "g_x", Identity: "bot", Status: model.Ended, StartedAt: at, ExpiresAt: at.Add(time.Minute),
			EndedAt: at, EndReason: "ended", EndedBy: "bot", EndComment: tc.comment}
		var out bytes.Buffer
		printGrant(&out, g, nil, nil)
		if !strings.Contains(out.String(), tc.want) {
			t.Errorf("comment %q: want a line %q in\n%s", tc.comment, tc.want, out.String())
		}
	}
}

// TestGrantsTableShowsReason: the review table answers "why" with the
// requester's reason (it had no REASON column; only -o json and -o csv
// had it): the first 40 characters, "…" where it was cut, control
// characters escaped so that a reason cannot rewrite the row or break its
// columns, "-" for none.
func TestGrantsTableShowsReason(t *testing.T) {
	at := time.Date(2026, 12, 4, 2, 6, 1, 0, time.UTC)
	sc := []string{"s3:GetObject arn:aws:s3:::logs/*"}
	long := "errors in checkout since the deploy at 09:00, see INC-4411 for the full story"
	rows := []review.Row{}
	for i, reason := range []string{"triage checkout errors", long, "a\x1b[2Jb\tc\u202ed", "", "caf\xff"} {
		rows = append(rows, review.Row{Grant: fmt.Sprintf("g_%d", i), Identity: "bot", ScopeRequested: sc, ScopeGranted: sc, Status: "active",
			RequestedAt: at, Reason: reason})
	}
	var out bytes.Buffer
	if err := printGrantRows(tabwriter.NewWriter(&out, 0, 0, 2, ' ', 0), rows, true); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimRight(out.String(), "\n"), "\n")
	if len(lines) != len(rows)+1 || !strings.HasSuffix(lines[0], "REASON") {
		t.Fatalf("table:\n%s", out.String())
	}
	for i, want := range []string{"triage checkout errors", long[:40] + "…", `a\x1b[2Jb\tc\u202ed`, "-", `caf\xff`} {
		if !strings.HasSuffix(lines[i+1], "  "+want) {
			t.Errorf("row %d does not end with the reason %q:\n%s", i+1, want, lines[i+1])
		}
		if strings.ContainsAny(lines[i+1], "\x1b\t\u202e") {
			t.Errorf("row %d holds a raw control character: %q", i+1, lines[i+1])
		}
	}
}
