package sigv4

import (
	"bytes"
	"io"
	"slices"
	"strings"
	"testing"
	"time"
)

func FuzzParseAuthorization(f *testing.F) {
	f.Add("AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, SignedHeaders=host;range;x-amz-date, Signature=fe5f80f77d5fa3beca038a248ff027d0445342fe2855ddc963176630326f1024")
	f.Add("AWS4-HMAC-SHA256 Credential=AK/20130524/us-east-1/s3/aws4_request,SignedHeaders=host,Signature=" + strings.Repeat("a", 64))
	f.Add("AWS4-HMAC-SHA256 Credential=/20130524/us-east-1/s3/aws4_request,SignedHeaders=Host,Signature=x")
	f.Add("AWS AKIAIOSFODNN7EXAMPLE:frJIUN8DYpKDtOLCwo//yllqDzg=")
	f.Add("AWS4-HMAC-SHA256 ")
	f.Fuzz(func(t *testing.T, h string) {
		c, err := parseAuthorization(h, "s3", nil)
		if err != nil {
			if err.Code == "" || err.Status == 0 {
				t.Fatalf("error without code: %+v", err)
			}
			return
		}
		// Anything accepted is well formed.
		if c.accessKey == "" || !isDate(c.date) || c.region == "" || c.service == "" || !isHex64(c.signature) {
			t.Fatalf("accepted malformed credentials %+v", c)
		}
		if checkSignedHeadersBranches(c.signedHeaders) != "" {
			t.Fatalf("accepted bad SignedHeaders %q", c.signedHeaders)
		}
		// The names the verification walks are the list's, split.
		if want := strings.Split(c.signedHeaders, ";"); !slices.Equal(c.names, want) {
			t.Fatalf("SignedHeaders %q: names %q, want %q", c.signedHeaders, c.names, want)
		}
		if c.scope != c.date+"/"+c.region+"/"+c.service+"/aws4_request" {
			t.Fatalf("scope %q inconsistent", c.scope)
		}
	})
}

// FuzzChunkedBody feeds arbitrary bodies to the streaming-signed and
// unsigned-trailer decoders: they must never panic, must accept only the
// genuine stream, and must stay within bounded memory.
func FuzzChunkedBody(f *testing.F) {
	data := payload(1500)
	key := testKey(testSecret, "20250601", testRegion, "s3")
	seed := strings.Repeat("ab", 32)
	scope := "20250601/us-east-1/s3/aws4_request"
	amzDate := "20250601T120000Z"
	good := encodeChunked(key, seed, amzDate, scope, data, 512, chunkOpts{signed: true})
	crc := "x-amz-checksum-crc32:" + sumOfNoT("x-amz-checksum-crc32", data)
	goodTrailer := encodeChunked(key, seed, amzDate, scope, data, 512, chunkOpts{signed: true, trailers: []string{crc}})
	goodUnsigned := encodeChunked(nil, "", "", "", data, 512, chunkOpts{trailers: []string{crc}})
	f.Add(uint8(0), good)
	f.Add(uint8(1), goodTrailer)
	f.Add(uint8(2), goodUnsigned)
	f.Add(uint8(0), good[:100])
	f.Add(uint8(2), []byte("ffffffff\r\n"))
	f.Add(uint8(2), []byte("0\r\nx-amz-checksum-crc32:AAAAAA==\r\n\r\n"))
	f.Fuzz(func(t *testing.T, mode uint8, body []byte) {
		var ref []byte
		a := &Auth{DecodedLength: int64(len(data)), Checksum: "x-amz-checksum-crc32"}
		st := &chain{amzDate: amzDate, scope: scope}
		copy(st.key[:], key)
		st.seed, _ = decodeSig(seed)
		switch mode % 3 {
		case 0:
			a.Payload, ref = StreamingSigned, good
			a.Checksum = ""
		case 1:
			a.Payload, ref = StreamingSignedTrailer, goodTrailer
			st.trailers, st.alg = []string{"x-amz-checksum-crc32"}, algorithmFor("x-amz-checksum-crc32")
		case 2:
			a.Payload, ref = StreamingUnsignedTrailer, goodUnsigned
			st.trailers, st.alg = []string{"x-amz-checksum-crc32"}, algorithmFor("x-amz-checksum-crc32")
		}
		a.chain = st
		r := a.Body(bytes.NewReader(body))
		// Bounded: never more than the declared length comes out.
		got, err := io.ReadAll(io.LimitReader(r, int64(len(data))+1))
		if err != nil {
			return
		}
		if len(got) > len(data) {
			t.Fatalf("decoded more than x-amz-decoded-content-length")
		}
		if !bytes.Equal(got, data) {
			t.Fatalf("accepted a stream that decodes to other data (%d bytes)", len(got))
		}
		// Signed modes: the only accepted stream is the genuine one, up
		// to framing the signatures do not cover (a final blank line).
		if a.Payload != StreamingUnsignedTrailer && !bytes.HasPrefix(body, ref[:len(ref)-2]) && !bytes.HasPrefix(ref, body) {
			t.Fatalf("accepted a stream that is not the signed one")
		}
	})
}

