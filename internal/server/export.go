package server

import (
	"context"
	"time"

	"github.com/airlock-dev/airlock/internal/apierr"
	"github.com/airlock-dev/airlock/internal/auditlog"
	"github.com/airlock-dev/airlock/internal/evidence"
	"github.com/airlock-dev/airlock/internal/review"
	"github.com/airlock-dev/airlock/internal/store"
)

// Export writes the evidence bundle of account's grants live on day
// (YYYY-MM-DD, UTC). It rebuilds the log's tree from every entry and
// refuses to export from a log whose entries do not hash to its newest
// signed checkpoint. warnings lists stored rows that differ from the
// bundle's (which are derived from the log).
func (s *Server) Export(ctx context.Context, account, day string) (bundle []byte, warnings []string, err error) {
	d, err := time.Parse("2006-01-02", day)
	if err != nil {
		// The caller's mistake, said as such: a plain error became a 500
		// and "internal error" in the CLI, the reason only in the log.
		return nil, nil, apierr.Invalid("day", "%q is not a date (YYYY-MM-DD, UTC)", day)
	}
	s.Service.Fresh(ctx)
	if err := s.log.Sync(ctx); err != nil {
		return nil, nil, err
	}
	gs, err := s.store.Grants(ctx, store.GrantFilter{Account: account, Since: d, Until: d.Add(24 * time.Hour)})
	if err != nil {
		return nil, nil, err
	}
	tree, err := auditlog.BuildProofTree(ctx, s.store, s.verifier)
	if err != nil {
		return nil, nil, err
	}
	ids := make([]string, len(gs))
	entries := map[string][]store.LogEntry{}
	for i, g := range gs {
		ids[i] = g.ID
		es, err := s.store.LogEntries(ctx, store.LogFilter{GrantID: g.ID})
		if err != nil {
			return nil, nil, err
		}
		entries[g.ID] = es
		dv := review.NewDeriver()
		for _, e := range es {
			if e.Seq < tree.Size() {
				_ = dv.Add(e.Data)
			}
		}
		warnings = append(warnings, review.GrantDiffs(dv, g)...)
	}
	bundle, err = evidence.Build(account, day, tree, s.signer, ids, entries)
	return bundle, warnings, err
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
		return nil, nil, err
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
