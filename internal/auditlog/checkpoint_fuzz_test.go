package auditlog

import (
	"bytes"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"
)

// FuzzOpenCheckpoint feeds arbitrary checkpoint notes, as the CLI reads
// them from a server's proof answers and a witness file, to
// OpenCheckpoint and CheckpointOrigin. Neither may panic; a note the
// log's key verifies must read the same unverified (the size and root)
// and name the origin its signed text names: the CLI checks the origin
// with CheckpointOrigin, which reads no signature, after OpenCheckpoint
// verified the note, so a note whose unverified reading differed from
// its verified one would pass an origin the signature does not cover.
func FuzzOpenCheckpoint(f *testing.F) {
	skey, vkey, err := note.GenerateKey(bytes.NewReader(bytes.Repeat([]byte{9}, 64)), "airlock/0123abcd")
	if err != nil {
		f.Fatal(err)
	}
	s, _ := note.NewSigner(skey)
	v, _ := note.NewVerifier(vkey)
	text := "airlock/0123abcd\n3\nPlRNCrwHpqhGrupue0L7gxbjbMiKA9temvuZZDDpkaw=\n"
	for _, t := range []string{text, text + "extension\n", "other/log\n0\n" + text[len(text)-45:]} {
		msg, err := note.Sign(&note.Note{Text: t}, s)
		if err != nil {
			f.Fatal(err)
		}
		if _, _, err := OpenCheckpoint(msg, v); err != nil {
			f.Fatalf("a signed seed is refused: %v", err) // the accepting path would go unfuzzed
		}
		f.Add(msg)
		f.Add(append(bytes.Clone(msg), "— other AAAAAAAA\n"...))
	}
	f.Add([]byte(text + "\n"))
	f.Add([]byte(text))
	f.Fuzz(func(t *testing.T, msg []byte) {
		n0, r0, err0 := OpenCheckpoint(msg, nil)
		origin := CheckpointOrigin(msg)
		if (err0 == nil) != (origin != "") {
			t.Fatalf("OpenCheckpoint unverified: %v, but CheckpointOrigin %q", err0, origin)
		}
		if text, err := unverifiedText(msg); err == nil {
			if c, err := parseCheckpoint(text); err == nil && !strings.HasPrefix(text, string(formatCheckpoint(c))) {
				t.Fatalf("parsed %q as %+v, which formatCheckpoint spells %q", text, c, formatCheckpoint(c))
			}
		}
		n, r, err := OpenCheckpoint(msg, v)
		if err != nil {
			return
		}
		if err0 != nil || n0 != n || r0 != r {
			t.Fatalf("verified size %d root %x, unverified %d %x (%v)", n, r, n0, r0, err0)
		}
		opened, err := note.Open(msg, note.VerifierList(v))
		if err != nil {
			t.Fatalf("OpenCheckpoint verified what note.Open refuses: %v", err)
		}
		c, err := parseCheckpoint(opened.Text)
		if err != nil || c.origin != origin || c.size != n || c.root != r {
			t.Fatalf("signed text %q, but CheckpointOrigin %q, size %d", opened.Text, origin, n)
		}
	})
}
