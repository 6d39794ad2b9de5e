package awsgw

import (
	"bytes"
	"net/url"
	"strings"
	"testing"
)

// FuzzStripSigning: once a presigned URL is verified, no x-amz-* parameter
// (in any case or encoding) is left for the mapper or the upstream, and
// every other parameter is kept byte for byte, in order.
func FuzzStripSigning(f *testing.F) {
	for _, s := range []string{"", "x-id=PutObject&X-Amz-Checksum-Mode=ENABLED", "%58-amz-acl=private&uploads", "x-amz-tagging", "a&&x-AMZ-meta-a=b&partNumber=1", "%zz=1&X-Amz-Date=2"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		out := stripSigning(raw)
		var kept []string
		for part := range strings.SplitSeq(raw, "&") {
			name, _, _ := strings.Cut(part, "=")
			n, err := url.QueryUnescape(name)
			if err == nil && len(n) >= 6 && strings.EqualFold(n[:6], "x-amz-") {
				continue
			}
			kept = append(kept, part)
		}
		if want := strings.Join(kept, "&"); out != want {
			t.Fatalf("stripSigning(%q) = %q, want %q", raw, out, want)
		}
	})
}

// FuzzRewriteLocation: the upstream's answer is rewritten without panics,
// only inside the first <Location>, and never grows by more than the new
// address.
func FuzzRewriteLocation(f *testing.F) {
	for _, s := range []string{"", "<Location>http://up/b/k</Location>", "<Location>", "</Location><Location>x", "<a><Location></Location><Location>y</Location></a>"} {
		f.Add([]byte(s), "https://gw/b/k&<>")
	}
	f.Fuzz(func(t *testing.T, doc []byte, loc string) {
		out := rewriteLocation(doc, loc)
		i := bytes.Index(doc, []byte("<Location>"))
		if i < 0 || bytes.Index(doc[i+len("<Location>"):], []byte("</Location>")) < 0 {
			if !bytes.Equal(out, doc) {
				t.Fatalf("changed a document without a whole <Location>: %q -> %q", doc, out)
			}
			return
		}
		if !bytes.Equal(out[:i], doc[:i]) || len(out) > len(doc)+6*len(loc) {
			t.Fatalf("rewrote outside <Location>: %q -> %q", doc, out)
		}
	})
}
