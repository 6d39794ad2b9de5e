package cosig

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"io"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
)

var fixed = time.Unix(1679315147, 0)

func logKey(t *testing.T) (note.Signer, note.Verifier) {
	t.Helper()
	return logKeyFrom(t, rand.Reader)
}

// logKeyFrom is the log's key drawn from r (a fixed reader gives the same
// key on every run, as FuzzVerifyCosigned's kept inputs need).
func logKeyFrom(t testing.TB, r io.Reader) (note.Signer, note.Verifier) {
	t.Helper()
	skey, vkey, err := note.GenerateKey(r, "airlock/0123abcd")
	if err != nil {
		t.Fatal(err)
	}
	s, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	return s, v
}

const text = "airlock/0123abcd\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"

// TestCosignatureBytesFollowSpec builds a cosignature line by hand from the
// C2SP text (key ID, timestamped_signature, signed message) and checks both
// directions: the Verifier accepts it, and the Signer's output is exactly
// that construction.
func TestCosignatureBytesFollowSpec(t *testing.T) {
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	name := "witness.example.com/w1"
	h := sha256.Sum256(append(append([]byte(name), '\n', 0x04), pub...))
	id := h[:4]
	msg := "cosignature/v1\ntime 1679315147\n" + text
	sig := ed25519.Sign(priv, []byte(msg)) // Ed25519 is deterministic
	raw := append(append(append([]byte{}, id...), binary.BigEndian.AppendUint64(nil, 1679315147)...), sig...)
	line := "— " + name + " " + base64.StdEncoding.EncodeToString(raw) + "\n"
	vkey := name + "+" + strings.ToLower(hexOf(id)) + "+" + base64.StdEncoding.EncodeToString(append([]byte{0x04}, pub...))

	s, err := NewSigner(name, priv, func() time.Time { return fixed })
	if err != nil {
		t.Fatal(err)
	}
	if s.VerifierKey() != vkey {
		t.Fatalf("vkey %q, want %q", s.VerifierKey(), vkey)
	}
	signed, err := note.Sign(&note.Note{Text: text}, s)
	if err != nil {
		t.Fatal(err)
	}
	if want := text + "\n" + line; string(signed) != want {
		t.Fatalf("Signer made\n%s\nwant\n%s", signed, want)
	}
	v, err := NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := note.Open([]byte(text+"\n"+line), note.VerifierList(v)); err != nil {
		t.Fatalf("hand-made cosignature refused: %v", err)
	}
	// The timestamp is signed: another one in the line fails.
	raw2 := bytes.Clone(raw)
	raw2[11]++
	bad := text + "\n— " + name + " " + base64.StdEncoding.EncodeToString(raw2) + "\n"
	if _, err := note.Open([]byte(bad), note.VerifierList(v)); err == nil {
		t.Fatal("a cosignature with a changed timestamp verified")
	}
}

func hexOf(b []byte) string {
	const digits = "0123456789abcdef"
	out := make([]byte, 0, 2*len(b))
	for _, c := range b {
		out = append(out, digits[c>>4], digits[c&15])
	}
	return string(out)
}

func TestNewVerifierRejects(t *testing.T) {
	s, err := GenerateSigner("w.example/1", rand.Reader, nil)
	if err != nil {
		t.Fatal(err)
	}
	good := s.VerifierKey()
	name, rest, _ := strings.Cut(good, "+")
	id, key, _ := strings.Cut(rest, "+")
	_, ed := mustNoteKey(t)
	for _, k := range []string{
		"", "w.example/1", name + "+" + id, name + "+zzzzzzzz+" + key,
		name + "+" + id + "+!!!", "other.example/1+" + id + "+" + key, // ID does not match the name
		ed, // an ordinary Ed25519 (0x01) note key
	} {
		if _, err := NewVerifier(k); err == nil {
			t.Errorf("NewVerifier(%q) accepted it", k)
		}
	}
	if _, err := NewVerifier(good); err != nil {
		t.Fatal(err)
	}
}

func mustNoteKey(t *testing.T) (string, string) {
	t.Helper()
	skey, vkey, err := note.GenerateKey(rand.Reader, "w.example/1")
	if err != nil {
		t.Fatal(err)
	}
	return skey, vkey
}

