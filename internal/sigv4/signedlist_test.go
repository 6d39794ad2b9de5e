package sigv4

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
)

// checkSignedHeaders is splitSignedHeaders' verdict alone; where it
// accepts, the names it returns must be strings.Split's, which the
// verification used to walk (every caller here is a test: a name differs
// from Split's is a failure).
func checkSignedHeaders(s string) string {
	names, msg := splitSignedHeaders(s, nil)
	if msg == "" && !slices.Equal(names, strings.Split(s, ";")) {
		return "names " + strings.Join(names, "|") + " are not the list's"
	}
	return msg
}

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

// TestHugeSignedHeadersPoolMemoryBound: a verification whose SignedHeaders
// list names thousands of headers does not leave room for them all in the
// scratch pool. (It skips under -race: the name puts it in the Makefile's
// pass without it.)
func TestHugeSignedHeadersPoolMemoryBound(t *testing.T) {
	if raceOn {
		t.Skip("sync.Pool drops items at random under the race detector")
	}
	names := []string{"host"}
	for i := range 3000 {
		names = append(names, fmt.Sprintf("x-%05d", i))
	}
	slices.Sort(names)
	req, _ := http.NewRequest(http.MethodGet, "https://s3.test/logs/app/a", nil)
	signHeader(t, req, sha256Hex(nil), testCreds(), testNow)
	authz := req.Header.Get("Authorization")
	i, j := strings.Index(authz, "SignedHeaders="), strings.Index(authz, ", Signature=")
	req.Header.Set("Authorization", authz[:i]+"SignedHeaders="+strings.Join(names, ";")+authz[j:])
	if _, err := testVerifier().Verify(onWire(t, req)); err == nil {
		t.Fatal("a request whose signed headers are missing verified")
	}
	sc := scratchPool.Get().(*scratch)
	defer scratchPool.Put(sc)
	if cap(sc.names) > maxPooledNames {
		t.Fatalf("the pool keeps a scratch with room for %d names", cap(sc.names))
	}
}
