package review

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sort"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/airlock-dev/airlock/internal/store"
)

// RefusedType is the type of the entry (auditlog.RefusedType) naming
// entries committed in a batch whose callers were told it failed (the
// outcome of its commit was unknown): their calls were refused, and the
// rows follow what the callers were told. Those entries stay in the log
// and its tree, verifiable, but are void: nothing derived from the log
// counts them (a refused call is no call of its session, a grant change
// its caller was told failed did not happen).
const RefusedType = "log.refused"

// Void is the set of entries named by a log's log.refused entries, each
// range [from, to) in sequence numbers, sorted and merged.
type Void struct{ r [][2]int64 }

// Contains reports whether entry seq is void.
func (v *Void) Contains(seq int64) bool {
	if v == nil || len(v.r) == 0 {
		return false
	}
	i := sort.Search(len(v.r), func(i int) bool { return v.r[i][1] > seq })
	return i < len(v.r) && v.r[i][0] <= seq
}

// Len is the number of ranges.
func (v *Void) Len() int {
	if v == nil {
		return 0
	}
	return len(v.r)
}

// Add adds the ranges rs ([from, to) each) to v. A reader that is given
// the log.refused entries themselves (an evidence bundle carries those
// naming its entries) builds its Void with it from their RefusedRanges.
func (v *Void) Add(rs [][2]int64) {
	v.r = append(v.r, rs...)
	slices.SortFunc(v.r, func(a, b [2]int64) int {
		switch {
		case a[0] < b[0]:
			return -1
		case a[0] > b[0]:
			return 1
		}
		return 0
	})
	out := v.r[:0]
	for _, x := range v.r {
		if n := len(out); n > 0 && x[0] <= out[n-1][1] {
			out[n-1][1] = max(out[n-1][1], x[1])
			continue
		}
		out = append(out, x)
	}
	v.r = out
}

// RefusedRanges decodes the ranges a log.refused entry (its bytes, of seq)
// names, and checks them: each non-empty, from 0 on and before the entry
// itself (the entries it names were committed in an earlier batch). An
// entry of another type is an error.
func RefusedRanges(b []byte) (seq int64, rs [][2]int64, err error) {
	var e struct {
		Seq  int64  `json:"seq"`
		Type string `json:"type"`
		Data struct {
			Entries [][2]int64 `json:"entries"`
		} `json:"data"`
	}
	if err := json.Unmarshal(b, &e); err != nil {
		return 0, nil, fmt.Errorf("malformed %s entry: %w", RefusedType, err)
	}
	if e.Type != RefusedType {
		return e.Seq, nil, fmt.Errorf("entry %d is a %q entry, not %s", e.Seq, e.Type, RefusedType)
	}
	for _, r := range e.Data.Entries {
		if r[0] < 0 || r[1] <= r[0] || r[1] > e.Seq {
			return e.Seq, nil, fmt.Errorf("entry %d: %s names entries [%d, %d), which are not all entries before it: only entries committed before it can have been refused", e.Seq, RefusedType, r[0], r[1])
		}
	}
	return e.Seq, e.Data.Entries, nil
}

// LogLister reads log entries by filter (a store.Store).
type LogLister interface {
	LogEntries(ctx context.Context, f store.LogFilter) ([]store.LogEntry, error)
}

// refusedPage is how many log.refused entries LoadVoid reads at a time.
const refusedPage = 1000

// LoadVoid reads the log's log.refused entries (by their type column: they
// are rare, and come after the entries they name, so a reader in log order
// needs them first) and returns the entries they name, and the ranges
// each names by its seq. Only those after seq after are read (a reader of
// entries from after on needs no earlier one: they name entries before
// themselves). A row whose bytes are not a valid log.refused
// entry voids nothing: a reader that walks the log (the Checker) reports
// it where it meets it.
func LoadVoid(ctx context.Context, l LogLister, after int64) (*Void, map[int64][][2]int64, error) {
	v := &Void{}
	by := map[int64][][2]int64{}
	_, err := readRefused(ctx, l, after, func(_ store.LogEntry, seq int64, rs [][2]int64) {
		by[seq] = rs
		v.Add(rs)
	})
	if err != nil {
		return nil, nil, err
	}
	return v, by, nil
}

