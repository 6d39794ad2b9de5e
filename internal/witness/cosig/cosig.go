// Package cosig implements witness cosignatures on Airlock's checkpoints as
// C2SP tlog-cosignature specifies them (https://c2sp.org/tlog-cosignature),
// in their Ed25519 form ("cosignature/v1", signed-note signature type 0x04),
// and the verification of a cosigned checkpoint: a checkpoint note carrying
// the log's own signature line and, after it, one line per witness.
//
// A cosignature line is a signed-note signature line
//
//	— <witness name> base64(key ID || timestamp || Ed25519 signature)
//
// where key ID = SHA-256(name || "\n" || 0x04 || public key)[:4], timestamp
// is a big-endian uint64 of POSIX seconds, and the signature covers
//
//	cosignature/v1\n
//	time <timestamp>\n
//	<the checkpoint's note text, final newline included>
//
// A witness's public key is written as a vkey, the signed-note verifier key
// format: <name>+<hex key ID>+base64(0x04 || 32-byte Ed25519 public key).
//
// This package depends on nothing in Airlock, so that offline verification
// (airlock audit verify) and the configuration can use it cheaply.
package cosig

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// AlgCosignatureV1 is the signed-note signature type of timestamped Ed25519
// witness cosignatures.
const AlgCosignatureV1 = 0x04

// sigSize is a cosignature after its key ID: timestamp and Ed25519 signature.
const sigSize = 8 + ed25519.SignatureSize

// MaxSkew is how far a witness's clock may be from the verifier's: a
// cosignature dated further in the future than this is refused, and the
// publisher takes a witness's answer only if its cosignature is dated
// within this of the request (package witness).
const MaxSkew = 5 * time.Minute

// keyID computes a cosigner's key ID.
func keyID(name string, pub ed25519.PublicKey) uint32 {
	h := sha256.New()
	h.Write([]byte(name))
	h.Write([]byte{'\n', AlgCosignatureV1})
	h.Write(pub)
	return binary.BigEndian.Uint32(h.Sum(nil))
}

// validName is signed-note's rule for key names: not empty, valid UTF-8,
// no Unicode space and no '+'.
func validName(name string) bool {
	return name != "" && utf8.ValidString(name) && strings.IndexFunc(name, unicode.IsSpace) < 0 && !strings.Contains(name, "+")
}

// message is what a cosignature with timestamp ts signs over text.
func message(ts uint64, text []byte) []byte {
	m := fmt.Appendf(nil, "cosignature/v1\ntime %d\n", ts)
	return append(m, text...)
}

// Verifier checks one witness's cosignatures. It implements note.Verifier,
// so note.Open verifies cosignature lines with it like any signature.
type Verifier struct {
	name string
	id   uint32
	pub  ed25519.PublicKey
	vkey string
}

// NewVerifier parses a witness's vkey. It accepts only cosignature/v1 keys
// (type 0x04) whose key ID matches the name and key.
func NewVerifier(vkey string) (*Verifier, error) {
	name, rest, ok1 := strings.Cut(vkey, "+")
	hexID, b64, ok2 := strings.Cut(rest, "+")
	if !ok1 || !ok2 || !validName(name) || len(hexID) != 8 {
		return nil, errors.New("malformed witness key: want <name>+<8 hex digits>+<base64 key>")
	}
	id, err := strconv.ParseUint(hexID, 16, 32)
	if err != nil {
		return nil, errors.New("malformed witness key: the key ID is not 8 hex digits")
	}
	key, err := base64.StdEncoding.DecodeString(b64)
	if err != nil || len(key) != 1+ed25519.PublicKeySize {
		return nil, errors.New("malformed witness key: the key is not base64 of 33 bytes")
	}
	if key[0] != AlgCosignatureV1 {
		return nil, fmt.Errorf("witness key %s has signature type 0x%02x, not 0x04 (a cosignature/v1 Ed25519 key)", name, key[0])
	}
	pub := ed25519.PublicKey(key[1:])
	if uint32(id) != keyID(name, pub) {
		return nil, fmt.Errorf("witness key %s: the key ID %s does not match the name and key", name, hexID)
	}
	return &Verifier{name: name, id: uint32(id), pub: pub, vkey: vkey}, nil
}

// Name implements note.Verifier.
func (v *Verifier) Name() string { return v.name }

// KeyHash implements note.Verifier.
func (v *Verifier) KeyHash() uint32 { return v.id }

// String returns the vkey.
func (v *Verifier) String() string { return v.vkey }

