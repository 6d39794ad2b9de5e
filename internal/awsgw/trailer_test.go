package awsgw

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/airlock-dev/airlock/internal/sigv4"
)

// decodeChunked reads an aws-chunked body with a trailer, strictly.
func decodeChunked(t *testing.T, b []byte) ([]byte, string) {
	t.Helper()
	br := bufio.NewReader(bytes.NewReader(b))
	var out []byte
	for {
		line, err := br.ReadString('\n')
		if err != nil || !strings.HasSuffix(line, "\r\n") {
			t.Fatalf("chunk size line %q: %v", line, err)
		}
		n, err := strconv.ParseInt(strings.TrimSuffix(line, "\r\n"), 16, 64)
		if err != nil {
			t.Fatalf("chunk size %q", line)
		}
		if n == 0 {
			break
		}
		data := make([]byte, n+2)
		if _, err := io.ReadFull(br, data); err != nil || string(data[n:]) != "\r\n" {
			t.Fatalf("chunk of %d: %v", n, err)
		}
		out = append(out, data[:n]...)
	}
	rest, _ := io.ReadAll(br)
	tr, ok := strings.CutSuffix(string(rest), "\r\n\r\n")
	if !ok {
		t.Fatalf("trailer section %q", rest)
	}
	return out, tr
}

func TestTrailerBody(t *testing.T) {
	for _, n := range []int{1, 100, trailerChunk - 1, trailerChunk, trailerChunk + 1, 3*trailerChunk + 7} {
		payload := bytes.Repeat([]byte{'a'}, n)
		auth := &sigv4.Auth{Checksum: "x-amz-checksum-crc32"}
		tb, length, ok := newTrailerBody(bytes.NewReader(payload), int64(n), auth)
		if !ok {
			t.Fatal("crc32 not forwardable")
		}
		// The verifier sets the trailer when the body reaches its end.
		auth.Trailer = http.Header{"X-Amz-Checksum-Crc32": {"AAAAAA=="}}
		got, err := io.ReadAll(tb)
		if err != nil {
			t.Fatalf("%d bytes: %v", n, err)
		}
		if int64(len(got)) != length {
			t.Fatalf("%d bytes: encoded %d, announced %d", n, len(got), length)
		}
		data, tr := decodeChunked(t, got)
		if !bytes.Equal(data, payload) || tr != "x-amz-checksum-crc32:AAAAAA==" {
			t.Fatalf("%d bytes: decoded %d bytes, trailer %q", n, len(data), tr)
		}
	}
	for name, tc := range map[string]struct {
		body    string
		length  int64
		trailer string
		want    string
	}{
		"short":     {"abc", 5, "AAAAAA==", "shorter"},
		"long":      {"abcdef", 5, "AAAAAA==", "longer"},
		"bad value": {"abcde", 5, "AAAA", "not a 8-character value"},
	} {
		auth := &sigv4.Auth{Checksum: "x-amz-checksum-crc32", Trailer: http.Header{"X-Amz-Checksum-Crc32": {tc.trailer}}}
		tb, _, _ := newTrailerBody(strings.NewReader(tc.body), tc.length, auth)
		if _, err := io.ReadAll(tb); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error saying %q", name, err, tc.want)
		}
	}
	if _, _, ok := newTrailerBody(strings.NewReader("x"), 1, &sigv4.Auth{Checksum: "x-amz-checksum-crc16"}); ok {
		t.Error("an unknown algorithm was accepted")
	}
	if _, _, ok := newTrailerBody(strings.NewReader("x"), -1, &sigv4.Auth{Checksum: "x-amz-checksum-crc32"}); ok {
		t.Error("an unknown length was accepted")
	}
}
