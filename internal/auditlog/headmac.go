package auditlog

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"fmt"

	"golang.org/x/mod/sumdb/note"

	"github.com/airlock-dev/airlock/internal/store"
)

// headMACLabel separates the head MAC from every other use of the key.
const headMACLabel = "airlock log head v1\n"

// headMAC authenticates a checkpoint's size, root and frontier for the
// other replicas of a shared log (Options.HeadKey): HMAC-SHA256 over the
// label, the origin and the verifier key's name and hash (each followed by
// a newline), the size (8 bytes, big-endian), the root and the frontier.
// The key's hash is in it so that a replica configured with another
// signing key does not take the head on the MAC alone: it falls back to the
// signature, which it refuses. A replica continuing from another's checkpoint
// checks this instead of the Ed25519 signature, inside the writers' lock
// (see "Several replicas" in the package documentation).
func headMAC(key []byte, origin string, v note.Verifier, cp *store.Checkpoint) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(headMACLabel))
	m.Write([]byte(origin))
	m.Write([]byte{'\n'})
	if v != nil {
		fmt.Fprintf(m, "%s+%08x\n", v.Name(), v.KeyHash())
	}
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(cp.Size))
	m.Write(n[:])
	m.Write(cp.Root)
	m.Write(cp.Frontier)
	return m.Sum(nil)
}

// headByMAC returns the tree of a checkpoint another replica wrote if its
// MAC is valid under Options.HeadKey; ok is false if the log has no head
// key, the checkpoint no MAC (written before there was one) or a MAC that
// does not match, and the caller then checks its signature instead.
func (l *Log) headByMAC(cp *store.Checkpoint) (f frontier, ok bool) {
	if len(l.opts.HeadKey) == 0 || len(cp.MAC) == 0 || len(cp.Root) != sha256.Size {
		return f, false
	}
	if !hmac.Equal(cp.MAC, headMAC(l.opts.HeadKey, l.opts.Origin, l.opts.Verifier, cp)) {
		return f, false
	}
	f, err := parseFrontier(cp.Size, cp.Frontier)
	return f, err == nil
}
