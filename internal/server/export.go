package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/airlock-dev/airlock/internal/apierr"
	"github.com/airlock-dev/airlock/internal/auditlog"
	"github.com/airlock-dev/airlock/internal/evidence"
	"github.com/airlock-dev/airlock/internal/model"
	"github.com/airlock-dev/airlock/internal/review"
	"github.com/airlock-dev/airlock/internal/store"
)

// Export writes the evidence bundle of account's grants live on day
// (YYYY-MM-DD, UTC). It rebuilds the log's tree from every entry and
// refuses to export from a log whose entries do not hash to its newest
// signed checkpoint. warnings lists stored rows that differ from the
// bundle's (which are derived from the log).
func (s *Server) Export(ctx context.Context, account, day string) (bundle []byte, warnings []string, err error) {
	d0, err := time.Parse("2006-01-02", day)
	if err != nil {
		// The caller's mistake, said as such: a plain error became a 500
		// and "internal error" in the CLI, the reason only in the log.
		return nil, nil, apierr.Invalid("day", "%q is not a date (YYYY-MM-DD, UTC)", day)
	}
	if strings.ContainsFunc(account, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		// No account has one, and a bundle's statement cannot hold it
		// (evidence.Build refuses it): the caller's mistake, said before
		// the whole log is walked, not a 500 after.
		return nil, nil, apierr.Invalid("account", "%s holds a control character", apierr.Quote(account))
	}
	s.Service.Fresh(ctx)
	if err := s.log.Sync(ctx); err != nil {
		return nil, nil, err
	}
	// The log is walked in full to build the tree; the grants and their
	// entries are taken from it (dayEntries). The entries log.refused
	// entries name are left out of the grants the walk derives, as the
	// grant's pages leave them out: the log.refused entries come after
	// them, so they are read first, by type (review.LoadVoid). The
	// bundle's rows rest only on the log.refused entries the walk meets
	// (Build), which the bundle carries.
	void, by, err := review.LoadVoid(ctx, s.store, 0)
	if err != nil {
		return nil, nil, err
	}
	w := newDayEntries(account, d0)
	w.d.SetVoid(void, by)
	tree, err := auditlog.BuildProofTreeEach(ctx, s.store, s.verifier, w.add)
	if err != nil {
		return nil, nil, damagedLog(err)
	}
	d, mine, entries := w.d, w.mine, w.entries
	for _, seq := range d.UnconfirmedVoid() {
		if seq < tree.Size() {
			warnings = append(warnings, fmt.Sprintf("entry %d: its row's type says %s, but the walked log holds no such entry there (run airlock audit verify)", seq, review.RefusedType))
		}
	}
	until := d0.Add(24 * time.Hour)
	var gs []model.Grant
	for _, id := range d.GrantIDs() {
		if !mine[id] {
			continue
		}
		g, _, _ := d.Grant(id)
		// As the store's window: requested before the day ends, deadline
		// (if any) not before it begins.
		if dl := g.Deadline(); !g.RequestedAt.Before(until) || !dl.IsZero() && dl.Before(d0) {
			continue
		}
		gs = append(gs, g)
	}
	slices.SortStableFunc(gs, func(a, b model.Grant) int { return a.RequestedAt.Compare(b.RequestedAt) })
	ids := make([]string, len(gs))
	for i, g := range gs {
		ids[i] = g.ID
		row, err := s.store.Grant(ctx, g.ID)
		if err != nil {
			warnings = append(warnings, fmt.Sprintf("grant %s: the log records it but the database has no row for it (%v)", g.ID, err))
			continue
		}
		warnings = append(warnings, review.GrantDiffs(d, row)...)
	}
	bundle, err = evidence.Build(account, day, tree, s.signer, ids, entries, w.refused)
	return bundle, warnings, err
}

