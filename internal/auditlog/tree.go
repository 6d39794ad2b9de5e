package auditlog

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// frontier is the right edge of a Merkle tree of n leaves: for every set bit
// l of n, h[l] is the root of the perfect subtree of 2^l leaves that the tree
// has at that place. That is all tlog.StoredHashes needs to add leaf n and all
// tlog.TreeHash needs for the root, so the frontier serves as their
// tlog.HashReader and the rest of the tree never needs to be kept or read.
type frontier struct {
	n int64
	h [64]tlog.Hash // h[l] is meaningful only when bit l of n is set
}

// ReadHashes implements tlog.HashReader for the hashes the frontier holds.
func (f *frontier) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	for i, idx := range indexes {
		level, k := tlog.SplitStoredHashIndex(idx)
		if level >= 63 || f.n&(1<<level) == 0 || k != f.n>>level-1 {
			return nil, fmt.Errorf("auditlog: tree hash %d (level %d, #%d) is not on the frontier of a tree of size %d", idx, level, k, f.n)
		}
		out[i] = f.h[level]
	}
	return out, nil
}

// add appends a leaf. It is what tlog.StoredHashesForRecordHash computes
// (TestFrontierMatchesTlog), without its allocations: the new leaf
// merges with the subtrees of the trailing 1 bits of n (levels 0..m-1), the
// result becomes the level-m subtree, and bit m is set.
func (f *frontier) add(leaf tlog.Hash) error {
	if f.n < 0 || f.n == math.MaxInt64 {
		return fmt.Errorf("auditlog: cannot add to a tree of size %d", f.n)
	}
	h := leaf
	m := 0
	for f.n&(1<<m) != 0 {
		h = tlog.NodeHash(f.h[m], h)
		m++
	}
	f.h[m] = h
	f.n++
	return nil
}

// copyFrom makes f the tree src is, copying only the subtree roots src
// holds (one for each set bit of its size): a whole frontier is 2 KiB.
func (f *frontier) copyFrom(src *frontier) {
	f.n = src.n
	for u := uint64(src.n); u != 0; u &= u - 1 {
		l := bits.TrailingZeros64(u)
		f.h[l] = src.h[l]
	}
}

// root returns the tree's root hash.
func (f *frontier) root() (tlog.Hash, error) {
	return tlog.TreeHash(f.n, f)
}

// marshal encodes the frontier as its subtree roots from left to right
// (highest level first), concatenated.
func (f *frontier) marshal() []byte {
	return f.appendMarshal(make([]byte, 0, bits.OnesCount64(uint64(f.n))*tlog.HashSize))
}

// appendMarshal appends f's encoding (marshal's) to out.
func (f *frontier) appendMarshal(out []byte) []byte {
	for l := 62; l >= 0; l-- {
		if f.n&(1<<l) != 0 {
			out = append(out, f.h[l][:]...)
		}
	}
	return out
}

// parseFrontier decodes a frontier for a tree of n leaves.
func parseFrontier(n int64, b []byte) (frontier, error) {
	var f frontier
	if n < 0 {
		return f, fmt.Errorf("negative tree size %d", n)
	}
	if want := bits.OnesCount64(uint64(n)) * tlog.HashSize; len(b) != want {
		return f, fmt.Errorf("frontier is %d bytes, a tree of size %d needs %d", len(b), n, want)
	}
	f.n = n
	for l := 62; l >= 0; l-- {
		if n&(1<<l) != 0 {
			copy(f.h[l][:], b)
			b = b[tlog.HashSize:]
		}
	}
	return f, nil
}

// checkpoint is the content of a checkpoint note.
type checkpoint struct {
	origin string
	size   int64
	root   tlog.Hash
}

// formatCheckpoint returns the note text of a checkpoint in the C2SP
// tlog-checkpoint format.
func formatCheckpoint(c checkpoint) []byte {
	return fmt.Appendf(nil, "%s\n%d\n%s\n", c.origin, c.size, base64.StdEncoding.EncodeToString(c.root[:]))
}

var errMalformedCheckpoint = errors.New("malformed checkpoint")

// parseCheckpoint parses checkpoint note text. Extension lines after the root
// are allowed and ignored, as the format specifies. The size and the hash
// are taken only as formatCheckpoint spells them (Go's base64 decoder also
// takes nonzero padding bits and skips carriage returns).
func parseCheckpoint(text string) (checkpoint, error) {
	lines := strings.SplitN(text, "\n", 4)
	if len(lines) < 4 || lines[0] == "" {
		return checkpoint{}, errMalformedCheckpoint
	}
	n, err := strconv.ParseInt(lines[1], 10, 64)
	if err != nil || n < 0 || strconv.FormatInt(n, 10) != lines[1] {
		return checkpoint{}, errMalformedCheckpoint
	}
	h, err := base64.StdEncoding.DecodeString(lines[2])
	if err != nil || len(h) != tlog.HashSize || base64.StdEncoding.EncodeToString(h) != lines[2] {
		return checkpoint{}, errMalformedCheckpoint
	}
	c := checkpoint{origin: lines[0], size: n}
	copy(c.root[:], h)
	return c, nil
}

// unverifiedText returns the text of a signed note without checking its
// signatures.
func unverifiedText(msg []byte) (string, error) {
	i := bytes.LastIndex(msg, []byte("\n\n"))
	if i < 0 {
		return "", errors.New("malformed note")
	}
	return string(msg[:i+1]), nil
}

// openCheckpoint verifies a signed checkpoint note with v and parses it.
func openCheckpoint(msg []byte, v note.Verifier) (checkpoint, error) {
	n, err := note.Open(msg, note.VerifierList(v))
	if err != nil {
		return checkpoint{}, err
	}
	return parseCheckpoint(n.Text)
}
