package mcpserver

import (
	"strings"
	"testing"
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
