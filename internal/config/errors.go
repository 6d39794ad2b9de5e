package config

import (
	"cmp"
	"slices"
	"strconv"
	"strings"
)

// Error is one problem in a configuration file, located precisely enough
// that an editor can jump to it.
type Error struct {
	File  string // the path as the caller gave it to Load or Parse
	Line  int    // 1-based; 0 when the position is unknown
	Col   int    // 1-based; 0 when the position is unknown
	Field string // e.g. "targets[1].credentials"; empty for whole-file problems
	Msg   string
}

// Error formats the problem as "file:line:col: field: message", the shape
// compilers use, so terminals and editors make it clickable. Unknown parts of
// the position are left out rather than printed as zero.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		b.WriteString(":" + strconv.Itoa(e.Line))
		if e.Col > 0 {
			b.WriteString(":" + strconv.Itoa(e.Col))
		}
	}
	b.WriteString(": ")
	if e.Field != "" {
		b.WriteString(e.Field + ": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Errors is every problem found in one configuration file. Load and Parse
// report all of them at once so that fixing a file is one round trip, not one
// per mistake.
type Errors struct {
	List []*Error // in file order
}

// Error joins the problems one per line.
func (e *Errors) Error() string {
	lines := make([]string, len(e.List))
	for i, err := range e.List {
		lines[i] = err.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap exposes the individual problems to errors.As and errors.Is.
func (e *Errors) Unwrap() []error {
	errs := make([]error, len(e.List))
	for i, err := range e.List {
		errs[i] = err
	}
	return errs
}

// finish puts the problems in file order. Decoding and the semantic checks
// run in separate passes, so they are found out of order.
func (e *Errors) finish() {
	slices.SortStableFunc(e.List, func(a, b *Error) int {
		return cmp.Or(cmp.Compare(a.Line, b.Line), cmp.Compare(a.Col, b.Col))
	})
}

// quote renders a user-supplied value for a message, cut short so one
// pasted blob cannot drown the rest of the report. Never use it for values
// that may be secrets.
func quote(s string) string {
	const max = 80
	if len(s) > max {
		r := []rune(s)
		if len(r) > max {
			s = string(r[:max]) + "…"
		}
	}
	return strconv.Quote(s)
}

// suggest returns the allowed word closest to a mistyped one, or "" when
// nothing is close enough to be a plausible typo.
func suggest(got string, allowed []string) string {
	best, bestDist := "", 0
	for _, a := range allowed {
		// Two edits away, or three for longer words ("policy" → "policies").
		limit := 3
		if len(a) >= 6 {
			limit = 4
		}
		if d := editDistance(strings.ToLower(got), a); d < limit && (best == "" || d < bestDist) {
			best, bestDist = a, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance between a and b, in bytes; keys
// are short ASCII words, so the quadratic cost is negligible. Long inputs are
// cut off because only near-misses matter.
func editDistance(a, b string) int {
	if len(a) > 64 {
		return 64
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