// Verify implements note.Verifier: sig is the timestamp and Ed25519
// signature that follow the key ID.
func (v *Verifier) Verify(msg, sig []byte) bool {
	if len(sig) != sigSize {
		return false
	}
	ts := binary.BigEndian.Uint64(sig)
	if ts > math.MaxInt64 {
		return false
	}
	return ed25519.Verify(v.pub, message(ts, msg), sig[8:])
}

// Signer makes cosignatures. It implements note.Signer, so note.Sign with it
// produces a cosignature line.
type Signer struct {
	name string
	id   uint32
	priv ed25519.PrivateKey
	now  func() time.Time
}

// NewSigner returns a cosigner for name with an Ed25519 key; now gives the
// timestamp (time.Now if nil).
func NewSigner(name string, priv ed25519.PrivateKey, now func() time.Time) (*Signer, error) {
	if !validName(name) {
		return nil, fmt.Errorf("invalid cosigner name %q", name)
	}
	if len(priv) != ed25519.PrivateKeySize {
		return nil, errors.New("not an Ed25519 private key")
	}
	if now == nil {
		now = time.Now
	}
	pub := priv.Public().(ed25519.PublicKey)
	return &Signer{name: name, id: keyID(name, pub), priv: priv, now: now}, nil
}

// GenerateSigner makes a new cosigner key.
func GenerateSigner(name string, rand io.Reader, now func() time.Time) (*Signer, error) {
	_, priv, err := ed25519.GenerateKey(rand)
	if err != nil {
		return nil, err
	}
	return NewSigner(name, priv, now)
}

// Name implements note.Signer.
func (s *Signer) Name() string { return s.name }

// KeyHash implements note.Signer.
func (s *Signer) KeyHash() uint32 { return s.id }

// Sign implements note.Signer: a timestamp and the Ed25519 signature.
func (s *Signer) Sign(msg []byte) ([]byte, error) {
	t := s.now().Unix()
	if t < 0 {
		return nil, errors.New("cosig: the clock is before 1970")
	}
	ts := uint64(t)
	out := binary.BigEndian.AppendUint64(make([]byte, 0, sigSize), ts)
	return append(out, ed25519.Sign(s.priv, message(ts, msg))...), nil
}

// VerifierKey returns the signer's vkey.
func (s *Signer) VerifierKey() string {
	key := append([]byte{AlgCosignatureV1}, s.priv.Public().(ed25519.PublicKey)...)
	return fmt.Sprintf("%s+%08x+%s", s.name, s.id, base64.StdEncoding.EncodeToString(key))
}

// Checkpoint is the content of a checkpoint note (C2SP tlog-checkpoint).
type Checkpoint struct {
	Origin string
	Size   int64
	Root   tlog.Hash
}

// ParseCheckpoint parses checkpoint note text: origin, decimal size with no
// leading zeros, base64 root hash, each line ending in a newline. Extension
// lines after the root are allowed and ignored, as the format specifies.
// The size and the hash are taken only in their one spelling: Go's base64
// decoder also takes nonzero padding bits ("…1=" for "…0=") and skips
// carriage returns, which would give one checkpoint several texts.
func ParseCheckpoint(text string) (Checkpoint, error) {
	lines := strings.SplitN(text, "\n", 4)
	if len(lines) < 4 || lines[0] == "" {
		return Checkpoint{}, errors.New("malformed checkpoint: want origin, size and root hash lines")
	}
	n, err := strconv.ParseInt(lines[1], 10, 64)
	if err != nil || n < 0 || strconv.FormatInt(n, 10) != lines[1] {
		return Checkpoint{}, errors.New("malformed checkpoint: bad tree size")
	}
	h, err := base64.StdEncoding.DecodeString(lines[2])
	if err != nil || len(h) != tlog.HashSize || base64.StdEncoding.EncodeToString(h) != lines[2] {
		return Checkpoint{}, errors.New("malformed checkpoint: bad root hash")
	}
	c := Checkpoint{Origin: lines[0], Size: n}
	copy(c.Root[:], h)
	return c, nil
}

// Cosignature is a verified witness cosignature.
type Cosignature struct {
	Witness string    // the witness key's name
	Time    time.Time // when the witness signed, by its own clock
}

// Cosigned is a verified cosigned checkpoint.
type Cosigned struct {
	Checkpoint
	// Cosignatures are those of the required witnesses, in the order their
	// keys were given.
	Cosignatures []Cosignature
}

