package sigv4

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/airlock-dev/airlock/internal/s3err"
)

// The example of AWS's "Signature Calculations for the Authorization
// Header: Transferring Payload in Multiple Chunks" page (sigv4-streaming)
// and of its trailer companion (sigv4-streaming-trailers): 66560 bytes of
// 'a' in a 65536-byte and a 1024-byte chunk.
const (
	exAK      = "AKIAIOSFODNN7EXAMPLE"
	exSecret  = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
	exDate    = "20130524T000000Z"
	exScope   = "20130524/us-east-1/s3/aws4_request"
	exSeed    = "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9"
	exChunk1  = "ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648"
	exChunk2  = "0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497"
	exFinal   = "b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9"
	exTSeed   = "106e2a8a18243abcf37539882f36619c00e2dfc72633413f02d3b74544bfeb8e"
	exTChunk1 = "b474d8862b1487a5145d686f57f013e54db672cee1c953b3010fb58501ef5aa2"
	exTChunk2 = "1c1344b170168f8e65b41376b44b20fe354e373826ccbbe2c1d40a8cae51e5c7"
	exTFinal  = "2ca2aba2005185cf7159c6277faf83795951dd77a3a99e6e65d5c9f85863f992"
	exTCRC32C = "sOO8/Q=="
	exTSig    = "d81f82fc3505edab99d459891051a732e8730629a2e4a59689829ca17fe2e435"
)

var exNow = time.Date(2013, 5, 24, 0, 0, 0, 0, time.UTC)

func exVerifier() *Verifier {
	return &Verifier{
		Lookup: func(ak string) (string, string, error) {
			if ak != exAK {
				return "", "", s3err.New(s3err.InvalidAccessKeyID, "unknown")
			}
			return exSecret, "", nil
		},
		Now: func() time.Time { return exNow },
	}
}

// exRequest is the example's request as a server receives it.
func exRequest(t *testing.T, trailer bool, body []byte) *http.Request {
	t.Helper()
	r := newReq(t, "PUT", "http://s3.amazonaws.com/examplebucket/chunkObject.txt", body)
	r.Header.Set("X-Amz-Date", exDate)
	r.Header.Set("X-Amz-Storage-Class", "REDUCED_REDUNDANCY")
	r.Header.Set("Content-Encoding", "aws-chunked")
	r.Header.Set("X-Amz-Decoded-Content-Length", "66560")
	if trailer {
		r.Header.Set("X-Amz-Content-Sha256", streamingSignedTrailer)
		r.Header.Set("X-Amz-Trailer", "x-amz-checksum-crc32c")
		r.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential="+exAK+"/"+exScope+",SignedHeaders=content-encoding;host;x-amz-content-sha256;x-amz-date;x-amz-decoded-content-length;x-amz-storage-class;x-amz-trailer,Signature="+exTSeed)
	} else {
		r.Header.Set("X-Amz-Content-Sha256", streamingSigned)
		r.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential="+exAK+"/"+exScope+",SignedHeaders=content-encoding;content-length;host;x-amz-content-sha256;x-amz-date;x-amz-decoded-content-length;x-amz-storage-class,Signature="+exSeed)
	}
	return onWire(t, r)
}

func exBody(trailer, blankBeforeTrailer bool) []byte {
	a64, a1 := strings.Repeat("a", 65536), strings.Repeat("a", 1024)
	if !trailer {
		return []byte("10000;chunk-signature=" + exChunk1 + "\r\n" + a64 + "\r\n" +
			"400;chunk-signature=" + exChunk2 + "\r\n" + a1 + "\r\n" +
			"0;chunk-signature=" + exFinal + "\r\n\r\n")
	}
	s := "10000;chunk-signature=" + exTChunk1 + "\r\n" + a64 + "\r\n" +
		"400;chunk-signature=" + exTChunk2 + "\r\n" + a1 + "\r\n" +
		"0;chunk-signature=" + exTFinal + "\r\n"
	if blankBeforeTrailer {
		s += "\r\n"
	}
	return []byte(s + "x-amz-checksum-crc32c:" + exTCRC32C + "\r\n" +
		"x-amz-trailer-signature:" + exTSig + "\r\n\r\n")
}