func sumOfNoT(name string, data []byte) string {
	h := algorithmFor(name).new()
	h.Write(data)
	return encodeSum(h)
}

func BenchmarkVerify(b *testing.B) {
	t := &testing.T{}
	for _, bc := range []struct {
		name string
		url  string
	}{
		{"GetObject", objectURL("logs", "app/2025/06/01/server.log", "")},
		{"ListObjectsV2", "http://127.0.0.1:9000/logs?list-type=2&prefix=app%2F2025%2F&delimiter=%2F&max-keys=100"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			req := newReq(t, "GET", bc.url, nil)
			req.Header.Set("User-Agent", "aws-sdk-go-v2/1.0 os/linux")
			signHeader(t, req, sha256Hex(nil), testCreds(), testNow)
			r := onWire(t, req)
			v := testVerifier()
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if _, err := v.Verify(r); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	b.Run("StreamingSigned1MiB", func(b *testing.B) {
		data := payload(1 << 20)
		r := streamingRequest(t, streamingSigned, data, 65536, nil, nil)
		body, _ := io.ReadAll(r.Body)
		v := testVerifier()
		b.SetBytes(int64(len(data)))
		b.ReportAllocs()
		b.ResetTimer()
		for b.Loop() {
			a, err := v.Verify(r)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := io.Copy(io.Discard, a.Body(bytes.NewReader(body))); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// FuzzParseAmzDate holds the hand-written X-Amz-Date parser to
// time.Parse: whatever it accepts, time.Parse accepts as the same instant,
// and it refuses only what time.Parse refuses or what carries fractional
// seconds (which time.Parse lets through after the seconds).
func FuzzParseAmzDate(f *testing.F) {
	for _, s := range []string{
		"20130524T000000Z", "20240229T235959Z", "20230229T120000Z", "20000229T000000Z",
		"19000229T000000Z", "00010101T000000Z", "99991231T235959Z", "20130524T240000Z",
		"20130524T236000Z", "20130524T235960Z", "20131301T000000Z", "20130001T000000Z",
		"20130500T000000Z", "20130431T000000Z", "20130524T00000Z", "20130524T000000.5Z",
		"20130524 000000Z", "20130524T000000z", "2013052aT000000Z", "+0130524T000000Z",
		"20130524T0000000", "", "20130524T000000Z ",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, ok := parseAmzDate(s)
		want, err := time.Parse(amzDateFmt, s)
		switch {
		case ok && err != nil:
			t.Fatalf("parseAmzDate(%q) accepted what time.Parse refuses: %v", s, err)
		case ok && !got.Equal(want):
			t.Fatalf("parseAmzDate(%q) = %v, time.Parse %v", s, got, want)
		case ok && got.Location() != time.UTC:
			t.Fatalf("parseAmzDate(%q) not in UTC", s)
		case !ok && err == nil && !strings.ContainsAny(s, ".,"):
			t.Fatalf("parseAmzDate(%q) refused what time.Parse takes as %v", s, want)
		}
	})
}