// dayEntries collects, from the log walked in order, the entries of the
// grants of one account that may have been live on one UTC day. The
// grants and their entries are found in the log itself, never through the
// database's copies of them (the grants' account and time columns, the
// entries' grant column and runs), which verification does not sign: a
// changed copy must not drop a grant, or some of its entries, from a
// bundle the log's key signs.
//
// Only what a bundle of the day can hold is kept: a grant requested after
// the day is left out from its request on, and one that ended before the
// day began is dropped at its end, so that exporting a day holds that
// day's grants' entries in memory, not every call the account's grants
// ever made.
type dayEntries struct {
	account     string
	from, until time.Time
	d           *review.Deriver
	mine        map[string]bool // grants seen so far: kept or not
	entries     map[string][]store.LogEntry
	// refused are the log's log.refused entries (few: one per batch
	// whose commit's outcome was unknown and which did commit), of which
	// the bundle carries those naming its entries.
	refused []store.LogEntry
}

func newDayEntries(account string, day time.Time) *dayEntries {
	return &dayEntries{account: account, from: day, until: day.Add(24 * time.Hour), d: review.NewDeriver(),
		mine: map[string]bool{}, entries: map[string][]store.LogEntry{}}
}

// add takes the log's next entry.
func (w *dayEntries) add(e store.LogEntry) error {
	p, err := review.Parse(bytes.Clone(e.Data)) // e.Data may be reused
	if err != nil {
		return nil // not a review entry; the bundle's check refuses what it cannot read
	}
	_ = w.d.Apply(p) // an entry that does not fit marks its grant, which Build then refuses
	if p.Type == review.RefusedType {
		w.refused = append(w.refused, store.LogEntry{Seq: e.Seq, Data: bytes.Clone(e.Data)})
	}
	if p.Grant == "" {
		return nil
	}
	ok, seen := w.mine[p.Grant]
	if !seen {
		g, _, found := w.d.Grant(p.Grant)
		ok = found && g.Account == w.account && g.RequestedAt.Before(w.until)
		w.mine[p.Grant] = ok
	}
	if !ok {
		return nil
	}
	w.entries[p.Grant] = append(w.entries[p.Grant], store.LogEntry{Seq: e.Seq, Data: bytes.Clone(e.Data)})
	if strings.HasPrefix(p.Type, "grant.") {
		// An end before the day began is final: nothing later makes the
		// grant live on the day.
		if g, _, _ := w.d.Grant(p.Grant); g.Status.Final() && !g.EndedAt.IsZero() && g.EndedAt.Before(w.from) {
			delete(w.entries, p.Grant)
			w.mine[p.Grant] = false
		}
	}
	return nil
}

// damagedLog makes BuildProofTree's finding that the stored log does not
// match its newest signed checkpoint an answer that says so. As a plain
// error it was "internal error" to the caller, the reason only in the
// server's log; and audit verify --key, which asks for a consistency proof
// after the server's own check, printed that alone instead of the problems
// the check had found.
func damagedLog(err error) error {
	if !errors.Is(err, auditlog.ErrDamaged) {
		return err
	}
	return &apierr.Error{Status: http.StatusInternalServerError, Code: apierr.CodeInternal,
		Message: "no proof can be built from the log: " + strings.TrimPrefix(err.Error(), "auditlog: ")}
}

// testNow, when a test sets it, is the grants' clock:
// what time a grant is requested and expires at. Nil in production.
var testNow func() time.Time

// Consistency returns the newest checkpoint and the RFC 6962 proof that
// the log of its first old entries is a prefix of it.
func (s *Server) Consistency(ctx context.Context, old int64) ([]byte, [][32]byte, error) {
	if err := s.log.Sync(ctx); err != nil {
		return nil, nil, err
	}
	tree, err := auditlog.BuildProofTree(ctx, s.store, s.verifier)
	if err != nil {
		return nil, nil, damagedLog(err)
	}
	if old > tree.Size() {
		return nil, nil, apierr.Conflict("the log has %d entries in its newest checkpoint, fewer than %d", tree.Size(), old)
	}
	p, err := tree.Consistency(old)
	if err != nil {
		return nil, nil, err
	}
	out := make([][32]byte, len(p))
	for i, h := range p {
		out[i] = h
	}
	return tree.Checkpoint.Note, out, nil
}
