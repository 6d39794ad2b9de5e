package auditlog

import (
	"context"
	"errors"
	"fmt"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/airlock-dev/airlock/internal/store"
)

// ProofTree is the full Merkle tree of a signed checkpoint, held in memory
// (two hashes per entry, 64 bytes) to answer inclusion and consistency
// proofs. The log itself keeps only its frontier; proofs are rare (an
// evidence bundle, a verifier catching up with a witness), so the tree is
// rebuilt from the entries when one is asked for.
type ProofTree struct {
	// Checkpoint is the signed checkpoint the tree was built for and
	// matches.
	Checkpoint store.Checkpoint
	hashes     []tlog.Hash // indexed by tlog.StoredHashIndex
}

// ReadHashes implements tlog.HashReader.
func (t *ProofTree) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	for i, x := range indexes {
		if x < 0 || x >= int64(len(t.hashes)) {
			return nil, fmt.Errorf("auditlog: tree hash %d out of range", x)
		}
		out[i] = t.hashes[x]
	}
	return out, nil
}

// ErrDamaged is matched (errors.Is) by BuildProofTree's errors that say
// the stored log does not match its newest checkpoint (an entry missing or
// malformed, a root that differs, a signature that does not verify), as
// opposed to failures to read it: no proof can be built from such a log,
// and audit verify says what is wrong with it.
var ErrDamaged = errors.New("auditlog: the stored log does not match its newest signed checkpoint")

// damaged is an error that matches ErrDamaged, with its own text.
type damaged struct{ msg string }

func (d *damaged) Error() string        { return d.msg }
func (d *damaged) Is(target error) bool { return target == ErrDamaged }

func damagedf(format string, args ...any) error {
	return &damaged{msg: fmt.Sprintf(format, args...)}
}

// BuildProofTree rebuilds the tree of st's newest checkpoint from the entry
// bytes (recomputing every leaf hash rather than trusting the stored ones)
// and checks that it has the checkpoint's root and that the checkpoint is
// validly signed for v. A log that fails either check yields no proofs.
func BuildProofTree(ctx context.Context, st store.Store, v note.Verifier) (*ProofTree, error) {
	return BuildProofTreeEach(ctx, st, v, nil)
}

// BuildProofTreeEach is BuildProofTree calling each (if not nil) with every
// entry the tree covers, in sequence order, as it reads them: for callers
// that must see every entry rather than trust an index of them (the
// evidence export). e.Data may be reused once each returns.
func BuildProofTreeEach(ctx context.Context, st store.Store, v note.Verifier, each func(store.LogEntry) error) (*ProofTree, error) {
	cp, err := st.LatestCheckpoint(ctx)
	if errors.Is(err, store.ErrNotFound) {
		return nil, errors.New("auditlog: the log has no checkpoint yet")
	}
	if err != nil {
		return nil, err
	}
	c, err := openCheckpoint(cp.Note, v)
	if err != nil {
		return nil, damagedf("auditlog: the newest checkpoint: %v", err)
	}
	t := &ProofTree{Checkpoint: cp, hashes: make([]tlog.Hash, 0, 2*c.size)}
	next := int64(0)
	err = st.ScanLog(ctx, 0, c.size, func(e store.LogEntry) error {
		if e.Seq != next {
			return damagedf("entry %d is missing", next)
		}
		if j, ok := entrySeq(e.Data); !ok || j != e.Seq {
			return damagedf("entry %d is not a well-formed entry", e.Seq)
		}
		hs, err := tlog.StoredHashes(next, e.Data, t)
		if err != nil {
			return err
		}
		t.hashes = append(t.hashes, hs...)
		next++
		if each != nil {
			return each(e)
		}
		return nil
	})
	if err != nil {
		if errors.Is(err, ErrDamaged) {
			return nil, damagedf("auditlog: rebuilding the tree: %v (run airlock audit verify)", err)
		}
		return nil, fmt.Errorf("auditlog: rebuilding the tree: %w (run airlock audit verify)", err)
	}
	if next != c.size {
		return nil, damagedf("auditlog: the log holds %d entries, its checkpoint covers %d (run airlock audit verify)", next, c.size)
	}
	root, err := tlog.TreeHash(c.size, t)
	if err != nil {
		return nil, err
	}
	if root != c.root {
		return nil, damagedf("auditlog: the entries do not hash to the signed root of checkpoint %d (run airlock audit verify)", cp.ID)
	}
	return t, nil
}

// Size is the number of entries the tree covers.
func (t *ProofTree) Size() int64 { return t.Checkpoint.Size }

// Inclusion returns the RFC 6962 inclusion proof of entry i.
func (t *ProofTree) Inclusion(i int64) (tlog.RecordProof, error) {
	return tlog.ProveRecord(t.Size(), i, t)
}

// Consistency returns the RFC 6962 consistency proof from the tree of the
// first n entries to this one.
func (t *ProofTree) Consistency(n int64) (tlog.TreeProof, error) {
	return tlog.ProveTree(t.Size(), n, t)
}

// OpenCheckpoint verifies a checkpoint note with v and returns its size and
// root. With v nil the signature is not checked (only the text is read).
func OpenCheckpoint(msg []byte, v note.Verifier) (size int64, root tlog.Hash, err error) {
	var c checkpoint
	if v == nil {
		var text string
		if text, err = unverifiedText(msg); err == nil {
			c, err = parseCheckpoint(text)
		}
	} else {
		c, err = openCheckpoint(msg, v)
	}
	return c.size, c.root, err
}

// CheckpointOrigin returns the origin line of a checkpoint note, the log it
// names, without checking any signature; "" if msg is not a checkpoint.
func CheckpointOrigin(msg []byte) string {
	text, err := unverifiedText(msg)
	if err != nil {
		return ""
	}
	c, err := parseCheckpoint(text)
	if err != nil {
		return ""
	}
	return c.origin
}
