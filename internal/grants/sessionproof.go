package grants

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"sort"
	"sync"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/airlock-dev/airlock/internal/store"
)

// A session's record is proven on every page of its events (Session), and
// proving it derives its grant's whole log: reading a session of a million
// events a page at a time read the grant's log once per page, a cost
// quadratic in the session's length. So the derivation a page made is kept
// (a sessionProof, a few of them, for a few minutes) and the next page of
// the session continues it with the entries appended since, instead of
// reading the log again from its start.
//
// What a derivation proved holds only for the entries as they were read,
// so the proof also keeps a hash chain over the session's entries (each
// one's sequence number and record hash, in log order), with the chain's
// value noted every proofMarkEvery entries. A page is read from the mark
// at or before its cursor through the mark (or the end) after its last
// entry, and the chain over what was read must reach the marks' values:
// a page holding an entry changed, removed, added or moved since the
// derivation read it does not, and is then proven as before, from the
// grant's whole log, with a mismatch that says so. A page costs the page,
// at most 2*proofMarkEvery entries more, and the grant's entries appended
// since the page before.

// Bounds of the proofs kept.
const (
	// proofMarkEvery is how many entries of a session lie between two
	// values of its chain kept.
	proofMarkEvery = 256
	// maxSessionProofs is the most sessions whose proof is kept.
	maxSessionProofs = 8
	// maxProofSessions is the most sessions the grants of the proofs kept
	// hold in all (a derivation holds each session of its grant, about a
	// KiB with its used pairs): a proof whose grant holds more is not kept.
	maxProofSessions = 100_000
	// proofLife is how long a proof is used after it was derived from the
	// grant's whole log. Only the session's own entries are checked
	// against the chain; the rest of the grant's log (its other sessions,
	// its lifecycle) is read again, and its problems found again, at
	// least this often.
	proofLife = 5 * time.Minute
)

// proofMark is the chain's value after the session's n-th entry, whose
// sequence number is seq.
type proofMark struct {
	n, seq int64
	chain  [sha256.Size]byte
}

// sessionProof is the derivation of a session's grant's log, kept between
// pages of the session's events.
type sessionProof struct {
	mu      sync.Mutex // held while it is used
	session string
	grant   string
	built   time.Time // when it was derived from the whole log
	dv      *derivation
	// first is the grant's first entry (its sequence number and record
	// hash): a page checks it is still the first.
	first     int64
	firstHash tlog.Hash
	// chain is over the session's entries.
	chain entryChain
}

// entryChain is a hash chain over entries in log order (a session's, or
// all of a grant's: grantproof.go). tail is the chain after every entry
// read (tail.n of them, the last tail.seq); marks every proofMarkEvery-th
// of them with a positive sequence number (a cursor reads after it).
type entryChain struct {
	tail  proofMark
	marks []proofMark
}

// add links entry e, of record hash h, to the chain.
func (c *entryChain) add(e store.LogEntry, h tlog.Hash) {
	c.tail = proofMark{n: c.tail.n + 1, seq: e.Seq, chain: link(c.tail.chain, e.Seq, h)}
	if c.tail.n%proofMarkEvery == 0 && e.Seq > 0 {
		c.marks = append(c.marks, c.tail)
	}
}

func newSessionProof(session, grant string, now time.Time) *sessionProof {
	p := &sessionProof{session: session, grant: grant, built: now}
	p.dv = newDerivation(p.note)
	return p
}

// note is the derivation's each: it chains the session's entries.
func (p *sessionProof) note(e store.LogEntry, h tlog.Hash) {
	if !p.dv.any {
		p.first, p.firstHash = e.Seq, h
	}
	if e.SessionID == p.session {
		p.chain.add(e, h)
	}
}

// link is the chain after an entry.
func link(chain [sha256.Size]byte, seq int64, h tlog.Hash) [sha256.Size]byte {
	var b [sha256.Size + 8 + tlog.HashSize]byte
	copy(b[:], chain[:])
	binary.BigEndian.PutUint64(b[sha256.Size:], uint64(seq))
	copy(b[sha256.Size+8:], h[:])
	return sha256.Sum256(b[:])
}

// page reads the session's entries after cursor after, at most limit of
// them, each checked against the chain, with the derivation brought up to
// the log's end first. ok is false when the log no longer holds what the
// proof was derived from, or a log.refused entry appended since voids an
// entry it counted (p.dv.stale; then nothing is returned, and the caller
// proves the page from the whole log).
func (p *sessionProof) page(ctx context.Context, st store.Store, after int64, limit int) (entries []store.LogEntry, next int64, ok bool, err error) {
	// The grant's first entry is still the one derived from (none with
	// no position in the log was put before it).
	first, err := st.LogEntries(ctx, store.LogFilter{GrantID: p.grant, Limit: 1})
	if err != nil {
		return nil, 0, false, err
	}
	if len(first) != 1 || first[0].Seq != p.first || tlog.RecordHash(first[0].Data) != p.firstHash || p.dv.after <= 0 {
		return nil, 0, false, nil
	}
	if err := p.dv.read(ctx, st, p.grant); err != nil || p.dv.stale {
		return nil, 0, false, err
	}
	return p.chain.page(ctx, st, store.LogFilter{SessionID: p.session}, after, limit)
}

