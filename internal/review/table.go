package review

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/airlock-dev/airlock/internal/model"
)

// TableHeader is the review table's header row (tab-separated), as
// `airlock grants` prints it and `airlock demo` shows it.
const TableHeader = "GRANT\tWHO\tSCOPE GRANTED\tSCOPE USED\tWHEN\tSTATUS\tENDED\tAPPROVED BY\tSESSIONS\tCALLS\tDENIED\tFINDINGS\tREASON"

// UnprovenMark follows the id of a grant whose record says what the log
// does not (Row.LogMismatch) wherever a person reads it.
const UnprovenMark = " !NOT-IN-LOG"

// maxReasonShown is how many characters of the requester's reason the
// table shows: the "why" belongs in the review, but a reason may be a
// paragraph, and the last column of every row would then run on past the
// screen. -o json, -o csv and grant show give it whole.
const maxReasonShown = 40

// maxUsedShown is how many entries of a grant's used scope the table
// shows; -o json and -o csv give them all.
const maxUsedShown = 3

// TableCells is r as one row of the review table, a cell per column of
// TableHeader, not yet escaped for a terminal: the five answers, with the
// scope as granted (and as requested, where that differs) beside the
// scope used. The CLI and the demo share it so that the walkthrough shows
// what a reviewer will see.
func TableCells(r Row) []string {
	sc := strings.Join(r.ScopeGranted, "; ")
	switch {
	case sc == "":
		sc = "(requested) " + strings.Join(r.ScopeRequested, "; ")
	case !slices.Equal(r.ScopeGranted, r.ScopeRequested):
		sc += " (requested: " + strings.Join(r.ScopeRequested, "; ") + ")"
	}
	used := "-"
	if n := len(r.ScopeUsed); n > 0 {
		used = strings.Join(r.ScopeUsed[:min(n, maxUsedShown)], "; ")
		if n > maxUsedShown {
			used += fmt.Sprintf(" (+%d more)", n-maxUsedShown)
		}
		if UsedMayBeCapped(r.ScopeUsed) {
			used += " (" + UsedCapNote + ")"
		}
	}
	when := tableTime(r.RequestedAt)
	if !r.StartedAt.IsZero() {
		when = tableTime(r.StartedAt) + " → " + tableTime(r.ExpiresAt)
	}
	ended := orDash(r.EndReason)
	if r.EndedBy != "" {
		ended += " by " + r.EndedBy
	}
	if !r.EndedAt.IsZero() {
		ended += " at " + tableTime(r.EndedAt)
	}
	// Why it ended: the revoker's or denier's reason, the holder's
	// comment (an exec's exit status), why a request was cancelled. An
	// expiry needs no why beyond its time.
	if r.EndComment != "" && r.Status != "expired" {
		ended += ": " + r.EndComment
	}
	// Who or what approved it, and when (DESIGN.md's fourth question:
	// "with the time … of the decision"); a denial is in ENDED.
	approved := orDash(r.ApprovedBy)
	if r.ApprovedBy != "" && !r.DecidedAt.IsZero() {
		approved += " at " + tableTime(r.DecidedAt)
	}
	grant := r.Grant
	if len(r.LogMismatch) > 0 {
		grant += UnprovenMark
	}
	return []string{grant, r.Identity + " (" + orDash(r.Owner) + ")", sc, used, when, r.Status,
		ended, approved, strconv.FormatInt(r.Sessions, 10), strconv.FormatInt(r.Calls, 10), strconv.FormatInt(r.DeniedCalls, 10), FindingKinds(r.Findings),
		clip(orDash(r.Reason), maxReasonShown)}
}

// clip is s cut after n characters, with "…" where it was cut. It steps
// through s as UTF-8 is decoded, so a byte that is not UTF-8 is kept as it
// is, for the caller's escaping to show as \xNN, rather than turned into
// U+FFFD.
func clip(s string, n int) string {
	i := 0
	for range n {
		if i >= len(s) {
			return s
		}
		_, size := utf8.DecodeRuneInString(s[i:])
		i += size
	}
	if i >= len(s) {
		return s
	}
	return s[:i] + "…"
}

// FindingKinds is the FINDINGS column: each kind once, "(refused)" where
// it was enforced, "-" for none.
func FindingKinds(fs []model.Finding) string {
	var kinds []string
	for _, f := range fs {
		k := f.Kind
		if f.Refused {
			k += " (refused)"
		}
		if !slices.Contains(kinds, k) {
			kinds = append(kinds, k)
		}
	}
	return orDash(strings.Join(kinds, ", "))
}

func tableTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format("2006-01-02 15:04:05Z")
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
