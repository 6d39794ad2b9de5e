package sigv4

import (
	"net/textproto"
	"testing"
)

// canonicalKeyBytewise is canonicalKey as it was: every byte appended,
// raised when it starts the name or follows a '-'.
func canonicalKeyBytewise(dst []byte, lower string) []byte {
	upper := true
	for i := 0; i < len(lower); i++ {
		c := lower[i]
		if upper && 'a' <= c && c <= 'z' {
			c -= 'a' - 'A'
		}
		dst = append(dst, c)
		upper = c == '-'
	}
	return dst
}

// lowerToken reports whether s is a name splitSignedHeaders accepts:
// non-empty, token bytes only, none upper case.
func lowerToken(s string) bool {
	for i := 0; i < len(s); i++ {
		if nameByte[s[i]] != nameToken {
			return false
		}
	}
	return s != ""
}

func TestCanonicalKey(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", ""},
		{"host", "Host"},
		{"x-amz-date", "X-Amz-Date"},
		{"x-amz-content-sha256", "X-Amz-Content-Sha256"},
		{"amz-sdk-invocation-id", "Amz-Sdk-Invocation-Id"},
		{"-a--b-", "-A--B-"},
		{"content-md5", "Content-Md5"},
		{"x-amz-meta-1a", "X-Amz-Meta-1a"},
		{"a_b.c", "A_b.c"},
	} {
		if got := string(canonicalKey([]byte("pre"), tc.in)); got != "pre"+tc.want {
			t.Errorf("canonicalKey(%q) = %q, want %q", tc.in, got, "pre"+tc.want)
		}
	}
}

// FuzzCanonicalKey holds canonicalKey to the byte-by-byte loop it
// replaced for any string after any prefix, and to
// textproto.CanonicalMIMEHeaderKey, the key Go's server gives a header,
// for every name a SignedHeaders list can hold.
func FuzzCanonicalKey(f *testing.F) {
	for _, s := range []string{"x-amz-content-sha256", "host", "-", "a--b-", "x-\xc3\xa9-a", "X-amz"} {
		f.Add("pre", s)
	}
	f.Fuzz(func(t *testing.T, pre, s string) {
		got := string(canonicalKey([]byte(pre), s))
		if want := string(canonicalKeyBytewise([]byte(pre), s)); got != want {
			t.Fatalf("canonicalKey(%q, %q) = %q, the byte loop %q", pre, s, got, want)
		}
		if lowerToken(s) {
			if want := pre + textproto.CanonicalMIMEHeaderKey(s); got != want {
				t.Fatalf("canonicalKey(%q) = %q, textproto %q", s, got[len(pre):], want[len(pre):])
			}
		}
	})
}