// readRefused calls fn with each valid log.refused entry after seq after,
// in log order, a page at a time, and returns the greatest seq of the rows
// read (valid or not), or after if none.
func readRefused(ctx context.Context, l LogLister, after int64, fn func(e store.LogEntry, seq int64, rs [][2]int64)) (int64, error) {
	for {
		es, err := l.LogEntries(ctx, store.LogFilter{Type: RefusedType, After: after, Limit: refusedPage})
		if err != nil {
			return after, fmt.Errorf("review: reading the log's %s entries: %w", RefusedType, err)
		}
		for _, e := range es {
			after = max(after, e.Seq)
			if seq, rs, err := RefusedRanges(e.Data); err == nil && seq == e.Seq {
				fn(e, seq, rs)
			}
		}
		if len(es) < refusedPage {
			return after, nil
		}
	}
}

// VoidReader keeps the entries a log's log.refused entries name for a
// reader that comes back to the log as it grows (a grant's or session's
// record, proven on every read): each More reads only the log.refused
// entries appended since, through their index. Unlike LoadVoid's, its
// rows are not confirmed by a walk of the log, so a row whose bytes do not
// hash to its leaf hash voids nothing (a reader that derives from the
// entries it names then counts them, and reports the record as differing
// from the log, as it would without the row).
type VoidReader struct {
	v     Void
	after int64
}

// NewVoidReader reads the log.refused entries after seq after: a reader
// of the entries from after+1 on needs no earlier one.
func NewVoidReader(after int64) *VoidReader { return &VoidReader{after: max(after, 0)} }

// Void is the set of entries named so far; it grows with each More.
func (r *VoidReader) Void() *Void { return &r.v }

// More reads the log.refused entries appended since the last call and
// returns the ranges they name, now in Void.
func (r *VoidReader) More(ctx context.Context, l LogLister) ([][2]int64, error) {
	var added [][2]int64
	after, err := readRefused(ctx, l, r.after, func(e store.LogEntry, _ int64, rs [][2]int64) {
		if h := tlog.RecordHash(e.Data); !bytes.Equal(h[:], e.LeafHash) {
			return
		}
		added = append(added, rs...)
	})
	if err != nil {
		return nil, err
	}
	r.after = after
	if len(added) > 0 {
		r.v.Add(added)
	}
	return added, nil
}

// SetVoid makes d skip the entries v names (LoadVoid's); by are the ranges
// each log.refused entry names, which d then checks against the
// log.refused entries it is given: one it was not told of is an error (the
// entries it names were counted), and UnconfirmedVoid lists those it was
// told of and never given.
func (d *Deriver) SetVoid(v *Void, by map[int64][][2]int64) {
	d.void, d.voidBy, d.voidSeen = v, by, map[int64]bool{}
}

// UnconfirmedVoid returns the seqs of the log.refused entries SetVoid named
// that d was never given, sorted: the entries they name were left out on
// the word of rows the walk did not confirm.
func (d *Deriver) UnconfirmedVoid() []int64 {
	var out []int64
	for seq := range d.voidBy {
		if !d.voidSeen[seq] {
			out = append(out, seq)
		}
	}
	slices.Sort(out)
	return out
}

// applyRefused checks a log.refused entry: the ranges it names are
// entries before it, and the ones SetVoid was given for it.
func (d *Deriver) applyRefused(p Parsed) error {
	var in struct {
		Entries [][2]int64 `json:"entries"`
	}
	if err := json.Unmarshal(p.data, &in); err != nil {
		return fmt.Errorf("entry %d: malformed %s: %w", p.Seq, RefusedType, err)
	}
	for _, r := range in.Entries {
		if r[0] < 0 || r[1] <= r[0] || r[1] > p.Seq {
			return fmt.Errorf("entry %d: %s names entries [%d, %d), which are not all entries before it: only entries committed before it can have been refused", p.Seq, RefusedType, r[0], r[1])
		}
	}
	if d.voidBy == nil {
		return nil
	}
	rs, ok := d.voidBy[p.Seq]
	if !ok || !slices.Equal(rs, in.Entries) {
		return fmt.Errorf("entry %d: a %s entry the rows' type column does not show as one (or with other ranges): the entries it names were counted", p.Seq, RefusedType)
	}
	d.voidSeen[p.Seq] = true
	return nil
}
