package witness

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/airlock-dev/airlock/internal/clock"
	"github.com/airlock-dev/airlock/internal/witness/cosig"
)

// The example request of C2SP tlog-witness.
const specRequest = `old 20852014
PlRNCrwHpqhGrupue0L7gxbjbMiKA9temvuZZDDpkaw=
jrJZDmY8Y7SyJE0MWLpLozkIVMSMZcD5kvuKxPC3swk=
5+pKlUdi2LeF/BcMHBn+Ku6yhPGNCswZZD1X/6QgPd8=
/6WVhPs2CwSsb5rYBH5cjHV/wSmA79abXAwhXw3Kj/0=

example.com/behind-the-sofa
20852163
CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=

— example.com/behind-the-sofa Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5/Zhcyv2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=
— example.com/behind-the-sofa opLqBQsREYCgu6xQkYQwJr9fo45a62DN9EdmHXnZdXNqlcVGlCum2Wks+49/V6267UEjw6QUXTS5Rovnzv++qbSzm9Q=
`

func TestParseAddCheckpointSpecExample(t *testing.T) {
	old, proof, cp, err := ParseAddCheckpoint([]byte(specRequest))
	if err != nil {
		t.Fatal(err)
	}
	if old != 20852014 || len(proof) != 4 || !strings.HasPrefix(string(cp), "example.com/behind-the-sofa\n20852163\n") {
		t.Fatalf("old %d, %d proof lines, checkpoint %q", old, len(proof), cp)
	}
	if got := FormatAddCheckpoint(old, proof, cp); string(got) != specRequest {
		t.Fatalf("FormatAddCheckpoint does not give the request back:\n%s", got)
	}
}