func TestAWSChunkedExample(t *testing.T) {
	body := exBody(false, false)
	if len(body) != 66824 {
		t.Fatalf("example body is %d bytes, AWS says 66824", len(body))
	}
	r := exRequest(t, false, body)
	a, err := exVerifier().Verify(r)
	if err != nil {
		t.Fatalf("seed signature: %v", err)
	}
	if a.Payload != StreamingSigned || a.DecodedLength != 66560 {
		t.Fatalf("auth = %+v", a)
	}
	got, err := io.ReadAll(a.Body(r.Body))
	if err != nil {
		t.Fatalf("body: %v", err)
	}
	if !bytes.Equal(got, bytes.Repeat([]byte("a"), 66560)) {
		t.Fatalf("decoded %d bytes, not the example's payload", len(got))
	}
	// The test encoder reproduces the published body byte for byte, so
	// tests that use it follow AWS's algorithm, not just this package's.
	key := testKey(exSecret, "20130524", "us-east-1", "s3")
	enc := encodeChunked(key, exSeed, exDate, exScope, bytes.Repeat([]byte("a"), 66560), 65536, chunkOpts{signed: true})
	if !bytes.Equal(enc, body) {
		t.Fatalf("test encoder differs from AWS's example")
	}
}

func TestAWSChunkedTrailerExample(t *testing.T) {
	if got := encodeCRC32C(bytes.Repeat([]byte("a"), 66560)); got != exTCRC32C {
		t.Fatalf("crc32c of the payload = %s, example says %s", got, exTCRC32C)
	}
	for _, blank := range []bool{false, true} {
		t.Run(fmt.Sprintf("blank line %v", blank), func(t *testing.T) {
			r := exRequest(t, true, exBody(true, blank))
			a, err := exVerifier().Verify(r)
			if err != nil {
				t.Fatalf("seed signature: %v", err)
			}
			got, err := io.ReadAll(a.Body(r.Body))
			if err != nil {
				t.Fatalf("body: %v", err)
			}
			if len(got) != 66560 || a.Trailer.Get("x-amz-checksum-crc32c") != exTCRC32C {
				t.Fatalf("decoded %d bytes, trailer %v", len(got), a.Trailer)
			}
		})
	}
	key := testKey(exSecret, "20130524", "us-east-1", "s3")
	enc := encodeChunked(key, exTSeed, exDate, exScope, bytes.Repeat([]byte("a"), 66560), 65536,
		chunkOpts{signed: true, trailers: []string{"x-amz-checksum-crc32c:" + exTCRC32C}})
	if !bytes.Equal(enc, exBody(true, false)) {
		t.Fatalf("test encoder differs from AWS's trailer example:\n%q", enc[len(enc)-300:])
	}
}

func encodeCRC32C(b []byte) string {
	h := crc32.New(crc32.MakeTable(crc32.Castagnoli))
	h.Write(b)
	return encodeSum(h)
}

// testKey derives a signing key following AWS's published steps; it is
// separate from the package's own derivation on purpose.
func testKey(secret, date, region, service string) []byte {
	mac := func(k []byte, s string) []byte {
		m := hmac.New(sha256.New, k)
		m.Write([]byte(s))
		return m.Sum(nil)
	}
	return mac(mac(mac(mac([]byte("AWS4"+secret), date), region), service), "aws4_request")
}

type chunkOpts struct {
	signed   bool
	trailers []string // "name:value"
}

// encodeChunked frames data in aws-chunked encoding as AWS documents it.
func encodeChunked(key []byte, seed, amzDate, scope string, data []byte, chunkSize int, o chunkOpts) []byte {
	var out bytes.Buffer
	prev := seed
	sign := func(kind, rest string) string {
		m := hmac.New(sha256.New, key)
		m.Write([]byte(kind + "\n" + amzDate + "\n" + scope + "\n" + prev + "\n" + rest))
		return hex.EncodeToString(m.Sum(nil))
	}
	emit := func(chunk []byte) {
		fmt.Fprintf(&out, "%x", len(chunk))
		if o.signed {
			sum := sha256.Sum256(chunk)
			prev = sign("AWS4-HMAC-SHA256-PAYLOAD", emptySHA256+"\n"+hex.EncodeToString(sum[:]))
			out.WriteString(";chunk-signature=" + prev)
		}
		out.WriteString("\r\n")
		if len(chunk) > 0 {
			out.Write(chunk)
			out.WriteString("\r\n")
		}
	}
	for len(data) > 0 {
		n := min(chunkSize, len(data))
		emit(data[:n])
		data = data[n:]
	}
	emit(nil)
	if o.trailers == nil {
		out.WriteString("\r\n")
		return out.Bytes()
	}
	var signed string
	for _, tr := range o.trailers {
		out.WriteString(tr + "\r\n")
		signed += tr + "\n"
	}
	if o.signed {
		sum := sha256.Sum256([]byte(signed))
		out.WriteString("x-amz-trailer-signature:" + sign("AWS4-HMAC-SHA256-TRAILER", hex.EncodeToString(sum[:])) + "\r\n")
	}
	out.WriteString("\r\n")
	return out.Bytes()
}