// VerifyCosigned opens a cosigned checkpoint: msg must carry a valid
// signature by the log's key (logVerifier), name the log's origin, and
// carry a valid cosignature by every witness named in witnessKeys (vkeys,
// see NewVerifier). Signatures by other keys are ignored, as signed-note
// requires; a signature line that claims a known key but does not verify
// fails the whole note.
//
// A cosignature is the witness's statement that, at its timestamp, this was
// the largest tree consistent with everything it saw from the log that the
// checkpoint's origin line names. Holding the log to a cosigned checkpoint
// therefore catches a log that was cut short or rewritten since, even by
// someone who could also delete every copy of the checkpoint on the log's
// own machine; a checkpoint of another log (another origin), even one the
// same key signed, says nothing about this one, and is refused.
//
// An old cosignature stays true (the log was at least that big then), so
// its age is not held against it: Cosignatures report each one's time for
// the caller to judge. One dated more than MaxSkew after now is refused:
// no witness made it yet, by the caller's clock.
func VerifyCosigned(msg []byte, logVerifier note.Verifier, origin string, witnessKeys []string, now time.Time) (*Cosigned, error) {
	if logVerifier == nil {
		return nil, errors.New("no log verifier key")
	}
	if origin == "" {
		return nil, errors.New("no log origin")
	}
	vs := []note.Verifier{logVerifier}
	ws := make([]*Verifier, 0, len(witnessKeys))
	for _, k := range witnessKeys {
		w, err := NewVerifier(k)
		if err != nil {
			return nil, err
		}
		for _, prev := range vs {
			if prev.Name() == w.Name() && prev.KeyHash() == w.KeyHash() {
				return nil, fmt.Errorf("witness key %s is given twice (or is the log's own key)", w.Name())
			}
		}
		vs = append(vs, w)
		ws = append(ws, w)
	}
	n, err := note.Open(msg, note.VerifierList(vs...))
	if err != nil {
		var inv *note.InvalidSignatureError
		if errors.As(err, &inv) {
			return nil, fmt.Errorf("the signature of %s on the checkpoint does not verify: %w", inv.Name, err)
		}
		var unv *note.UnverifiedNoteError
		if errors.As(err, &unv) {
			return nil, errors.New("the checkpoint carries no signature by the log's key nor by any given witness")
		}
		return nil, fmt.Errorf("opening the cosigned checkpoint: %w", err)
	}
	sigs := map[[2]any]note.Signature{}
	for _, s := range n.Sigs {
		sigs[[2]any{s.Name, s.Hash}] = s
	}
	if _, ok := sigs[[2]any{logVerifier.Name(), logVerifier.KeyHash()}]; !ok {
		return nil, fmt.Errorf("the checkpoint is not signed by the log's key %s", logVerifier.Name())
	}
	cp, err := ParseCheckpoint(n.Text)
	if err != nil {
		return nil, err
	}
	if cp.Origin != origin {
		return nil, fmt.Errorf("the checkpoint is of the log %q, not %q: its cosignatures are about another log", cp.Origin, origin)
	}
	out := &Cosigned{Checkpoint: cp}
	var missing []string
	for _, w := range ws {
		s, ok := sigs[[2]any{w.Name(), w.KeyHash()}]
		if !ok {
			missing = append(missing, w.Name())
			continue
		}
		at := SignatureTime(s)
		if at.After(now.Add(MaxSkew)) {
			return nil, fmt.Errorf("witness %s's cosignature is dated %s, more than %s after now (%s): its clock is wrong, or it was not made by the witness's clock", w.Name(), at.Format(time.RFC3339), MaxSkew, now.UTC().Format(time.RFC3339))
		}
		out.Cosignatures = append(out.Cosignatures, Cosignature{Witness: w.Name(), Time: at})
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("the checkpoint (size %d) has no cosignature by witness %s", cp.Size, strings.Join(missing, ", "))
	}
	return out, nil
}

// SignatureTime returns the timestamp of a cosignature that note.Open
// verified with a Verifier (the zero time for any other signature).
func SignatureTime(s note.Signature) time.Time {
	raw, err := base64.StdEncoding.DecodeString(s.Base64)
	if err != nil || len(raw) != 4+sigSize {
		return time.Time{}
	}
	return time.Unix(int64(binary.BigEndian.Uint64(raw[4:])), 0).UTC()
}

// AppendSignatures returns the signed note msg with the signature lines
// sigLines added after its own (each line "— name base64\n"). Lines already
// present are not repeated.
func AppendSignatures(msg []byte, sigLines []byte) []byte {
	out := bytes.Clone(msg)
	have := map[string]bool{}
	for line := range bytes.Lines(msg) {
		have[string(line)] = true
	}
	for line := range bytes.Lines(sigLines) {
		if !have[string(line)] {
			have[string(line)] = true
			out = append(out, line...)
		}
	}
	return out
}
