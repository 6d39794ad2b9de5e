package grants

import (
	"bytes"
	"context"
	"fmt"
	"slices"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/airlock-dev/airlock/internal/model"
	"github.com/airlock-dev/airlock/internal/review"
	"github.com/airlock-dev/airlock/internal/store"
)

// Fresh writes pending session summaries and waits for the store to hold
// every log entry committed so far, so that rows and log agree on every
// call recorded before it returns (for audit verify).
func (s *Service) Fresh(ctx context.Context) { s.freshSessions(ctx) }

// Every grant and session a read returns is checked against its own log
// entries: the row is derived again from them (review.Deriver) and each
// answer that differs is listed in the row's LogMismatch, which the API
// returns and the CLI shows. Each entry's bytes are also checked against
// its stored leaf hash; that the entries themselves are the signed log is
// airlock audit verify's job (it checks the whole tree).

// derivation is a grant's log derived so far: the entries up to after,
// and why some of them could not be applied. read continues it with the
// entries appended since (sessionproof.go keeps one between the pages of
// a session, grantproof.go between reads of a grant). It reads
// deriveBatch entries at a time: a grant of a long PostgreSQL session
// holds millions of entries, and reading them all at once held every one
// in memory for one page of a session or a grant's record.
type derivation struct {
	d        *review.Deriver
	problems []string
	// after is the greatest sequence number read; any is whether an
	// entry was read at all.
	after int64
	any   bool
	// each, if not nil, is called with every entry read, in log order,
	// and the record hash of its bytes.
	each func(e store.LogEntry, h tlog.Hash)
	// void reads the log.refused entries: the entries they name are
	// left out of d (see voidMore). first is the least sequence number
	// read, once an entry was read.
	void  *review.VoidReader
	first int64
	// stale is set when a log.refused entry read since names an entry
	// already applied: d counted it, and the grant's log must be derived
	// again, from its start. Nothing was changed behind Airlock's back.
	stale bool
}

func newDerivation(each func(store.LogEntry, tlog.Hash)) *derivation {
	return &derivation{d: review.NewDeriver(), each: each}
}

// Entries a log.refused entry names are void: their callers were told
// they failed (a batch whose commit's outcome was unknown), and the rows
// follow what the callers were told, so a derivation leaves them out, as
// audit verify's does (review.Checker). The log.refused entries come after
// the entries they name and belong to no grant, so a derivation reads them
// first, by type (their own index), those after the grant's first entry
// only, and on each read continued those appended since. One that names an
// entry the derivation already applied makes it stale. A derivation
// continued from a kept proof so finds the log.refused entries appended
// since the read before; one appended while a read derives is found by the
// next read.

// voidMore reads the log.refused entries appended since dv's last read (on
// its first, those after grant id's first entry) and leaves the entries
// they name out of dv.d; stale is set if one was applied already.
func (dv *derivation) voidMore(ctx context.Context, st store.Store, id string) error {
	if dv.void == nil {
		first, err := st.LogEntries(ctx, store.LogFilter{GrantID: id, Limit: 1})
		if err != nil {
			return err
		}
		after := int64(0)
		if len(first) == 1 {
			after = first[0].Seq - 1
		}
		dv.void = review.NewVoidReader(after)
		dv.d.SetVoid(dv.void.Void(), nil)
	}
	added, err := dv.void.More(ctx, st)
	if err != nil {
		return err
	}
	for _, r := range added {
		if dv.any && r[0] <= dv.after && r[1] > dv.first {
			dv.stale = true
		}
	}
	return nil
}

// voidIn returns, of es, the sequence numbers of the entries the
// log.refused entries dv read name, in order: the pages that show them
// mark them refused.
func (dv *derivation) voidIn(es []store.LogEntry) []int64 {
	if dv.void == nil {
		return nil
	}
	var out []int64
	for _, e := range es {
		if dv.void.Void().Contains(e.Seq) {
			out = append(out, e.Seq)
		}
	}
	return out
}

