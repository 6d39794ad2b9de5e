package sigv4

import (
	"slices"
	"strings"
	"testing"
)

// checkSignedHeadersBranches is checkSignedHeaders as it was, testing each
// byte with comparisons rather than nameByte (over a split list).
func checkSignedHeadersBranches(s string) string {
	if s == "" {
		return "SignedHeaders is empty"
	}
	names := strings.Split(s, ";")
	for i, name := range names {
		if name == "" {
			return "SignedHeaders has an empty header name"
		}
		for _, c := range []byte(name) {
			switch {
			case 'A' <= c && c <= 'Z':
				return "SignedHeaders must be lowercase"
			case !tokenChar(c):
				return "SignedHeaders has an invalid header name"
			}
		}
		if i > 0 && name <= names[i-1] {
			return "SignedHeaders must be sorted and without duplicates"
		}
	}
	if !slices.Contains(names, "host") {
		return "SignedHeaders must include host"
	}
	return ""
}

// Every byte, in a name before and after host, gets the answer the
// comparisons gave.
func TestCheckSignedHeadersByTable(t *testing.T) {
	for c := 0; c < 256; c++ {
		for _, s := range []string{"a" + string(rune(c)) + ";host", "host;x" + string([]byte{byte(c)}), string([]byte{byte(c)})} {
			if got, want := checkSignedHeaders(s), checkSignedHeadersBranches(s); got != want {
				t.Errorf("checkSignedHeaders(%q) = %q, want %q", s, got, want)
			}
		}
	}
}

func FuzzCheckSignedHeaders(f *testing.F) {
	for _, s := range []string{"host;x-amz-content-sha256;x-amz-date", "Host", "host;;x", "x;host", "host;a b", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := checkSignedHeaders(s), checkSignedHeadersBranches(s); got != want {
			t.Fatalf("checkSignedHeaders(%q) = %q, want %q", s, got, want)
		}
	})
}
