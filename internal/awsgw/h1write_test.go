package awsgw

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"
)

// headRequests are requests as h1Transport sends them, and some that
// writeRequest must leave to req.Write.
func headRequests(t testing.TB) map[string]*http.Request {
	mk := func(method, rawURL, host string, h http.Header) *http.Request {
		u, err := url.Parse(rawURL)
		if err != nil {
			t.Fatal(err)
		}
		return &http.Request{Method: method, URL: u, Host: host, Header: h, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1, Body: http.NoBody}
	}
	signed := http.Header{
		"Authorization":         {"AWS4-HMAC-SHA256 Credential=AKUP/20261203/us-east-1/s3/aws4_request, SignedHeaders=accept-encoding;amz-sdk-invocation-id;amz-sdk-request;host;x-amz-content-sha256;x-amz-date, Signature=0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"},
		"X-Amz-Date":            {"20261203T091500Z"},
		"X-Amz-Content-Sha256":  {"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
		"User-Agent":            {"aws-sdk-go-v2/1.30.0 os/linux lang/go#1.26 md/GOOS#linux api/s3#1.58.0"},
		"Amz-Sdk-Invocation-Id": {"00000000-0000-0000-0000-000000000000"},
		"Amz-Sdk-Request":       {"attempt=1; max=3"},
		"Accept-Encoding":       {"identity"},
		"Range":                 {"bytes=0-1023"},
		"If-None-Match":         {`"a"`, `"b"`},
	}
	return map[string]*http.Request{
		"get":            mk("GET", "http://127.0.0.1:7070/logs/app/obj", "127.0.0.1:7070", signed),
		"escaped-query":  mk("GET", "http://up.test/logs/a%20b/c%2Fd?list-type=2&prefix=a%2Fb&x=", "up.test", signed),
		"head":           mk("HEAD", "http://up.test/logs/app/obj", "up.test", http.Header{"X-Amz-Date": {"20261203T091500Z"}}),
		"no-ua":          mk("GET", "http://up.test/", "up.test", http.Header{"Accept": {"*/*"}}),
		"empty-ua":       mk("GET", "http://up.test/", "up.test", http.Header{"User-Agent": {""}}),
		"excluded":       mk("GET", "http://up.test/x", "up.test", http.Header{"Host": {"other.test"}, "Content-Length": {"5"}, "Trailer": {"X"}}),
		"empty-value":    mk("GET", "http://up.test/x", "up.test", http.Header{"X-Empty": {""}}),
		"force-query":    mk("GET", "http://up.test/x?", "up.test", nil),
		"url-host":       mk("GET", "http://up.test/x", "", nil),
		"newline-value":  mk("GET", "http://up.test/x", "up.test", http.Header{"X-Bad": {"a\r\nInjected: yes"}}),
		"untrimmed":      mk("GET", "http://up.test/x", "up.test", http.Header{"X-Pad": {" a "}}),
		"unicode-host":   mk("GET", "http://up.test/x", "bücher.test", nil),
		"zone-host":      mk("GET", "http://up.test/x", "[fe80::1%25eth0]:80", nil),
		"high-bit-value": mk("GET", "http://up.test/x", "up.test", http.Header{"X-Meta": {"caf\xc3\xa9"}}),
	}
}

// leftToRequestWrite are the headRequests that req.Write has to repair
// (or refuse), so writeRequest leaves them to it.
var leftToRequestWrite = map[string]bool{"newline-value": true, "untrimmed": true, "unicode-host": true, "zone-host": true}

// TestWriteRequestMatchesRequestWrite holds writeRequest to what
// req.Write puts on the wire, as a server reads it: the same request
// line, Host and header fields (in any order; one field's values in
// theirs).
func TestWriteRequestMatchesRequestWrite(t *testing.T) {
	for name, req := range headRequests(t) {
		t.Run(name, func(t *testing.T) {
			if err := sameHeadAsRequestWrite(req); err != nil {
				t.Fatal(err)
			}
			if _, ok := appendHead(nil, req); ok == leftToRequestWrite[name] {
				t.Fatalf("written by appendHead: %v, want %v", ok, !leftToRequestWrite[name])
			}
		})
	}
}

// sameHeadAsRequestWrite reports how what writeRequest writes for req
// differs from what req.Write does, as a server reads both: the request
// line, Host and header fields (in any order; one field's values in
// theirs), and no body. A request req.Write refuses, writeRequest must
// refuse too.
func sameHeadAsRequestWrite(req *http.Request) error {
	var want, got bytes.Buffer
	werr := req.Write(&want)
	bw := bufio.NewWriter(&got)
	var scratch []byte
	gerr := writeRequest(bw, req, &scratch)
	bw.Flush()
	switch {
	case werr != nil && gerr == nil:
		return fmt.Errorf("req.Write refuses the request (%v), writeRequest wrote\n%s", werr, got.Bytes())
	case werr != nil:
		return nil
	case gerr != nil:
		return fmt.Errorf("writeRequest: %v; req.Write wrote\n%s", gerr, want.Bytes())
	}
	wr, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(want.Bytes())))
	if err != nil {
		// Nothing to compare with: a server refuses what req.Write
		// wrote; it must refuse writeRequest's head as well.
		if _, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(got.Bytes()))); err == nil {
			return fmt.Errorf("a server refuses req.Write's\n%s\nbut reads writeRequest's\n%s", want.Bytes(), got.Bytes())
		}
		return nil
	}
	gr, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(got.Bytes())))
	if err != nil {
		return fmt.Errorf("%v\n%s", err, got.Bytes())
	}
	if gr.Method != wr.Method || gr.RequestURI != wr.RequestURI || gr.Host != wr.Host || gr.Proto != wr.Proto ||
		!reflect.DeepEqual(gr.Header, wr.Header) || gr.ContentLength != wr.ContentLength {
		return fmt.Errorf("writeRequest wrote\n%s\nreq.Write\n%s", got.Bytes(), want.Bytes())
	}
	if n, _ := io.Copy(io.Discard, gr.Body); n != 0 {
		return fmt.Errorf("a body of %d bytes", n)
	}
	return nil
}

