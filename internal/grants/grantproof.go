package grants

import (
	"bytes"
	"context"
	"crypto/sha256"
	"sync"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/airlock-dev/airlock/internal/review"
	"github.com/airlock-dev/airlock/internal/store"
)

// A grant's record (Get, a page of grants) and the sessions of a page of
// its sessions (GrantSessions) are proven against the grant's log on every
// read, and proving them derived the grant's whole log: a grant of tens of
// thousands of calls read all of them for each page of its sessions (twice:
// once for the grant's record), and for each Get. So, as for a session's
// pages (sessionproof.go), the derivation is kept (a grantProof, for
// proofLife) and the next read continues it with the entries appended
// since.
//
// What a derivation proved holds only for the entries as they were read,
// so the proof also keeps a hash chain over each session's entries and
// one over the grant's entries of no session (its lifecycle: requested,
// decided, commands, findings, its end), each entry's sequence number and
// record hash in log order. A read checks again the entries of what it
// shows: the grant's own entries for the grant's record, and each
// session's entries for a page of sessions (not the grant's own: they make
// no session's record); what was read must reach the chains' values, each
// entry matching its leaf hash too. The grant's first entry must still be
// the one derived from (an entry with no position in the log, put before
// it, is found). A page of the grant's history (History) checks the
// page's entries against a chain over all the grant's entries, as a
// session's page does (sessionproof.go: entryChain), not the grant's
// own entries. A read of the record reads those through their own index
// (store.LogFilter.NoSession), deriveBatch at a time: a grant whose agent
// records each command between its calls holds thousands of them, each a
// run of its own among the calls, and reading them among the grant's
// entries (a query per run, or the whole log once they lay in more than
// 64 runs) cost each read of its record the grant's whole log. When any
// of this fails the read is proven from the grant's whole log, as before,
// with a mismatch that says so. A read costs what it shows (the grant's
// own entries, or a page of sessions, their entries) and the entries
// appended since the read before; the rest of the grant's log is read
// again, and its problems found again, at least every proofLife.

// grantProofMin is the fewest entries a grant's log must hold for its
// derivation to be kept: a smaller one is derived again on each read,
// which costs little and checks every entry again.
const grantProofMin = deriveBatch

// grantDiffer is the mismatch of a read whose entries differ from those the
// kept derivation read.
const grantDiffer = "log entries of this grant differ from those an earlier read of it read: one was changed, removed, added or moved since (run airlock audit verify)"

// grantProof is the derivation of a grant's log, kept between reads of the
// grant and of its sessions.
type grantProof struct {
	mu    sync.Mutex // held while it is used
	grant string
	built time.Time // when it was derived from the whole log
	dv    *derivation
	// first is the grant's first entry (its sequence number and record
	// hash): a read checks it is still the first.
	first     int64
	firstHash tlog.Hash
	// sessions is the chain over each session's entries.
	sessions map[string]proofMark
	// own is the chain over the grant's entries of no session with a
	// positive sequence number.
	own proofMark
	// all is the chain over all the grant's entries, for the pages of
	// its history (History).
	all entryChain
	// read is how many entries the derivation read.
	read int
}

func newGrantProof(grant string, now time.Time) *grantProof {
	p := &grantProof{grant: grant, built: now, sessions: map[string]proofMark{}}
	p.dv = newDerivation(p.note)
	return p
}

func (p *grantProof) proofKey() string      { return p.grant }
func (p *grantProof) proofGrant() string    { return p.grant }
func (p *grantProof) proofBuilt() time.Time { return p.built }

// note is the derivation's each: it chains the grant's entries.
func (p *grantProof) note(e store.LogEntry, h tlog.Hash) {
	if !p.dv.any {
		p.first, p.firstHash = e.Seq, h
	}
	p.read++
	p.all.add(e, h)
	if e.SessionID != "" {
		m := p.sessions[e.SessionID]
		p.sessions[e.SessionID] = proofMark{n: m.n + 1, seq: e.Seq, chain: link(m.chain, e.Seq, h)}
		return
	}
	if e.Seq <= 0 {
		// Not read again (checkOwn passes over it), and reported as long
		// as the proof is kept: the derivation's problems.
		return
	}
	p.own = proofMark{n: p.own.n + 1, seq: e.Seq, chain: link(p.own.chain, e.Seq, h)}
}

// check brings the derivation up to the log's end and checks the grant's
// own entries (if own is set: a read of the grant's record, which they
// make) and those of sessions against the chains. ok is false when the
// log no longer holds what p was derived from, or a log.refused entry
// appended since voids an entry p counted (p.dv.stale).
func (p *grantProof) check(ctx context.Context, st store.Store, own bool, sessions []string) (ok bool, err error) {
	first, err := st.LogEntries(ctx, store.LogFilter{GrantID: p.grant, Limit: 1})
	if err != nil {
		return false, err
	}
	if len(first) != 1 || first[0].Seq != p.first || tlog.RecordHash(first[0].Data) != p.firstHash || p.dv.after <= 0 {
		return false, nil
	}
	if err := p.dv.read(ctx, st, p.grant); err != nil || p.dv.stale {
		return false, err
	}
	if own {
		if ok, err := p.checkOwn(ctx, st); err != nil || !ok {
			return false, err
		}
	}
	for _, id := range sessions {
		if ok, err := p.checkSession(ctx, st, id); err != nil || !ok {
			return false, err
		}
	}
	return true, nil
}