func TestParseAddCheckpointRejects(t *testing.T) {
	h := "PlRNCrwHpqhGrupue0L7gxbjbMiKA9temvuZZDDpkaw=\n"
	cp := "o\n1\nPlRNCrwHpqhGrupue0L7gxbjbMiKA9temvuZZDDpkaw=\n\n— o AAAA\n"
	for name, body := range map[string]string{
		"empty":          "",
		"no old line":    "\n" + cp,
		"leading zero":   "old 01\n\n" + cp,
		"negative":       "old -1\n\n" + cp,
		"plus sign":      "old +1\n\n" + cp,
		"two spaces":     "old  1\n\n" + cp,
		"no blank line":  "old 1\n" + h,
		"no checkpoint":  "old 1\n" + h + "\n",
		"bad hash":       "old 1\nAAAA\n\n" + cp,
		"long hash":      "old 1\n" + strings.TrimSuffix(h, "\n") + "AAAA\n\n" + cp,
		"64 proof lines": "old 1\n" + strings.Repeat(h, 64) + "\n" + cp,
		"huge size":      "old 99999999999999999999\n\n" + cp,
		"CRLF":           "old 1\r\n\r\n" + cp,
	} {
		if _, _, _, err := ParseAddCheckpoint([]byte(body)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, p, _, err := ParseAddCheckpoint([]byte("old 1\n" + strings.Repeat(h, 63) + "\n" + cp)); err != nil || len(p) != 63 {
		t.Errorf("63 proof lines: %v", err)
	}
	if _, _, _, err := ParseAddCheckpoint(make([]byte, MaxRequestSize+1)); err == nil {
		t.Error("an oversized request was parsed")
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"0\n": 0, "20852014\n": 20852014} {
		if n, err := ParseSize([]byte(in)); err != nil || n != want {
			t.Errorf("ParseSize(%q) = %d, %v", in, n, err)
		}
	}
	for _, in := range []string{"", "12", "012\n", "1 \n", "x\n", "-1\n", "1\n\n"} {
		if _, err := ParseSize([]byte(in)); err == nil {
			t.Errorf("ParseSize(%q) accepted", in)
		}
	}
}

func FuzzParseAddCheckpoint(f *testing.F) {
	f.Add([]byte(specRequest))
	f.Add([]byte("old 0\n\no\n0\nPlRNCrwHpqhGrupue0L7gxbjbMiKA9temvuZZDDpkaw=\n"))
	f.Add([]byte("old 1\n\n"))
	f.Fuzz(func(t *testing.T, body []byte) {
		old, proof, cp, err := ParseAddCheckpoint(body)
		if err != nil {
			return
		}
		if old < 0 || len(proof) > MaxProofLines || len(cp) == 0 {
			t.Fatalf("parsed out of bounds: old %d, %d lines, %d bytes", old, len(proof), len(cp))
		}
		// What parses is exactly what Format writes: one encoding only.
		if got := FormatAddCheckpoint(old, proof, cp); !bytes.Equal(got, body) {
			t.Fatalf("round trip: %q != %q", got, body)
		}
	})
}

func FuzzParseSize(f *testing.F) {
	f.Add([]byte("20852014\n"))
	f.Add([]byte("0\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		n, err := ParseSize(b)
		if err == nil && (n < 0 || string(b) != strings.TrimSpace(string(b))+"\n") {
			t.Fatalf("ParseSize(%q) = %d", b, n)
		}
	})
}

// FuzzWitnessAnswer feeds arbitrary 200 answers to the client's check: it
// must never panic, and accept only a line that verifies under the
// witness's key on this checkpoint.
func FuzzWitnessAnswer(f *testing.F) {
	skey, _, _ := note.GenerateKey(rand.Reader, "airlock")
	ls, _ := note.NewSigner(skey)
	checkpoint, _ := note.Sign(&note.Note{Text: "airlock/x\n3\nPlRNCrwHpqhGrupue0L7gxbjbMiKA9temvuZZDDpkaw=\n"}, ls)
	w, _ := cosig.GenerateSigner("w.test/w", rand.Reader, func() time.Time { return time.Unix(1700000000, 0) })
	v, _ := cosig.NewVerifier(w.VerifierKey())
	good, _ := note.Sign(&note.Note{Text: "airlock/x\n3\nPlRNCrwHpqhGrupue0L7gxbjbMiKA9temvuZZDDpkaw=\n"}, w)
	line := good[bytes.Index(good, []byte("\n\n"))+2:]
	f.Add(line)
	f.Add(append([]byte("— other.test/w AAAAAAAA\n"), line...))
	f.Add([]byte("— w.test/w AAAA\n"))
	f.Add([]byte("garbage"))
	at := time.Unix(1700000000, 0)
	c := &tlogClient{v: v, p: &Publisher{opts: Options{Clock: clock.NewFake(at)}}}
	f.Fuzz(func(t *testing.T, body []byte) {
		got, err := c.cosignature(checkpoint, body, at)
		if err != nil {
			return
		}
		n, err := note.Open(append(bytes.Clone(checkpoint), got...), note.VerifierList(v))
		if err != nil || len(n.Sigs) != 1 {
			t.Fatalf("accepted a line that does not verify: %q", got)
		}
	})
}

func TestCosignatureTakesOnlyTheWitnessLine(t *testing.T) {
	text := "airlock/x\n3\nPlRNCrwHpqhGrupue0L7gxbjbMiKA9temvuZZDDpkaw=\n"
	w, _ := cosig.GenerateSigner("w.test/w", rand.Reader, nil)
	other, _ := cosig.GenerateSigner("other.test/w", rand.Reader, nil)
	v, _ := cosig.NewVerifier(w.VerifierKey())
	signed, _ := note.Sign(&note.Note{Text: text}, other, w)
	body := signed[len(text)+1:]
	c := &tlogClient{v: v, p: &Publisher{opts: Options{Clock: clock.Real}}}
	got, err := c.cosignature([]byte(text+"\n— airlock AAAAAAAA\n"), body, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(got), "— w.test/w ") || strings.Count(string(got), "\n") != 1 {
		t.Fatalf("got %q", got)
	}
	// A valid cosignature on another checkpoint is refused.
	other2, _ := note.Sign(&note.Note{Text: "airlock/x\n4\nPlRNCrwHpqhGrupue0L7gxbjbMiKA9temvuZZDDpkaw=\n"}, w)
	if _, err := c.cosignature([]byte(text+"\n— airlock AAAAAAAA\n"), other2[bytes.Index(other2, []byte("\n\n"))+2:], time.Now()); err == nil {
		t.Fatal("a cosignature for another checkpoint was taken")
	}
}

// TestCosignatureFreshness: the publisher takes a witness's cosignature
// only if it is dated within cosig.MaxSkew of the request (from MaxSkew
// before it was sent to MaxSkew after the answer) and not before the
// witness's previous one.
func TestCosignatureFreshness(t *testing.T) {
	text := "airlock/x\n3\nPlRNCrwHpqhGrupue0L7gxbjbMiKA9temvuZZDDpkaw=\n"
	checkpoint := []byte(text + "\n— airlock AAAAAAAA\n")
	sent := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	clk := clock.NewFake(sent.Add(2 * time.Second)) // the answer came 2 s later
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	var signedAt time.Time
	w, _ := cosig.NewSigner("w.test/w", priv, func() time.Time { return signedAt })
	v, _ := cosig.NewVerifier(w.VerifierKey())
	c := &tlogClient{v: v, p: &Publisher{opts: Options{Clock: clk}}}
	answer := func(at time.Time) []byte {
		signedAt = at
		signed, _ := note.Sign(&note.Note{Text: text}, w)
		return signed[len(text)+1:]
	}
	for _, tc := range []struct {
		at   time.Time
		want string // in the error; "" if taken
	}{
		{sent.Add(-cosig.MaxSkew - time.Second), "before the request was sent"},
		{sent.Add(2*time.Second + cosig.MaxSkew + time.Second), "after now"},
		{sent.Add(-time.Minute), ""}, // the witness's clock a minute behind
		{sent.Add(-2 * time.Minute), "before its previous one"},
		{sent.Add(-time.Minute), ""}, // the same second again
		{sent.Add(cosig.MaxSkew), ""},
	} {
		_, err := c.cosignature(checkpoint, answer(tc.at), sent)
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("dated %s: %v, want %q", tc.at.Sub(sent), err, tc.want)
		}
	}
}
