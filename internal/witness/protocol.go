package witness

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"

	"golang.org/x/mod/sumdb/tlog"
)

// Limits on what crosses the network (C2SP tlog-witness).
const (
	// MaxProofLines is the most consistency proof lines a request may
	// carry (a proof between trees of up to 2^63 leaves needs fewer).
	MaxProofLines = 63
	// MaxRequestSize bounds an add-checkpoint body: the old size line, 63
	// proof lines, and a checkpoint with room for many signatures.
	MaxRequestSize = 64 << 10
	// MaxResponseSize bounds a witness's answer: cosignature lines (16 of
	// them fit many times over), or a tree size.
	MaxResponseSize = 16 << 10
	// SizeContentType is the media type of a 409 answer.
	SizeContentType = "text/x.tlog.size"
)

// FormatAddCheckpoint builds the body of an add-checkpoint request: the
// "old N" line, the consistency proof from size N to the checkpoint's size
// (one base64 hash a line), an empty line, and the signed checkpoint.
func FormatAddCheckpoint(old int64, proof tlog.TreeProof, checkpoint []byte) []byte {
	b := fmt.Appendf(nil, "old %d\n", old)
	for _, h := range proof {
		b = base64.StdEncoding.AppendEncode(b, h[:])
		b = append(b, '\n')
	}
	b = append(b, '\n')
	return append(b, checkpoint...)
}

// ParseAddCheckpoint parses an add-checkpoint request body strictly: every
// line must end in a newline, the old size must be decimal without leading
// zeros, there may be at most MaxProofLines proof lines each holding exactly
// one base64 hash, and a checkpoint must follow the empty line (its
// signatures are for the caller to check).
func ParseAddCheckpoint(body []byte) (old int64, proof tlog.TreeProof, checkpoint []byte, err error) {
	if len(body) > MaxRequestSize {
		return 0, nil, nil, errors.New("request too large")
	}
	line, rest, ok := bytes.Cut(body, []byte("\n"))
	if !ok {
		return 0, nil, nil, errors.New("missing old size line")
	}
	num, ok := bytes.CutPrefix(line, []byte("old "))
	if !ok {
		return 0, nil, nil, errors.New(`the first line must be "old <size>"`)
	}
	if old, err = parseDecimal(num); err != nil {
		return 0, nil, nil, fmt.Errorf("old size: %w", err)
	}
	for {
		line, rest, ok = bytes.Cut(rest, []byte("\n"))
		if !ok {
			return 0, nil, nil, errors.New("missing the empty line before the checkpoint")
		}
		if len(line) == 0 {
			break
		}
		if len(proof) == MaxProofLines {
			return 0, nil, nil, fmt.Errorf("more than %d consistency proof lines", MaxProofLines)
		}
		var h tlog.Hash
		if len(line) != base64.StdEncoding.EncodedLen(tlog.HashSize) {
			return 0, nil, nil, fmt.Errorf("consistency proof line %d is not a base64 hash", len(proof)+1)
		}
		var buf [tlog.HashSize + 1]byte // DecodedLen(44) is 33
		if n, err := base64.StdEncoding.Strict().Decode(buf[:], line); err != nil || n != tlog.HashSize {
			return 0, nil, nil, fmt.Errorf("consistency proof line %d is not a base64 hash", len(proof)+1)
		}
		copy(h[:], buf[:])
		proof = append(proof, h)
	}
	if len(rest) == 0 {
		return 0, nil, nil, errors.New("missing checkpoint")
	}
	return old, proof, rest, nil
}

// parseDecimal parses a tree size: ASCII decimal, no sign, no leading zeros
// except "0" itself.
func parseDecimal(b []byte) (int64, error) {
	if len(b) == 0 || len(b) > 19 || (b[0] == '0' && len(b) > 1) {
		return 0, errors.New("not a decimal tree size")
	}
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, errors.New("not a decimal tree size")
		}
	}
	n, err := strconv.ParseInt(string(b), 10, 64)
	if err != nil {
		return 0, errors.New("tree size out of range")
	}
	return n, nil
}

// ParseSize parses a 409 answer's body: a tree size and a newline.
func ParseSize(body []byte) (int64, error) {
	num, ok := bytes.CutSuffix(body, []byte("\n"))
	if !ok {
		return 0, errors.New("the tree size must end in a newline")
	}
	return parseDecimal(num)
}
