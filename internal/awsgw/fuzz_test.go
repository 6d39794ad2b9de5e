package awsgw

import (
	"bytes"
	"io"
	"net/url"
	"strings"
	"testing"
	"testing/iotest"
)

// FuzzFilterQuery: no presigning parameter survives, in any case or
// encoding, and every other parameter is kept byte for byte, in order.
func FuzzFilterQuery(f *testing.F) {
	for _, s := range []string{"", "list-type=2&prefix=a%2F", "X-Amz-Signature=1&x=2", "%58-amz-date=1", "a&&b=", "X-Amz-Credential", "=x&X-AMZ-EXPIRES=9"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		out := filterQuery(raw)
		var kept []string
		for part := range strings.SplitSeq(raw, "&") {
			name, _, _ := strings.Cut(part, "=")
			if n, err := url.QueryUnescape(name); err == nil && presignParams[strings.ToLower(n)] {
				continue
			}
			kept = append(kept, part)
		}
		want := strings.Join(kept, "&")
		if raw == "" {
			want = ""
		}
		if out != want {
			t.Fatalf("filterQuery(%q) = %q, want %q", raw, out, want)
		}
		for part := range strings.SplitSeq(out, "&") {
			name, _, _ := strings.Cut(part, "=")
			if n, err := url.QueryUnescape(name); err == nil && presignParams[strings.ToLower(n)] {
				t.Fatalf("%q survived in %q", name, out)
			}
		}
	})
}

// FuzzHoldLast: the body passes through unchanged whatever the read sizes.
func FuzzHoldLast(f *testing.F) {
	f.Add([]byte("hello"), uint8(0))
	f.Add([]byte{}, uint8(1))
	f.Add(bytes.Repeat([]byte{1}, 1000), uint8(2))
	f.Fuzz(func(t *testing.T, data []byte, mode uint8) {
		var r io.Reader = bytes.NewReader(data)
		switch mode % 3 {
		case 1:
			r = iotest.OneByteReader(r)
		case 2:
			r = iotest.HalfReader(r)
		}
		var out io.Reader = &holdLast{r: r}
		if mode&4 != 0 {
			out = iotest.OneByteReader(out)
		}
		got, err := io.ReadAll(out)
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("got %q err %v, want %q", got, err, data)
		}
	})
}

// FuzzErrorCode: upstream error bodies never make it panic, and what it
// returns is a bounded substring.
func FuzzErrorCode(f *testing.F) {
	f.Add([]byte("<Error><Code>NoSuchKey</Code></Error>"))
	f.Add([]byte("<Code></Code>"))
	f.Fuzz(func(t *testing.T, b []byte) {
		c := errorCode(b)
		if len(c) > 64 || (c != "" && !bytes.Contains(b, []byte("<Code>"+c+"</Code>"))) {
			t.Fatalf("errorCode(%q) = %q", b, c)
		}
	})
}
