package textesc

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestString(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"", ""},
		{"harmless.log", "harmless.log"},
		{"café ✓ → 日本語 emoji 🙂 back\\slash", "café ✓ → 日本語 emoji 🙂 back\\slash"},
		{"a\tb\nc\rd", `a\tb\nc\rd`},
		{"secret.txt\r\x1b[2K  ✓ s3:GetObject harmless.log", `secret.txt\r\x1b[2K  ✓ s3:GetObject harmless.log`},
		{"\x00\x07\x08\x1f\x7f", `\x00\x07\x08\x1f\x7f`},
		{"next\u0085line", `next\u0085line`},
		{"csi\u009b2K", `csi\u009b2K`},
		{"\u0080\u009f", `\u0080\u009f`},
		{"abc\u202egol.exe", `abc\u202egol.exe`},
		{"\u202a\u202b\u202c\u202d", `\u202a\u202b\u202c\u202d`},
		{"\u2066\u2067\u2068\u2069", `\u2066\u2067\u2068\u2069`},
		{"\u200e\u200f\u061c", `\u200e\u200f\u061c`},
		{"line\u2028sep\u2029", `line\u2028sep\u2029`},
		{"bad\xffutf8\xc3", `bad\xffutf8\xc3`},
		{"\xed\xa0\x80", `\xed\xa0\x80`},         // an encoded surrogate is not UTF-8
		{"\u00a0nbsp\u3000", "\u00a0nbsp\u3000"}, // spaces are visible: left alone
		// Invisible characters, which make one S3 key or reason look like
		// another, or hide a text (tags spell "AB" here):
		{"secret\u200b.txt", `secret\u200b.txt`},
		{"\u200c\u200d\u2060\u2064\ufeff\u00ad\u180e\u034f", `\u200c\u200d\u2060\u2064\ufeff\u00ad\u180e\u034f`},
		{"x\U000e0001\U000e0041\U000e0042\U000e007f", `x\U000e0001\U000e0041\U000e0042\U000e007f`},
		{"vs\ufe0f\U000e0100", `vs\ufe0f\U000e0100`},
		{"\u3164\u115f\uffa0filler", `\u3164\u115f\uffa0filler`},
		{"\ufff9hidden\ufffb", `\ufff9hidden\ufffb`},
	} {
		if got := String(c.in); got != c.want {
			t.Errorf("String(%q) = %q, want %q", c.in, got, c.want)
		}
		if Needs(c.in) != (c.in != c.want) {
			t.Errorf("Needs(%q) = %v", c.in, Needs(c.in))
		}
	}
}

func TestText(t *testing.T) {
	in := "line one\nline\rtwo\x1b[31m\n"
	want := "line one\nline\\rtwo\\x1b[31m\n"
	if got := Text(in); got != want {
		t.Errorf("Text(%q) = %q, want %q", in, got, want)
	}
}

func TestStringDoesNotCopySafeText(t *testing.T) {
	s := strings.Repeat("plain ✓ text ", 10)
	if n := testing.AllocsPerRun(10, func() { _ = String(s) }); n != 0 {
		t.Errorf("String of safe text allocates %v times", n)
	}
}

// FuzzString: the output never holds a byte or rune a terminal acts on,
// is valid UTF-8, and text that needs nothing escaped comes back unchanged.
func FuzzString(f *testing.F) {
	for _, s := range []string{"", "plain", "a\r\x1b[2Kb", "\u0085\u202e\u2066", "\xff\xfe", "日本\t語", "\xe2\x80", "\\x1b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, c := range []struct {
			out    string
			keepNL bool
		}{{String(s), false}, {Text(s), true}} {
			if !utf8.ValidString(c.out) {
				t.Fatalf("escape(%q) = %q: not UTF-8", s, c.out)
			}
			for _, r := range c.out {
				if unsafeRune(r) && !(c.keepNL && r == '\n') {
					t.Fatalf("escape(%q) = %q holds %U", s, c.out, r)
				}
			}
		}
		if !Needs(s) && String(s) != s {
			t.Fatalf("String(%q) = %q changed text that needs no escape", s, String(s))
		}
		if !Needs(s) != (utf8.ValidString(s) && !strings.ContainsFunc(s, unsafeRune)) {
			t.Fatalf("Needs(%q) = %v disagrees with the rune check", s, Needs(s))
		}
	})
}
