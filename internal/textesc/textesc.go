// Package textesc makes strings that came from the network, or from other
// users, safe to print on a terminal. A terminal acts on control
// characters: a carriage return and ESC[2K erase what was printed and let
// the rest of the string write a forged line in its place, and Unicode
// bidirectional overrides reorder text so that it reads differently from
// what it is. Invisible characters (zero-width spaces and joiners, the
// soft hyphen, the byte order mark, tag characters, variation selectors,
// Hangul fillers: Unicode's format characters and default-ignorable code
// points) make two different strings look the same, an S3 key
// "secret\u200b.txt" the key "secret.txt", and can carry a whole hidden
// text (tag characters spell ASCII no one sees). Every human-readable
// output of Airlock (tables, `grant show`, `session show`, error messages)
// passes such strings through String, which writes those characters as
// visible escapes instead: `\r`, `\x1b`, `\u202e`, `\u200b`,
// `\U000e0041`, and `\xff` for a byte that is not UTF-8. Printable text,
// including non-ASCII letters and symbols, is returned unchanged; an emoji
// sequence joined by U+200D or with a presentation selector is shown with
// those escaped, since they could as well be hiding text.
//
// Machine output (JSON) must not use this: it is exact, and JSON's own
// escaping already keeps it on one line.
package textesc

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

const hexDigits = "0123456789abcdef"

// String returns s with every control character (C0, DEL, C1), Unicode
// format character (bidirectional controls, zero-width characters, tags),
// default-ignorable code point (variation selectors, Hangul fillers) and
// line or paragraph separator written as a visible escape, and every byte that is not part of valid
// UTF-8 as \xNN. Tabs and newlines are escaped too, so the result is
// always one line and one table cell. s is returned as is (without
// copying) when it needs nothing escaped.
func String(s string) string {
	return escape(s, false)
}

// Text is String for multi-line text: newlines are kept, everything else
// String escapes is escaped.
func Text(s string) string {
	return escape(s, true)
}

// Needs reports whether String would change s.
func Needs(s string) bool {
	return firstUnsafe(s, false) >= 0
}

func escape(s string, keepNL bool) string {
	i := firstUnsafe(s, keepNL)
	if i < 0 {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 16)
	b.WriteString(s[:i])
	for i < len(s) {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size <= 1:
			b.WriteString(`\x`)
			b.WriteByte(hexDigits[s[i]>>4])
			b.WriteByte(hexDigits[s[i]&0xf])
		case keepNL && r == '\n':
			b.WriteByte('\n')
		case unsafeRune(r):
			writeEscape(&b, r)
		default:
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}

// firstUnsafe is the byte offset of the first thing to escape, or -1.
func firstUnsafe(s string, keepNL bool) int {
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if (c < 0x20 || c == 0x7f) && !(keepNL && c == '\n') {
				return i
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if (r == utf8.RuneError && size <= 1) || unsafeRune(r) {
			return i
		}
		i += size
	}
	return -1
}

// unsafeRune reports whether r changes how a terminal shows what follows
// it, or is invisible where it matters.
func unsafeRune(r rune) bool {
	switch {
	case r < 0x20, r == 0x7f: // C0 controls, DEL
		return true
	case r >= 0x80 && r <= 0x9f: // C1 controls, NEL (U+0085) and CSI (U+009B) among them
		return true
	case r >= 0x202a && r <= 0x202e: // LRE, RLE, PDF, LRO, RLO
		return true
	case r >= 0x2066 && r <= 0x2069: // LRI, RLI, FSI, PDI
		return true
	case r == 0x200e, r == 0x200f, r == 0x061c: // LRM, RLM, ALM
		return true
	case r == 0x2028, r == 0x2029: // line and paragraph separators
		return true
	case r < 0xa0:
		return false
	}
	// Invisible characters: format characters (Cf: U+00AD soft hyphen,
	// U+200B–U+200F zero-width space, joiners and marks, U+2060 word
	// joiner, U+FEFF, U+E0001 and U+E0020–U+E007F tags, the bidirectional
	// controls above), variation selectors, and the other default-ignorable
	// code points (U+034F, U+115F, U+1160, U+3164, U+FFA0 Hangul fillers).
	return unicode.In(r, unicode.Cf, unicode.Variation_Selector, unicode.Other_Default_Ignorable_Code_Point)
}

func writeEscape(b *strings.Builder, r rune) {
	switch r {
	case '\t':
		b.WriteString(`\t`)
		return
	case '\n':
		b.WriteString(`\n`)
		return
	case '\r':
		b.WriteString(`\r`)
		return
	}
	if r < 0x80 {
		b.WriteString(`\x`)
		b.WriteByte(hexDigits[r>>4])
		b.WriteByte(hexDigits[r&0xf])
		return
	}
	shift := 12
	if r > 0xffff {
		b.WriteString(`\U`)
		shift = 28
	} else {
		b.WriteString(`\u`)
	}
	for ; shift >= 0; shift -= 4 {
		b.WriteByte(hexDigits[(r>>shift)&0xf])
	}
}
