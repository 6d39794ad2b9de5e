package auditlog

import (
	"context"
	"errors"
	"fmt"

	"github.com/airlock-dev/airlock/internal/store"
	"golang.org/x/mod/sumdb/tlog"
)

// maxProofLeaves bounds the entries ProveConsistency holds the leaf hashes
// of (32 bytes each, so 128 MiB at most). A witness that fell further
// behind than this gets no proof; its operator has to re-add the log.
const maxProofLeaves = 4 << 20

// ProveConsistency returns the RFC 6962 consistency proof that the log's
// tree of size old is a prefix of its tree of size new (0 < old <= new), as
// a tlog-witness expects it.
//
// Every hash such a proof needs is either the root of one of the perfect
// subtrees that make up the old tree (its frontier) or the hash of a subtree
// made only of entries old..new-1. So the proof costs reading the entries
// added since old, plus, when oldFrontier is nil, entries 0..old-1 to
// rebuild the old frontier. oldFrontier, if given, is the frontier stored
// with a checkpoint of size old (store.Checkpoint.Frontier). Leaf hashes are
// recomputed from the entries' bytes; a proof built over entries that were
// changed does not verify against the signed roots, which is the point.
func ProveConsistency(ctx context.Context, st store.Store, old int64, oldFrontier []byte, new int64) (tlog.TreeProof, error) {
	if old <= 0 || new < old {
		return nil, fmt.Errorf("auditlog: no consistency proof from size %d to %d", old, new)
	}
	if new-old > maxProofLeaves {
		return nil, fmt.Errorf("auditlog: a consistency proof over %d entries is too big (at most %d)", new-old, maxProofLeaves)
	}
	var f frontier
	if oldFrontier != nil {
		var err error
		if f, err = parseFrontier(old, oldFrontier); err != nil {
			return nil, fmt.Errorf("auditlog: frontier of size %d: %w", old, err)
		}
	} else {
		next := int64(0)
		err := st.ScanLog(ctx, 0, old, func(e store.LogEntry) error {
			if e.Seq != next {
				return fmt.Errorf("entry %d is missing", next)
			}
			next++
			return f.add(tlog.RecordHash(e.Data))
		})
		if err == nil && next != old {
			err = fmt.Errorf("the log holds %d entries, not %d", next, old)
		}
		if err != nil {
			return nil, fmt.Errorf("auditlog: rebuilding the tree of size %d: %w", old, err)
		}
	}
	r := &proofReader{old: f, start: old, leaves: make([]tlog.Hash, 0, new-old)}
	next := old
	err := st.ScanLog(ctx, old, new, func(e store.LogEntry) error {
		if e.Seq != next {
			return fmt.Errorf("entry %d is missing", next)
		}
		next++
		r.leaves = append(r.leaves, tlog.RecordHash(e.Data))
		return nil
	})
	if err == nil && next != new {
		err = fmt.Errorf("the log holds %d entries, not %d", next, new)
	}
	if err != nil {
		return nil, fmt.Errorf("auditlog: reading entries %d-%d: %w", old, new-1, err)
	}
	return tlog.ProveTree(new, old, r)
}

// proofReader serves the tree hashes tlog.ProveTree asks for when proving
// the tree of size start consistent with a bigger one: the old tree's
// frontier, and subtrees of the leaves from start on.
type proofReader struct {
	old    frontier
	start  int64
	leaves []tlog.Hash // leaves[i] is leaf start+i
}

var errNotInProof = errors.New("auditlog: a consistency proof asked for a hash outside the old frontier and the new entries")

func (r *proofReader) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	for i, idx := range indexes {
		level, k := tlog.SplitStoredHashIndex(idx)
		if level >= 63 {
			return nil, errNotInProof
		}
		lo := k << level
		hi := lo + 1<<level
		switch {
		case hi <= r.start:
			h, err := r.old.ReadHashes([]int64{idx})
			if err != nil {
				return nil, err
			}
			out[i] = h[0]
		case lo >= r.start && hi-r.start <= int64(len(r.leaves)):
			out[i] = subtreeHash(r.leaves[lo-r.start : hi-r.start])
		default:
			return nil, errNotInProof
		}
	}
	return out, nil
}

// subtreeHash is the RFC 6962 hash of a perfect subtree of leaves (a power
// of two of them).
func subtreeHash(leaves []tlog.Hash) tlog.Hash {
	if len(leaves) == 1 {
		return leaves[0]
	}
	m := len(leaves) / 2
	return tlog.NodeHash(subtreeHash(leaves[:m]), subtreeHash(leaves[m:]))
}
