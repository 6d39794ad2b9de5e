package jsonw

import (
	"encoding/json"
	"strings"
	"testing"
)

func marshal(t testing.TB, s string) string {
	t.Helper()
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestStringMatchesEncodingJSON(t *testing.T) {
	cases := []string{"", "plain", `quote " backslash \ slash /`, "<script>&amp;</script>",
		"\x00\x01\x1f\x7f", "\b\f\n\r\t", "é ü 日本", "\u2028\u2029", "bad \xff\xfe utf8 \xc3", "\xed\xa0\x80 surrogate",
		"emoji 😀", "SELECT * FROM t WHERE a = 'x'\n"}
	for c := range 256 {
		cases = append(cases, string([]byte{byte(c)}), "a"+string([]byte{byte(c)})+"b")
	}
	for _, s := range cases {
		if got, want := string(String(nil, s)), marshal(t, s); got != want {
			t.Errorf("String(%q) = %s, encoding/json gives %s", s, got, want)
		}
	}
}

func FuzzString(f *testing.F) {
	for _, s := range []string{"", "a<b>&c", "\xff", "\u2028", "\"\\\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := string(String(nil, s)), marshal(t, s); got != want {
			t.Fatalf("String(%q) = %s, encoding/json gives %s", s, got, want)
		}
	})
}

func TestKey(t *testing.T) {
	b := []byte("{")
	b = Key(b, "a")
	b = Int(b, 1)
	b = Key(b, "b<")
	b = Bool(b, true)
	b = append(b, '}')
	if got := string(b); got != `{"a":1,"b\u003c":true}` {
		t.Fatalf("got %s", got)
	}
}

// TestPlainRun: the word-at-a-time test stops at the first byte that is
// not plain, whatever its value and wherever it falls in a word, and only
// there.
func TestPlainRun(t *testing.T) {
	const n = 19 // two words and a tail
	for c := range 256 {
		for at := range n {
			s := []byte(strings.Repeat("a", n))
			s[at] = byte(c)
			want := n
			if !plain[c] {
				want = at
			}
			if got := plainRun(string(s)); got != want {
				t.Fatalf("plainRun with byte %#x at %d = %d, want %d", c, at, got, want)
			}
		}
	}
}
