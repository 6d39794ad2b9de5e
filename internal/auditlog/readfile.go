package auditlog

import (
	"fmt"
	"io"
	"os"
)

// Files that verification reads from wherever it is told (a --key or
// --witness argument, a data directory it does not trust) are bounded: a
// path naming /dev/zero, a FIFO or a huge file made the command read until
// it ran out of memory. Nothing genuine comes near the bounds.
const (
	// MaxVerifierKeyFile bounds a verifier key file (log-signing.pub: one
	// line of about a hundred bytes).
	MaxVerifierKeyFile = 4 << 10
	// MaxCheckpointFile bounds a checkpoint note file (a witness file:
	// the note and its cosignatures, a few hundred bytes each).
	MaxCheckpointFile = 1 << 20
)

// ReadFileMax reads the file at path, refusing one of more than limit
// bytes without reading past limit+1 of it.
func ReadFileMax(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s holds more than %d bytes: not a file of this kind", path, limit)
	}
	return b, nil
}