// page reads the entries f selects (those c is over) after cursor after,
// at most limit of them, each checked against the chain. ok is false when
// the log no longer holds what the chain was made from.
func (c *entryChain) page(ctx context.Context, st store.Store, f store.LogFilter, after int64, limit int) (entries []store.LogEntry, next int64, ok bool, err error) {
	// From the mark at or before the cursor: the entries up to the
	// cursor (fewer than proofMarkEvery), the page and one more (is there
	// a next page?), then up to the next mark, read a chunk at a time.
	from := proofMark{}
	if i := sort.Search(len(c.marks), func(i int) bool { return c.marks[i].seq > after }); i > 0 {
		from = c.marks[i-1]
	}
	marks := c.marks[sort.Search(len(c.marks), func(i int) bool { return c.marks[i].n > from.n }):]
	chain, k, cursor := from.chain, from.n, from.seq
	more := false    // an entry follows the page
	started := false // an entry after the cursor was read
	for k < c.tail.n {
		if k > 0 && cursor <= 0 {
			return nil, 0, false, nil // no cursor reads on from there
		}
		// Before the page, a page's worth; once in it, the rest of the
		// page, one more, and up to the next mark.
		n := int64(max(limit+1, proofMarkEvery))
		if started {
			need := k + int64(limit-len(entries))
			if !more {
				need++
			}
			n = c.tail.n - k
			if i := sort.Search(len(marks), func(i int) bool { return marks[i].n >= need }); i < len(marks) {
				n = marks[i].n - k
			}
		}
		read, err := st.LogEntries(ctx, store.LogFilter{GrantID: f.GrantID, SessionID: f.SessionID, After: cursor, Limit: int(min(c.tail.n-k, n))})
		if err != nil {
			return nil, 0, false, err
		}
		if len(read) == 0 {
			return nil, 0, false, nil // entries are missing
		}
		done := false
		for _, e := range read {
			h := tlog.RecordHash(e.Data)
			if !bytes.Equal(h[:], e.LeafHash) || k >= c.tail.n {
				return nil, 0, false, nil
			}
			chain, k, cursor = link(chain, e.Seq, h), k+1, e.Seq
			switch {
			case e.Seq <= after:
			case len(entries) < limit:
				started = true
				entries = append(entries, e)
			default:
				more = true
			}
			var at *proofMark
			if len(marks) > 0 && marks[0].n == k {
				at, marks = &marks[0], marks[1:]
			} else if k == c.tail.n {
				at = &c.tail
			}
			if at == nil {
				continue
			}
			if at.seq != e.Seq || at.chain != chain {
				return nil, 0, false, nil
			}
			if more {
				// The page, one more, and the chain checked after
				// them: enough.
				done = true
				break
			}
		}
		if done {
			break
		}
	}
	if more {
		next = entries[len(entries)-1].Seq
	}
	return entries, next, true, nil
}

// proofKey, proofGrant and proofBuilt are what a proofCache needs of a
// proof: what it is kept under, its grant, and when it was derived.
func (p *sessionProof) proofKey() string      { return p.session }
func (p *sessionProof) proofGrant() string    { return p.grant }
func (p *sessionProof) proofBuilt() time.Time { return p.built }

// sessionProofs are the proofs kept, by session.
type sessionProofs = proofCache[*sessionProof]

// keptProofOf is what a proofCache holds: a proof derived from its grant's
// whole log at proofBuilt.
type keptProofOf interface {
	comparable
	proofKey() string
	proofGrant() string
	proofBuilt() time.Time
}

// proofCache are the proofs kept, by key (a session's, or a grant's:
// grantproof.go).
type proofCache[P keptProofOf] struct {
	mu sync.Mutex
	m  map[string]*keptProof[P]
}

// keptProof is a proof kept, when it was last used (for eviction) and its
// weight: the sessions of its grant, counted against maxProofSessions.
type keptProof[P keptProofOf] struct {
	p      P
	used   time.Time
	weight int
}

// get returns the proof kept under id, of grant grant, if it is still to
// be used at now.
func (ps *proofCache[P]) get(id, grant string, now time.Time) (p P, ok bool) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	k := ps.m[id]
	if k == nil {
		return p, false
	}
	if k.p.proofGrant() != grant || now.Sub(k.p.proofBuilt()) >= proofLife || now.Before(k.p.proofBuilt()) {
		delete(ps.m, id)
		return p, false
	}
	k.used = now
	return k.p, true
}

// put keeps p, whose grant holds sessions sessions, evicting the least
// recently used proofs to stay within the bounds; a proof heavier than
// them all is not kept.
func (ps *proofCache[P]) put(p P, sessions int, now time.Time) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if ps.m == nil {
		ps.m = map[string]*keptProof[P]{}
	}
	key := p.proofKey()
	if k := ps.m[key]; k != nil && k.p != p && k.p.proofBuilt().After(p.proofBuilt()) {
		return // a newer proof was kept meanwhile
	}
	delete(ps.m, key)
	if sessions > maxProofSessions {
		return
	}
	for {
		total := sessions
		for _, k := range ps.m {
			total += k.weight
		}
		if len(ps.m) < maxSessionProofs && total <= maxProofSessions {
			break
		}
		var oldest string
		for id, k := range ps.m {
			if oldest == "" || k.used.Before(ps.m[oldest].used) {
				oldest = id
			}
		}
		delete(ps.m, oldest)
	}
	ps.m[key] = &keptProof[P]{p: p, used: now, weight: sessions}
}

// drop forgets p, if it is the proof kept under its key.
func (ps *proofCache[P]) drop(p P) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if k := ps.m[p.proofKey()]; k != nil && k.p == p {
		delete(ps.m, p.proofKey())
	}
}
