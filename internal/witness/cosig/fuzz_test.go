package cosig

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
)

// FuzzVerifyCosigned feeds arbitrary cosigned checkpoints, as `airlock
// audit verify --witness` reads them from a file or a server's answer,
// to VerifyCosigned with a fixed log key and two witness keys. It must
// never panic, and accept only a note that the log's key and both
// witnesses' keys verify, whose text is a checkpoint of the log's origin
// that ParseCheckpoint reads back to what VerifyCosigned returned. The
// keys come from fixed seeds, so a kept input verifies the same way on
// every run.
func FuzzVerifyCosigned(f *testing.F) {
	ls, lv := logKeyFrom(f, bytes.NewReader(bytes.Repeat([]byte{7}, 64)))
	w1, _ := NewSigner("w1.example/w", ed25519.NewKeyFromSeed(bytes.Repeat([]byte{1}, 32)), func() time.Time { return fixed })
	w2, _ := NewSigner("w2.example/w", ed25519.NewKeyFromSeed(bytes.Repeat([]byte{2}, 32)), func() time.Time { return fixed.Add(time.Second) })
	keys := []string{w1.VerifierKey(), w2.VerifierKey()}
	wv1, _ := NewVerifier(keys[0])
	wv2, _ := NewVerifier(keys[1])
	now := fixed.Add(time.Hour)
	for _, signers := range [][]note.Signer{{ls, w1, w2}, {ls, w1}, {ls}, {w1, w2}} {
		msg, err := note.Sign(&note.Note{Text: text}, signers...)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(msg)
		if len(signers) == 3 {
			if _, err := VerifyCosigned(msg, lv, "airlock/0123abcd", keys, now); err != nil {
				f.Fatalf("the fully cosigned seed is refused: %v", err) // the accepting path would go unfuzzed
			}
		}
	}
	ext, _ := note.Sign(&note.Note{Text: text + "extension line\n"}, ls, w1, w2)
	f.Add(ext)
	other, _ := note.Sign(&note.Note{Text: "other/log\n1\n" + text[strings.LastIndex(text[:len(text)-1], "\n")+1:]}, ls, w1, w2)
	f.Add(other)
	f.Add([]byte(text + "\n— airlock/0123abcd AAAAAAAA\n"))
	f.Fuzz(func(t *testing.T, msg []byte) {
		got, err := VerifyCosigned(msg, lv, "airlock/0123abcd", keys, now)
		if err != nil {
			return
		}
		for _, v := range []note.Verifier{lv, wv1, wv2} {
			if _, err := note.Open(msg, note.VerifierList(v)); err != nil {
				t.Fatalf("accepted a note that %s's key does not verify (%v): %q", v.Name(), err, msg)
			}
		}
		n, _ := note.Open(msg, note.VerifierList(lv))
		cp, err := ParseCheckpoint(n.Text)
		if err != nil || cp != got.Checkpoint || cp.Origin != "airlock/0123abcd" || len(got.Cosignatures) != 2 {
			t.Fatalf("accepted %+v from %q (ParseCheckpoint: %+v, %v)", got, msg, cp, err)
		}
	})
}

// FuzzParseCheckpoint: a checkpoint ParseCheckpoint accepts is its text's
// first three lines, written back exactly (no other spelling of a size or
// a hash is taken), and it never panics.
func FuzzParseCheckpoint(f *testing.F) {
	f.Add(text)
	f.Add(text + "ext\n")
	f.Add("airlock/x\n0\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n")
	f.Add("airlock/x\n01\n" + strings.SplitN(text, "\n", 3)[2])
	f.Add("airlock/x\n-1\n\n")
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ParseCheckpoint(s)
		if err != nil {
			return
		}
		back := c.Origin + "\n" + strconv.FormatInt(c.Size, 10) + "\n" + base64.StdEncoding.EncodeToString(c.Root[:]) + "\n"
		if c.Origin == "" || c.Size < 0 || !strings.HasPrefix(s, back) {
			t.Fatalf("parsed %q as %+v, which reads back %q", s, c, back)
		}
	})
}