// streamingRequest builds a request whose seed signature comes from the
// SDK signer and whose body is framed by encodeChunked; mutate may change
// the encoded body before it is sent.
func streamingRequest(t *testing.T, mode string, data []byte, chunkSize int, trailers []string, mutate func([]byte) []byte) *http.Request {
	t.Helper()
	o := chunkOpts{signed: mode != streamingUnsignedTrailer, trailers: trailers}
	key := testKey(testSecret, testNow.Format("20060102"), testRegion, "s3")
	scope := testNow.Format("20060102") + "/" + testRegion + "/s3/aws4_request"
	amzDate := testNow.Format(amzDateFmt)
	size := len(encodeChunked(key, strings.Repeat("0", 64), amzDate, scope, data, chunkSize, o))
	req := newReq(t, "PUT", objectURL("logs", "app/streamed.bin", ""), make([]byte, size))
	req.Header.Set("Content-Encoding", "aws-chunked")
	req.Header.Set("X-Amz-Decoded-Content-Length", strconv.Itoa(len(data)))
	var names []string
	for _, tr := range trailers {
		names = append(names, tr[:strings.IndexByte(tr, ':')])
	}
	if len(names) > 0 {
		req.Header.Set("X-Amz-Trailer", strings.Join(names, ","))
	}
	signHeader(t, req, mode, testCreds(), testNow)
	authz := req.Header.Get("Authorization")
	seed := authz[len(authz)-64:]
	body := encodeChunked(key, seed, amzDate, scope, data, chunkSize, o)
	if mutate != nil {
		body = mutate(bytes.Clone(body))
	}
	req.Body = io.NopCloser(bytes.NewReader(body))
	req.ContentLength = int64(len(body))
	req.Header.Set("Content-Length", strconv.Itoa(len(body)))
	srv := onWire(t, req)
	srv.Header.Set("Content-Length", strconv.Itoa(size)) // the signed value, whatever was sent
	return srv
}

// readStreaming verifies r and reads its body through Body, in small
// reads to exercise state carried across calls.
func readStreaming(t *testing.T, r *http.Request) ([]byte, *Auth, error) {
	t.Helper()
	a, err := testVerifier().Verify(r)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	got, err := io.ReadAll(iotest.OneByteReader(a.Body(r.Body)))
	return got, a, err
}

func payload(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i/251)
	}
	return b
}

func TestStreamingRoundTrip(t *testing.T) {
	data := payload(200_000)
	for _, tc := range []struct {
		mode     string
		trailers []string
		want     PayloadMode
	}{
		{mode: streamingSigned, want: StreamingSigned},
		{mode: streamingSignedTrailer, trailers: []string{"x-amz-checksum-crc32:" + sumOf(t, "x-amz-checksum-crc32", data)}, want: StreamingSignedTrailer},
		{mode: streamingSignedTrailer, trailers: nil, want: StreamingSignedTrailer},
		{mode: streamingUnsignedTrailer, trailers: []string{"x-amz-checksum-sha256:" + sumOf(t, "x-amz-checksum-sha256", data)}, want: StreamingUnsignedTrailer},
	} {
		for _, size := range []int{8192, 65536, 1 << 20} {
			t.Run(fmt.Sprintf("%s/%d/%d", tc.mode, len(tc.trailers), size), func(t *testing.T) {
				tr := tc.trailers
				if tc.mode == streamingSignedTrailer && tr == nil {
					tr = []string{} // a signed, empty trailer section
				}
				r := streamingRequest(t, tc.mode, data, size, tr, nil)
				got, a, err := readStreaming(t, r)
				if err != nil {
					t.Fatalf("body: %v", err)
				}
				if !bytes.Equal(got, data) {
					t.Fatalf("decoded %d bytes, want %d", len(got), len(data))
				}
				if a.Payload != tc.want || a.DecodedLength != int64(len(data)) {
					t.Fatalf("auth = %+v", a)
				}
			})
		}
	}
}