func TestVerifyCosigned(t *testing.T) {
	now := fixed.Add(time.Hour)
	ls, lv := logKey(t)
	w1, _ := GenerateSigner("w1.example/w", rand.Reader, func() time.Time { return fixed })
	w2, _ := GenerateSigner("w2.example/w", rand.Reader, func() time.Time { return fixed.Add(time.Second) })
	w3, _ := GenerateSigner("w3.example/w", rand.Reader, nil)
	plain, err := note.Sign(&note.Note{Text: text}, ls)
	if err != nil {
		t.Fatal(err)
	}
	cosigned, err := note.Sign(&note.Note{Text: text}, ls, w1, w2)
	if err != nil {
		t.Fatal(err)
	}
	got, err := VerifyCosigned(cosigned, lv, "airlock/0123abcd", []string{w1.VerifierKey(), w2.VerifierKey()}, now)
	if err != nil {
		t.Fatal(err)
	}
	if got.Size != 20852163 || got.Origin != "airlock/0123abcd" || len(got.Cosignatures) != 2 ||
		!got.Cosignatures[0].Time.Equal(fixed) || !got.Cosignatures[1].Time.Equal(fixed.Add(time.Second)) {
		t.Fatalf("VerifyCosigned = %+v", got)
	}
	// Unknown witnesses' lines are ignored.
	if _, err := VerifyCosigned(cosigned, lv, "airlock/0123abcd", []string{w2.VerifierKey()}, now); err != nil {
		t.Fatal(err)
	}
	if _, err := VerifyCosigned(cosigned, lv, "airlock/0123abcd", nil, now); err != nil {
		t.Fatal(err)
	}

	// A witness whose cosignature is missing.
	if _, err := VerifyCosigned(plain, lv, "airlock/0123abcd", []string{w1.VerifierKey()}, now); err == nil || !strings.Contains(err.Error(), "w1.example/w") {
		t.Errorf("missing cosignature: err = %v", err)
	}
	if _, err := VerifyCosigned(cosigned, lv, "airlock/0123abcd", []string{w1.VerifierKey(), w3.VerifierKey()}, now); err == nil || !strings.Contains(err.Error(), "w3.example/w") {
		t.Errorf("missing third cosignature: err = %v", err)
	}
	// Another log key: the witnesses cosigned, but not this log.
	_, other := logKey(t)
	if _, err := VerifyCosigned(cosigned, other, "airlock/0123abcd", []string{w1.VerifierKey()}, now); err == nil {
		t.Error("accepted with another log key")
	}
	// Cosignatures lifted onto another checkpoint do not verify.
	text2 := strings.Replace(text, "20852163", "20852164", 1)
	forged, _ := note.Sign(&note.Note{Text: text2}, ls)
	forged = AppendSignatures(forged, cosigned[bytes.Index(cosigned, []byte("\n\n"))+2:])
	if _, err := VerifyCosigned(forged, lv, "airlock/0123abcd", []string{w1.VerifierKey()}, now); err == nil {
		t.Error("cosignatures copied onto another checkpoint verified")
	}
	// A cosignature by the witness's key over only the text, not the
	// cosignature/v1 message, is refused.
	raw := ed25519.Sign(privOf(w1), []byte(text))
	sig := append(binary.BigEndian.AppendUint32(nil, w1.KeyHash()), binary.BigEndian.AppendUint64(nil, uint64(fixed.Unix()))...)
	bad := append(bytes.Clone(plain), []byte("— w1.example/w "+base64.StdEncoding.EncodeToString(append(sig, raw...))+"\n")...)
	if _, err := VerifyCosigned(bad, lv, "airlock/0123abcd", []string{w1.VerifierKey()}, now); err == nil {
		t.Error("a plain Ed25519 signature passed as a cosignature")
	}
	if _, err := VerifyCosigned(cosigned, lv, "airlock/0123abcd", []string{w1.VerifierKey(), w1.VerifierKey()}, now); err == nil {
		t.Error("a witness key given twice was accepted")
	}
	if _, err := VerifyCosigned([]byte("garbage"), lv, "airlock/0123abcd", nil, now); err == nil {
		t.Error("garbage accepted")
	}
	// The checkpoint of another log the same key signs, cosigned by the
	// same witnesses: their statement is about that log, not this one.
	otherLog := strings.Replace(text, "airlock/0123abcd", "airlock/staging", 1)
	elsewhere, err := note.Sign(&note.Note{Text: otherLog}, ls, w1, w2)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := VerifyCosigned(elsewhere, lv, "airlock/0123abcd", []string{w1.VerifierKey(), w2.VerifierKey()}, now); err == nil || !strings.Contains(err.Error(), `"airlock/staging"`) {
		t.Errorf("a cosigned checkpoint of another log: err = %v", err)
	}
	if _, err := VerifyCosigned(cosigned, lv, "", nil, now); err == nil {
		t.Error("accepted without an origin to hold the checkpoint to")
	}
}

// TestVerifyCosignedTime: an old cosignature is still the witness's word
// that the log was that big then, and is taken with its time; one dated
// more than MaxSkew after now is refused (no witness's clock made it yet).
func TestVerifyCosignedTime(t *testing.T) {
	ls, lv := logKey(t)
	for _, tc := range []struct {
		signed time.Duration // the cosignature's time, from now
		ok     bool
	}{
		{-365 * 24 * time.Hour, true},
		{0, true},
		{MaxSkew, true},
		{MaxSkew + time.Second, false},
		{24 * time.Hour, false},
	} {
		w, _ := GenerateSigner("w1.example/w", rand.Reader, func() time.Time { return fixed.Add(tc.signed) })
		cosigned, err := note.Sign(&note.Note{Text: text}, ls, w)
		if err != nil {
			t.Fatal(err)
		}
		got, err := VerifyCosigned(cosigned, lv, "airlock/0123abcd", []string{w.VerifierKey()}, fixed)
		switch {
		case tc.ok && (err != nil || !got.Cosignatures[0].Time.Equal(fixed.Add(tc.signed))):
			t.Errorf("signed %v from now: %v, %+v", tc.signed, err, got)
		case !tc.ok && (err == nil || !strings.Contains(err.Error(), "after now")):
			t.Errorf("signed %v from now: %v, want it refused", tc.signed, err)
		}
	}
}

func privOf(s *Signer) ed25519.PrivateKey { return s.priv }

func TestAppendSignatures(t *testing.T) {
	msg := []byte(text + "\n— a x\n")
	got := AppendSignatures(msg, []byte("— b y\n— a x\n— b y\n"))
	if want := text + "\n— a x\n— b y\n"; string(got) != want {
		t.Fatalf("got %q", got)
	}
}

func TestParseCheckpoint(t *testing.T) {
	if _, err := ParseCheckpoint(text + "ext line\n"); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"", "o\n1\n", "o\n01\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n", "o\n-1\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n", "o\n1\nAAAA\n", "\n1\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"} {
		if _, err := ParseCheckpoint(bad); err == nil {
			t.Errorf("ParseCheckpoint(%q) accepted", bad)
		}
	}
}