// read applies the entries of grant id after dv.after (all of them the
// first time, those with a negative sequence number too), but those the
// log.refused entries name. It reads nothing once dv is stale.
func (dv *derivation) read(ctx context.Context, st store.Store, id string) error {
	if err := dv.voidMore(ctx, st, id); err != nil || dv.stale {
		return err
	}
	for {
		entries, err := st.LogEntries(ctx, store.LogFilter{GrantID: id, After: dv.after, Limit: deriveBatch})
		if err != nil {
			return err
		}
		for _, e := range entries {
			dv.after = max(dv.after, e.Seq)
			h := tlog.RecordHash(e.Data)
			if dv.each != nil {
				dv.each(e, h)
			}
			if !dv.any || e.Seq < dv.first {
				dv.first = e.Seq
			}
			dv.any = true
			if e.Seq < 0 {
				// No position of the log holds it, so no checkpoint covers
				// it: rows made up with such entries read as proven.
				dv.problems = append(dv.problems, fmt.Sprintf("log entry %d has a negative sequence number: it is not in the log (run airlock audit verify)", e.Seq))
				continue
			}
			if !bytes.Equal(h[:], e.LeafHash) {
				dv.problems = append(dv.problems, fmt.Sprintf("log entry %d does not hash to its leaf hash (run airlock audit verify)", e.Seq))
				continue
			}
			if err := dv.d.Add(e.Data); err != nil {
				dv.problems = append(dv.problems, err.Error())
			}
		}
		if len(entries) < deriveBatch {
			return nil
		}
		if dv.after <= 0 {
			// A whole batch out of the log: the cursor cannot move past
			// it, and the rest is not read.
			dv.problems = append(dv.problems, fmt.Sprintf("more than %d log entries have no position in the log (run airlock audit verify)", deriveBatch))
			return nil
		}
	}
}

// deriveBatch is the most log entries a derivation holds at once.
const deriveBatch = 1000

// proveGrants sets LogMismatch on each grant of gs.
//
// Each row was read before its grant's log: the entries stored between
// the two (a session's end and its last results, stored with the rows
// they change) are in the derivation but not in the row, and a grant
// whose sessions the log has all ended must match it exactly, so a row
// read just as its sessions ended differed from the log with nothing
// changed behind Airlock's back (bench/pgbench's review, right after
// pgbench exits, on a quiet host). A row that differs is read again, and
// its log derived after it, once: the row then holds every entry the
// first derivation held; what still differs is reported.
func (s *Service) proveGrants(ctx context.Context, gs []model.Grant) error {
	for i := range gs {
		mismatch, err := s.grantMismatch(ctx, gs[i])
		if err != nil {
			return err
		}
		if len(mismatch) > 0 {
			g, err := s.st.Grant(ctx, gs[i].ID)
			if err != nil {
				return err
			}
			if mismatch, err = s.grantMismatch(ctx, g); err != nil {
				return err
			}
			gs[i] = g
		}
		gs[i].LogMismatch = mismatch
	}
	return nil
}

// grantMismatch is how row g differs from its grant's log, derived now.
func (s *Service) grantMismatch(ctx context.Context, g model.Grant) (mismatch []string, err error) {
	err = s.withGrantProof(ctx, g.ID, true, nil, func(d *review.Deriver, problems []string) {
		mismatch = append(slices.Clone(problems), trimID(review.GrantDiffs(d, g), "grant "+g.ID+": ")...)
	})
	return mismatch, err
}

// proveSessions sets LogMismatch on each session of ss, all of grant id.
func (s *Service) proveSessions(ctx context.Context, grantID string, ss []model.Session) error {
	if len(ss) == 0 {
		return nil
	}
	ids := make([]string, len(ss))
	for i := range ss {
		ids[i] = ss[i].ID
	}
	var again []int
	err := s.withGrantProof(ctx, grantID, false, ids, func(d *review.Deriver, problems []string) {
		for i := range ss {
			if ss[i].LogMismatch = sessionMismatch(d, problems, ss[i], grantID); len(ss[i].LogMismatch) > 0 {
				again = append(again, i)
			}
		}
	})
	if err != nil || len(again) == 0 {
		return err
	}
	// As proveGrants: a row read just before its session's end (or last
	// results) was stored is read again, and proven again, once.
	ids = make([]string, 0, len(again))
	for _, i := range again {
		ses, err := s.st.Session(ctx, ss[i].ID)
		if err != nil {
			return err
		}
		ss[i] = ses
		ids = append(ids, ses.ID)
	}
	return s.withGrantProof(ctx, grantID, false, ids, func(d *review.Deriver, problems []string) {
		for _, i := range again {
			ss[i].LogMismatch = sessionMismatch(d, problems, ss[i], grantID)
		}
	})
}

// sessionMismatch is how session row ses differs from d, a derivation of
// grant grantID's log that met problems.
func sessionMismatch(d *review.Deriver, problems []string, ses model.Session, grantID string) []string {
	out := append(slices.Clone(problems), trimID(review.SessionDiffs(d, ses), "session "+ses.ID+": ")...)
	if ses.GrantID != grantID {
		out = append(out, fmt.Sprintf("grant is %q, asked for grant %q", ses.GrantID, grantID))
	}
	return out
}

func trimID(ms []string, prefix string) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = string(bytes.TrimPrefix([]byte(m), []byte(prefix)))
	}
	return out
}