func sumOf(t *testing.T, name string, data []byte) string {
	t.Helper()
	alg := algorithmFor(name)
	if alg == nil {
		t.Fatalf("no algorithm %s", name)
	}
	h := alg.new()
	h.Write(data)
	return encodeSum(h)
}

func TestTrailerChecksums(t *testing.T) {
	data := payload(100_000)
	// Reference values computed independently: crc64nvme's check value of
	// "123456789" is 0xae8b14860a799888 (CRC-64/NVME).
	h := algorithmFor("x-amz-checksum-crc64nvme").new()
	h.Write([]byte("123456789"))
	if got := fmt.Sprintf("%x", h.Sum(nil)); got != "ae8b14860a799888" {
		t.Fatalf("crc64nvme check value = %s", got)
	}
	for _, a := range algorithms {
		for _, mode := range []string{streamingSignedTrailer, streamingUnsignedTrailer} {
			t.Run(a.header+"/"+mode, func(t *testing.T) {
				if a.new == nil {
					// Forwarded for the upstream to verify: any value of the
					// right size passes here, a malformed one does not.
					v := base64.StdEncoding.EncodeToString(make([]byte, a.size))
					r := streamingRequest(t, mode, data, 65536, []string{a.header + ":" + v}, nil)
					got, auth, err := readStreaming(t, r)
					if err != nil || !bytes.Equal(got, data) || auth.Checksum != a.header || auth.Trailer.Get(a.header) != v {
						t.Fatalf("forwarded checksum: %v (%d bytes) %q %v", err, len(got), auth.Checksum, auth.Trailer)
					}
					r = streamingRequest(t, mode, data, 65536, []string{a.header + ":" + v[1:]}, nil)
					_, _, err = readStreaming(t, r)
					wantCode(t, err, s3err.InvalidRequest)
					return
				}
				good := a.header + ":" + sumOf(t, a.header, data)
				r := streamingRequest(t, mode, data, 65536, []string{good}, nil)
				got, auth, err := readStreaming(t, r)
				if err != nil || !bytes.Equal(got, data) {
					t.Fatalf("good checksum: %v (%d bytes)", err, len(got))
				}
				if auth.Checksum != a.header || auth.Trailer.Get(a.header) == "" {
					t.Fatalf("checksum %q trailer %v", auth.Checksum, auth.Trailer)
				}
				bad := a.header + ":" + sumOf(t, a.header, data[1:])
				r = streamingRequest(t, mode, data, 65536, []string{bad}, nil)
				_, _, err = readStreaming(t, r)
				wantCode(t, err, s3err.BadDigest)
			})
		}
	}
}

