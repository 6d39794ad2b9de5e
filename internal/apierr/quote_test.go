package apierr

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestQuote(t *testing.T) {
	short := strings.Repeat("a", MaxEcho)
	if got := Quote(short); got != `"`+short+`"` {
		t.Errorf("Quote of %d bytes = %s, want it whole", MaxEcho, got)
	}
	if got := Quote("g_1\x1b[2K\u202e"); got != `"g_1\x1b[2K\u202e"` {
		t.Errorf("Quote escapes as %%q does: got %s", got)
	}
	// 63 bytes then a 3-byte rune across the limit: the rune is left out
	// whole, not cut into invalid UTF-8.
	long := strings.Repeat("b", MaxEcho-1) + "€" + strings.Repeat("c", 1000)
	got := Quote(long)
	if want := `"` + strings.Repeat("b", MaxEcho-1) + `"… (1066 bytes)`; got != want {
		t.Errorf("Quote(long) = %s, want %s", got, want)
	}
	if !utf8.ValidString(got) {
		t.Errorf("Quote(long) is not UTF-8: %q", got)
	}
	if f := Invalid(long, "x").Field; f != strings.Repeat("b", MaxEcho-1)+"…" {
		t.Errorf("Invalid's field = %q, want it cut", f)
	}
	if f := Invalid("scope[3]", "x").Field; f != "scope[3]" {
		t.Errorf("Invalid's field = %q, want it as given", f)
	}
}