// checkOwn reads the grant's own entries again through their index
// (store.LogFilter.NoSession), a batch at a time, and checks them against
// their chain: one more than the chain holds is asked for, so an entry
// added is found, and one removed, moved to a session or changed breaks
// the chain. It reads the grant's own entries (and those with no position
// in the log, which the chain leaves out), not the calls between them.
func (p *grantProof) checkOwn(ctx context.Context, st store.Store) (bool, error) {
	var (
		chain  [sha256.Size]byte
		n      int64
		cursor int64
	)
	for {
		limit := int(min(deriveBatch, p.own.n+1-n))
		es, err := st.LogEntries(ctx, store.LogFilter{GrantID: p.grant, NoSession: true, After: cursor, Limit: limit})
		if err != nil {
			return false, err
		}
		moved := false
		for _, e := range es {
			if e.Seq <= 0 {
				continue // out of the chain, as note leaves it
			}
			h := tlog.RecordHash(e.Data)
			if e.SessionID != "" || !bytes.Equal(h[:], e.LeafHash) {
				return false, nil
			}
			chain, n, cursor, moved = link(chain, e.Seq, h), n+1, e.Seq, true
		}
		if n > p.own.n {
			return false, nil
		}
		if len(es) < limit {
			break
		}
		if !moved {
			return false, nil // a whole batch out of the log: no cursor reads past it
		}
	}
	return n == p.own.n && chain == p.own.chain && (n == 0 || cursor == p.own.seq), nil
}

// checkSession reads the entries of session id, a batch at a time, and
// checks them against its chain (one more than the chain holds is asked
// for: an entry added is found).
func (p *grantProof) checkSession(ctx context.Context, st store.Store, id string) (bool, error) {
	want := p.sessions[id]
	var (
		chain  [sha256.Size]byte
		n      int64
		cursor int64
	)
	for {
		es, err := st.LogEntries(ctx, store.LogFilter{GrantID: p.grant, SessionID: id, After: cursor, Limit: int(min(deriveBatch, want.n+1-n))})
		if err != nil {
			return false, err
		}
		for _, e := range es {
			h := tlog.RecordHash(e.Data)
			if !bytes.Equal(h[:], e.LeafHash) {
				return false, nil
			}
			chain, n, cursor = link(chain, e.Seq, h), n+1, e.Seq
		}
		if n > want.n {
			return false, nil
		}
		if len(es) == 0 || n == want.n {
			break
		}
		if cursor <= 0 {
			return false, nil // no cursor reads on from there
		}
	}
	return n == want.n && chain == want.chain && (n == 0 || cursor == want.seq), nil
}

// withGrantProof calls use with a derivation of grant id's log, and the
// problems it met: the one kept for the grant, continued and checked with
// sessions' entries (and the grant's own), or a new one from the whole log.
//
// own is set for a read of the grant's record, which the grant's own
// entries make: they are read again. A page of sessions reads its
// sessions' entries alone.
func (s *Service) withGrantProof(ctx context.Context, id string, own bool, sessions []string, use func(d *review.Deriver, problems []string)) error {
	var changed []string
	if p, ok := s.grantProofs.get(id, id, s.clk.Now()); ok {
		done, stale, err := s.useGrantProof(ctx, p, own, sessions, use)
		if err != nil || done {
			return err
		}
		// What the proof was derived from is no longer what the log
		// holds: prove from the whole log, saying so (unless a
		// log.refused entry voids an entry it counted: nothing changed).
		s.grantProofs.drop(p)
		if !stale {
			changed = []string{grantDiffer}
		}
	}
	p := newGrantProof(id, s.clk.Now())
	if err := p.dv.read(ctx, s.st, id); err != nil {
		return err
	}
	p.dv.problems = append(p.dv.problems, changed...)
	use(p.dv.d, p.dv.problems)
	// Kept after use, which then has it alone.
	s.keepGrantProof(p, changed != nil)
	return nil
}

// keepGrantProof keeps p for the next reads of its grant if it was
// derived from grantProofMin entries or more, or always is set (p was kept
// already, or derived again after a change, so that it is not derived anew
// on each read after it). Proofs kept are bounded by proofCache:
// maxSessionProofs proofs, maxProofSessions sessions, the least recently
// used evicted first, none used past proofLife.
func (s *Service) keepGrantProof(p *grantProof, always bool) {
	if always || p.read >= grantProofMin {
		s.grantProofs.put(p, p.dv.d.SessionCount(), s.clk.Now())
	}
}

// useGrantProof is withGrantProof with proof p kept from a read before;
// done is false if the log no longer holds what p was derived from, or
// (stale) a log.refused entry appended since voids an entry it counted.
func (s *Service) useGrantProof(ctx context.Context, p *grantProof, own bool, sessions []string, use func(d *review.Deriver, problems []string)) (done, stale bool, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	ok, err := p.check(ctx, s.st, own, sessions)
	if err != nil || !ok {
		return false, p.dv.stale, err
	}
	use(p.dv.d, p.dv.problems)
	s.keepGrantProof(p, true)
	return true, false, nil
}