func TestStreamingTampering(t *testing.T) {
	data := payload(150_000)
	crc := "x-amz-checksum-crc32:" + sumOf(t, "x-amz-checksum-crc32", data)
	flipAt := func(i int) func([]byte) []byte {
		return func(b []byte) []byte { b[i] ^= 1; return b }
	}
	dataByte := func(b []byte) int { return bytes.Index(b, []byte("\r\n")) + 2 + 100 }
	cases := []struct {
		name     string
		mode     string
		trailers []string
		mutate   func([]byte) []byte
		code     string
	}{
		{name: "data byte", mode: streamingSigned, mutate: func(b []byte) []byte { return flipAt(dataByte(b))(b) }, code: s3err.SignatureDoesNotMatch},
		{name: "chunk signature", mode: streamingSigned, mutate: func(b []byte) []byte {
			i := bytes.Index(b, []byte("chunk-signature=")) + len("chunk-signature=")
			b[i] = map[bool]byte{true: '1', false: '0'}[b[i] == '0']
			return b
		}, code: s3err.SignatureDoesNotMatch},
		{name: "chunks swapped", mode: streamingSigned, mutate: swapFirstChunks, code: s3err.SignatureDoesNotMatch},
		{name: "chunk dropped", mode: streamingSigned, mutate: dropFirstChunk, code: s3err.SignatureDoesNotMatch},
		{name: "truncated in data", mode: streamingSigned, mutate: func(b []byte) []byte { return b[:70000] }, code: s3err.IncompleteBody},
		{name: "truncated before final chunk", mode: streamingSigned, mutate: func(b []byte) []byte {
			return b[:bytes.LastIndex(b, []byte("0;chunk-signature="))]
		}, code: s3err.IncompleteBody},
		{name: "truncated in header", mode: streamingSigned, mutate: func(b []byte) []byte {
			return b[:bytes.LastIndex(b, []byte("0;chunk-signature="))+10]
		}, code: s3err.IncompleteBody},
		{name: "data after final chunk", mode: streamingSigned, mutate: func(b []byte) []byte { return append(b, "junk"...) }, code: s3err.IncompleteBody},
		{name: "wrong chunk size", mode: streamingSigned, mutate: func(b []byte) []byte { b[0] = '9'; return b }, code: s3err.IncompleteBody},
		{name: "trailer value", mode: streamingSignedTrailer, trailers: []string{crc}, mutate: func(b []byte) []byte {
			i := bytes.Index(b, []byte("x-amz-checksum-crc32:")) + len("x-amz-checksum-crc32:")
			b[i] ^= 1
			return b
		}, code: s3err.SignatureDoesNotMatch},
		{name: "trailer signature missing", mode: streamingSignedTrailer, trailers: []string{crc}, mutate: func(b []byte) []byte {
			i := bytes.Index(b, []byte("x-amz-trailer-signature:"))
			return append(b[:i], "\r\n"...)
		}, code: s3err.SignatureDoesNotMatch},
		{name: "unsigned data byte caught by checksum", mode: streamingUnsignedTrailer, trailers: []string{crc}, mutate: func(b []byte) []byte {
			return flipAt(dataByte(b))(b)
		}, code: s3err.BadDigest},
		{name: "declared trailer missing", mode: streamingUnsignedTrailer, trailers: []string{crc}, mutate: func(b []byte) []byte {
			i := bytes.Index(b, []byte("x-amz-checksum-crc32:"))
			return append(b[:i], "\r\n"...)
		}, code: s3err.MalformedTrailerError},
		{name: "undeclared trailer", mode: streamingUnsignedTrailer, trailers: []string{crc}, mutate: func(b []byte) []byte {
			return bytes.Replace(b, []byte("x-amz-checksum-crc32:"), []byte("x-amz-checksum-crc32c:"), 1)
		}, code: s3err.MalformedTrailerError},
		{name: "trailer not name:value", mode: streamingUnsignedTrailer, trailers: []string{crc}, mutate: func(b []byte) []byte {
			return bytes.Replace(b, []byte("x-amz-checksum-crc32:"), []byte("x-amz-checksum-crc32 "), 1)
		}, code: s3err.MalformedTrailerError},
		{name: "trailer value not base64 of 4 bytes", mode: streamingUnsignedTrailer, trailers: []string{crc}, mutate: func(b []byte) []byte {
			i := bytes.Index(b, []byte("x-amz-checksum-crc32:")) + len("x-amz-checksum-crc32:")
			b[i] = '*'
			return b
		}, code: s3err.InvalidRequest},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := streamingRequest(t, tc.mode, data, 65536, tc.trailers, tc.mutate)
			got, _, err := readStreaming(t, r)
			if err == nil {
				t.Fatalf("tampered stream accepted (%d bytes)", len(got))
			}
			wantCode(t, err, tc.code)
		})
	}
}

// chunkSpans returns the [start,end) of each chunk in an encoded body.
func chunkSpans(b []byte) [][2]int {
	var spans [][2]int
	for i := 0; i < len(b); {
		eol := bytes.Index(b[i:], []byte("\r\n"))
		size, _ := strconv.ParseInt(strings.SplitN(string(b[i:i+eol]), ";", 2)[0], 16, 64)
		end := i + eol + 2 + int(size) + 2
		if size == 0 {
			return spans
		}
		spans = append(spans, [2]int{i, end})
		i = end
	}
	return spans
}

func swapFirstChunks(b []byte) []byte {
	s := chunkSpans(b)
	out := append([]byte{}, b[:s[0][0]]...)
	out = append(out, b[s[1][0]:s[1][1]]...)
	out = append(out, b[s[0][0]:s[0][1]]...)
	return append(out, b[s[1][1]:]...)
}