// FuzzWriteRequest holds writeRequest to req.Write for requests of
// fuzzed method, path, query, host and headers: what an agent sends
// (its path and query, the x-amz-* and other headers the gateway passes
// on) goes into the head h1Transport writes to the upstream, and a head
// that a server reads otherwise than req.Write's (a header line split,
// a request line cut) would send the upstream another request than the
// one the gateway checked and signed.
func FuzzWriteRequest(f *testing.F) {
	f.Add("GET", "/logs/app/obj", "", "list-type=2&prefix=a%2Fb", false, "up.test", "X-Amz-Date", "20261203T091500Z", "Range", "bytes=0-1")
	f.Add("HEAD", "/logs/a b/c", "/logs/a%20b/c", "", true, "127.0.0.1:7070", "User-Agent", "", "If-None-Match", `"a"`)
	f.Add("GET", "/x", "", "", false, "up.test", "X-Bad", "a\r\nInjected: yes", "", "")
	f.Add("GET", "/x", "", "", false, "up.test", "X-Pad", " a ", "X-Nul", "a\x00b")
	f.Add("GET", "/x", "", "", false, "bücher.test", "", "", "", "")
	f.Add("GET", "/x\r\nX: y", "", "a\r\nb", false, "up.test", "", "", "", "")
	f.Add("GET", "/x", "", "", false, "[fe80::1%eth0]:80", "Host", "other", "Content-Length", "5")
	f.Add("GET", "/x", "", "", false, "up.test", "X-Meta", "caf\xc3\xa9", "x-lower", "v\x7f")
	f.Add("G ET", "", "", "a b", false, "", "Bad Key", "v", "", "")
	f.Fuzz(func(t *testing.T, method, path, rawPath, rawQuery string, force bool, host, k1, v1, k2, v2 string) {
		u := &url.URL{Scheme: "http", Host: "up.test", Path: path, RawPath: rawPath, RawQuery: rawQuery, ForceQuery: force}
		h := http.Header{}
		for _, kv := range [][2]string{{k1, v1}, {k2, v2}} {
			if kv[0] != "" {
				h[kv[0]] = append(h[kv[0]], kv[1])
			}
		}
		req := &http.Request{Method: method, URL: u, Host: host, Header: h, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1, Body: http.NoBody}
		if err := sameHeadAsRequestWrite(req); err != nil {
			t.Fatal(err)
		}
	})
}

// TestWriteRequestAllocatesNothing: the head of a signed GET is written
// straight into the connection's buffer (req.Write formats it with fmt
// and sorts its keys, allocating on every call).
func TestWriteRequestAllocatesNothing(t *testing.T) {
	req := headRequests(t)["get"]
	bw := bufio.NewWriterSize(io.Discard, 8<<10)
	var scratch []byte
	if n := testing.AllocsPerRun(100, func() { _ = writeRequest(bw, req, &scratch); bw.Flush() }); n != 0 {
		t.Fatalf("%.0f allocations per request head", n)
	}
}

func BenchmarkWriteRequest(b *testing.B) {
	req := headRequests(b)["get"]
	bw := bufio.NewWriterSize(io.Discard, 8<<10)
	var scratch []byte
	b.Run("writeRequest", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = writeRequest(bw, req, &scratch)
			bw.Flush()
		}
	})
	b.Run("Request.Write", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = req.Write(bw)
			bw.Flush()
		}
	})
}

// plainValueByByte is plainValue as it was: one table lookup per byte.
func plainValueByByte(v string) bool {
	for i := 0; i < len(v); i++ {
		if !valueByte[v[i]] {
			return false
		}
	}
	return v == "" || v[0] != ' ' && v[0] != '\t' && v[len(v)-1] != ' ' && v[len(v)-1] != '\t'
}

// TestPlainValueEveryByte puts every byte value at every position of
// values of 1 to 24 bytes (a word, a word and a tail, three words), among
// plain bytes, bytes from 0x80 and tabs: plainValue agrees with the
// byte-by-byte check on each.
func TestPlainValueEveryByte(t *testing.T) {
	for _, fill := range []byte{'a', 0x80, 0xff, '\t', ' ', '~'} {
		for n := 1; n <= 24; n++ {
			b := bytes.Repeat([]byte{fill}, n)
			for pos := range n {
				for c := range 256 {
					b[pos] = byte(c)
					if got, want := plainValue(string(b)), plainValueByByte(string(b)); got != want {
						t.Fatalf("plainValue(%q) = %v, want %v", b, got, want)
					}
				}
				b[pos] = fill
			}
		}
	}
}

func FuzzPlainValue(f *testing.F) {
	for _, s := range []string{"", "a", "AWS4-HMAC-SHA256 Credential=AKID/20260101/us-east-1/s3/aws4_request", "a\tb", " a", "a ", "x\x7fy", "\x00", "caf\xc3\xa9 \x1f", strings.Repeat("\x7f", 17)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		if got, want := plainValue(v), plainValueByByte(v); got != want {
			t.Fatalf("plainValue(%q) = %v, byte by byte %v", v, got, want)
		}
	})
}
