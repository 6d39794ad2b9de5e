package mcpserver

import (
	"bytes"
	"strings"
	"testing"
	"unicode/utf8"
)

// TestCaptureScrubsAtTheCut: a secret cut by the output bound never shows
// even in part, including when earlier replacements shift the text.
func TestCaptureScrubsAtTheCut(t *testing.T) {
	secret := "SECRETsecretSECRETsecretSECRETsecret40ch"
	sc := newScrubber(secret, "tok_0123456789")
	for _, tc := range []struct {
		name  string
		input string
	}{
		{"straddles the bound", strings.Repeat("a", MaxOutput-10) + secret + "tail"},
		{"starts after the bound", strings.Repeat("a", MaxOutput+3) + secret},
		{"cut at the capture's end after shifts", strings.Repeat(secret, MaxOutput/len(secret)) + strings.Repeat("b", 7) + secret + secret},
		{"whole and short", "x" + secret + "y tok_0123456789"},
	} {
		c := &capture{limit: MaxOutput + sc.longest()}
		// Written in small pieces, as a pipe delivers it.
		for in := tc.input; in != ""; {
			n := min(len(in), 4093)
			c.Write([]byte(in[:n]))
			in = in[n:]
		}
		out, cut := c.text(sc)
		for k := 8; k <= len(secret); k++ {
			if strings.Contains(out, secret[:k]) || strings.Contains(out, secret[len(secret)-k:]) {
				t.Errorf("%s: %d bytes of the secret in the output", tc.name, k)
				break
			}
		}
		if len(out) > MaxOutput {
			t.Errorf("%s: %d bytes, over the bound", tc.name, len(out))
		}
		if cut != (len(tc.input) > MaxOutput) {
			t.Errorf("%s: cut = %v", tc.name, cut)
		}
		if strings.Contains(out, "tok_0123456789") {
			t.Errorf("%s: token shown", tc.name)
		}
	}
}

// TestTrimPartialKeepsText: output that merely ends like a secret begins
// loses at most that many bytes, not a run of them.
func TestTrimPartialKeepsText(t *testing.T) {
	sc := newScrubber("a1b2c3d4e5", "zzzz9999")
	for in, want := range map[string]string{
		"hello aaaaaaaa":   "hello aaaaaaa",
		"hello a1b2c3":     "hello ",
		"hello zzzzzz":     "hello zz",
		"hello a1b2c3d4e5": "hello a1b2c3d4e5", // whole: str() replaces it
		"nothing":          "nothing",
	} {
		if got := sc.trimPartial(in); got != want {
			t.Errorf("trimPartial(%q) = %q, want %q", in, got, want)
		}
	}
}

// FuzzCaptureText: whatever a command prints, in whatever pieces, and
// wherever the output bound falls, the kept output holds no whole secret
// (secrets are base62/base64url text, as Airlock's are) and stays bounded.
func FuzzCaptureText(f *testing.F) {
	f.Add(uint32(0), []byte("AWS_SECRET_ACCESS_KEY=abcdEFGH1234\n"), "abcdEFGH1234", uint16(7))
	f.Add(uint32(MaxOutput-5), []byte("abcdEFGH1234abcdEFGH1234"), "abcdEFGH1234", uint16(3))
	f.Add(uint32(MaxOutput+2), []byte("abcdEFGH"), "abcdEFGH1234", uint16(4096))
	f.Add(uint32(MaxOutput-20), []byte("abababababababababababab"), "abab", uint16(1))
	f.Fuzz(func(t *testing.T, pad uint32, data []byte, secret string, chunk uint16) {
		if len(secret) < 4 || len(secret) > 64 {
			return
		}
		for _, c := range secret {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
				return
			}
		}
		sc := newScrubber(secret)
		input := append(bytes.Repeat([]byte{'.'}, int(pad%(MaxOutput+200))), data...)
		c := &capture{limit: MaxOutput + sc.longest()}
		step := int(chunk%8192) + 1
		for in := input; len(in) > 0; {
			n := min(len(in), step)
			c.Write(in[:n])
			in = in[n:]
		}
		out, cut := c.text(sc)
		if strings.Contains(out, secret) {
			t.Fatalf("the secret is in the output (input %d bytes)", len(input))
		}
		if len(out) > MaxOutput+3*utf8.UTFMax {
			t.Fatalf("output %d bytes", len(out))
		}
		// The limit applies to the output after invalid UTF-8 is replaced
		// (a lone bad byte grows to 3), so measure the input the same way.
		if cut != (len(input) > MaxOutput) && len(strings.ToValidUTF8(sc.str(string(input)), "\uFFFD")) <= MaxOutput {
			t.Fatalf("cut = %v for %d bytes", cut, len(input))
		}
	})
}