func dropFirstChunk(b []byte) []byte {
	s := chunkSpans(b)
	return append(b[:s[0][0]:s[0][0]], b[s[0][1]:]...)
}

func TestStreamingErrorIsSticky(t *testing.T) {
	data := payload(100_000)
	r := streamingRequest(t, streamingSigned, data, 65536, nil, func(b []byte) []byte { b[200] ^= 1; return b })
	a, err := testVerifier().Verify(r)
	if err != nil {
		t.Fatal(err)
	}
	body := a.Body(r.Body)
	_, err = io.ReadAll(body)
	var e *s3err.Error
	if !errors.As(err, &e) {
		t.Fatalf("err = %v", err)
	}
	if _, err2 := body.Read(make([]byte, 10)); err2 != err {
		t.Fatalf("second Read = %v, want the same error", err2)
	}
}

func TestSHA256Body(t *testing.T) {
	data := payload(300_000)
	req := newReq(t, "PUT", objectURL("logs", "k", ""), data)
	signHeader(t, req, sha256Hex(data), testCreds(), testNow)
	srv := onWire(t, req)
	a, err := testVerifier().Verify(srv)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(a.Body(srv.Body))
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("good body: %v", err)
	}
	// The same signature over a different body of the same length.
	req = newReq(t, "PUT", objectURL("logs", "k", ""), data)
	signHeader(t, req, sha256Hex(data), testCreds(), testNow)
	other := bytes.Clone(data)
	other[len(other)-1] ^= 1
	req.Body = io.NopCloser(bytes.NewReader(other))
	srv = onWire(t, req)
	a, err = testVerifier().Verify(srv)
	if err != nil {
		t.Fatal(err)
	}
	_, err = io.ReadAll(a.Body(srv.Body))
	wantCode(t, err, s3err.XAmzContentSHA256Mismatch)
	// Truncated: the server's body reader reports it; Body maps it.
	a2 := *a
	_, err = io.ReadAll(a2.Body(io.MultiReader(bytes.NewReader(data[:10]), iotest.ErrReader(io.ErrUnexpectedEOF))))
	wantCode(t, err, s3err.IncompleteBody)
}

func TestHeaderChecksum(t *testing.T) {
	data := payload(50_000)
	for _, good := range []bool{true, false} {
		req := newReq(t, "PUT", objectURL("logs", "k", ""), data)
		v := sumOf(t, "x-amz-checksum-crc32c", data)
		if !good {
			v = sumOf(t, "x-amz-checksum-crc32c", data[1:])
		}
		req.Header.Set("X-Amz-Checksum-Crc32c", v)
		signHeader(t, req, unsignedPayload, testCreds(), testNow)
		srv := onWire(t, req)
		a, err := testVerifier().Verify(srv)
		if err != nil {
			t.Fatal(err)
		}
		_, err = io.ReadAll(a.Body(srv.Body))
		if good && err != nil {
			t.Fatalf("good checksum: %v", err)
		}
		if !good {
			wantCode(t, err, s3err.BadDigest)
		}
	}
}

// S3 refuses a chunk under 8 KiB that is not the last one with data, with
// InvalidChunkSizeError and its own message; a short last chunk is fine.
func TestChunkSizeMinimum(t *testing.T) {
	for _, mode := range []string{streamingSigned, streamingUnsignedTrailer} {
		var trailers []string
		if mode == streamingUnsignedTrailer {
			trailers = []string{"x-amz-checksum-crc32:" + sumOf(t, "x-amz-checksum-crc32", payload(3000))}
		}
		if _, _, err := readStreaming(t, streamingRequest(t, mode, payload(3000), 1000, trailers, nil)); err == nil {
			t.Fatalf("%s: 1000-byte chunks accepted", mode)
		} else {
			wantCode(t, err, s3err.InvalidChunkSizeError)
			if m := s3err.As(err).Message; m != "Only the last chunk is allowed to have a size less than 8192 bytes" {
				t.Fatalf("%s: message %q", mode, m)
			}
		}
		if mode == streamingUnsignedTrailer {
			trailers = []string{"x-amz-checksum-crc32:" + sumOf(t, "x-amz-checksum-crc32", payload(9000))}
		}
		if _, _, err := readStreaming(t, streamingRequest(t, mode, payload(9000), 8192, trailers, nil)); err != nil {
			t.Fatalf("%s: 8192 + 808 bytes refused: %v", mode, err)
		}
	}
}
