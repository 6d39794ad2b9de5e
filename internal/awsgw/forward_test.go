package awsgw

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/textproto"
	"net/url"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/airlock-dev/airlock/internal/gateway"

	"github.com/airlock-dev/airlock/internal/s3err"
	"github.com/airlock-dev/airlock/internal/s3iam"
	"github.com/airlock-dev/airlock/internal/sigv4"
)

func TestFilterQuery(t *testing.T) {
	for in, want := range map[string]string{
		"":                          "",
		"list-type=2&prefix=app%2F": "list-type=2&prefix=app%2F",
		"uploads":                   "uploads",
		"X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=a%2Fb&X-Amz-Date=1&X-Amz-Expires=60&X-Amz-SignedHeaders=host&X-Amz-Signature=ff&x-id=GetObject": "x-id=GetObject",
		"X-Amz-Security-Token=secret&versionId=3":              "versionId=3",
		"x-amz-signature=ff&%58-Amz-Credential=c&partNumber=1": "partNumber=1",
	} {
		if got := filterQuery(in); got != want {
			t.Errorf("filterQuery(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestUpstreamHeader(t *testing.T) {
	in := http.Header{
		"Authorization":                {"AWS4-HMAC-SHA256 Credential=AKAL/…"},
		"X-Amz-Security-Token":         {"agent-token"},
		"X-Amz-Date":                   {"20260101T000000Z"},
		"X-Amz-Content-Sha256":         {"STREAMING-UNSIGNED-PAYLOAD-TRAILER"},
		"X-Amz-Decoded-Content-Length": {"5"},
		"X-Amz-Trailer":                {"x-amz-checksum-crc32"},
		"X-Amz-Sdk-Checksum-Algorithm": {"CRC32"},
		"Content-Encoding":             {"aws-chunked, gzip"},
		"Connection":                   {"keep-alive, X-Custom-Hop"},
		"X-Custom-Hop":                 {"1"},
		"Expect":                       {"100-continue"},
		"X-Amz-Copy-Source":            {"/logs/a%2Fb"},
		"Content-Type":                 {"text/plain"},
		"X-Amz-Meta-Owner":             {"sre"},
		"X-Amz-Meta-Unsigned":          {"added after signing"},
		"Range":                        {"bytes=0-9"},
	}
	op := &s3iam.Op{Name: "CopyObject", Bucket: "logs", Key: "app/c", CopySourceBucket: "logs", CopySourceKey: "a/b"}
	// Every x-amz-* header but X-Amz-Meta-Unsigned is signed: an unsigned
	// one never goes upstream.
	signed := []string{"content-encoding", "host", "x-amz-content-sha256", "x-amz-copy-source", "x-amz-decoded-content-length",
		"x-amz-meta-owner", "x-amz-sdk-checksum-algorithm", "x-amz-trailer"}
	h := upstreamHeader(in, op, &sigv4.Auth{Payload: sigv4.StreamingUnsignedTrailer, SignedHeaders: signed})
	want := http.Header{
		"Content-Encoding":  {"gzip"},
		"Content-Type":      {"text/plain"},
		"X-Amz-Meta-Owner":  {"sre"},
		"Range":             {"bytes=0-9"},
		"X-Amz-Copy-Source": {"/logs/a/b"},
	}
	if len(h) != len(want) {
		t.Fatalf("got %v, want %v", h, want)
	}
	for k, v := range want {
		if strings.Join(h[k], ",") != strings.Join(v, ",") {
			t.Errorf("%s = %q, want %q", k, h[k], v)
		}
	}
	// Without aws-chunked, Content-Encoding and the checksum algorithm stay.
	h = upstreamHeader(http.Header{"Content-Encoding": {"gzip"}, "X-Amz-Sdk-Checksum-Algorithm": {"CRC32"}, "X-Amz-Checksum-Crc32": {"AAAAAA=="}},
		&s3iam.Op{Name: "PutObject"}, &sigv4.Auth{Payload: sigv4.SHA256, SignedHeaders: []string{"host", "x-amz-checksum-crc32", "x-amz-sdk-checksum-algorithm"}})
	if h.Get("Content-Encoding") != "gzip" || h.Get("X-Amz-Sdk-Checksum-Algorithm") != "CRC32" || h.Get("X-Amz-Checksum-Crc32") == "" {
		t.Errorf("plain upload headers: %v", h)
	}
}

func TestUpstreamURL(t *testing.T) {
	custom, err := newTarget(Target{Name: "t", Region: "eu-west-1", Endpoint: "http://127.0.0.1:7070/base/", AccessKeyID: "a", SecretAccessKey: "s"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	awsT, err := newTarget(Target{Name: "t", Region: "eu-west-1", AccessKeyID: "a", SecretAccessKey: "s"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		t    *target
		op   s3iam.Op
		q    string
		want string
	}{
		{custom, s3iam.Op{Bucket: "logs", Key: "app/a b?.txt"}, "versionId=1", "http://127.0.0.1:7070/base/logs/app/a%20b%3F.txt?versionId=1"},
		{custom, s3iam.Op{Bucket: "logs"}, "list-type=2&X-Amz-Signature=x", "http://127.0.0.1:7070/base/logs?list-type=2"},
		{custom, s3iam.Op{}, "", "http://127.0.0.1:7070/base/"},
		{awsT, s3iam.Op{Bucket: "logs", Key: "app/x"}, "", "https://logs.s3.eu-west-1.amazonaws.com/app/x"},
		{awsT, s3iam.Op{Bucket: "logs"}, "", "https://logs.s3.eu-west-1.amazonaws.com/"},
		{awsT, s3iam.Op{Bucket: "my.dotted.bucket", Key: "k"}, "", "https://s3.eu-west-1.amazonaws.com/my.dotted.bucket/k"},
		{awsT, s3iam.Op{}, "", "https://s3.eu-west-1.amazonaws.com/"},
	}
	for _, tc := range cases {
		var u url.URL
		tc.t.setUpstreamURL(&u, &tc.op, tc.q)
		if got := u.String(); got != tc.want {
			t.Errorf("%+v: got %s, want %s", tc.op, got, tc.want)
		}
	}
}

func TestNewTargetErrors(t *testing.T) {
	for _, tc := range []Target{
		{Region: "r", AccessKeyID: "a", SecretAccessKey: "s"},
		{Name: "t", AccessKeyID: "a", SecretAccessKey: "s"},
		{Name: "t", Region: "r", AccessKeyID: "a"},
		{Name: "t", Region: "r"},
		{Name: "t", Region: "r", AccessKeyID: "a", SecretAccessKey: "s", Endpoint: "ftp://x"},
		{Name: "t", Region: "r", AccessKeyID: "a", SecretAccessKey: "s", Endpoint: "http://u:p@x"},
	} {
		if _, err := newTarget(tc, nil); err == nil {
			t.Errorf("newTarget(%+v) accepted", tc)
		} else if strings.Contains(err.Error(), "s\"") || (tc.SecretAccessKey != "" && strings.Contains(err.Error(), "SecretAccessKey:")) {
			t.Errorf("error shows a secret: %v", err)
		}
	}
}

func TestHoldLast(t *testing.T) {
	data := bytes.Repeat([]byte("0123456789"), 1000)
	readers := map[string]func() io.Reader{
		"plain":    func() io.Reader { return bytes.NewReader(data) },
		"one byte": func() io.Reader { return iotest.OneByteReader(bytes.NewReader(data)) },
		"half":     func() io.Reader { return iotest.HalfReader(bytes.NewReader(data)) },
		"data+EOF": func() io.Reader { return iotest.DataErrReader(bytes.NewReader(data)) },
		"empty":    func() io.Reader { return bytes.NewReader(nil) },
	}
	for name, mk := range readers {
		t.Run(name, func(t *testing.T) {
			want := data
			if name == "empty" {
				want = nil
			}
			got, err := io.ReadAll(&holdLast{r: mk()})
			if err != nil || !bytes.Equal(got, want) {
				t.Fatalf("got %d bytes, err %v", len(got), err)
			}
			// Tiny reads, one byte at a time.
			got, err = io.ReadAll(iotest.OneByteReader(&holdLast{r: mk()}))
			if err != nil || !bytes.Equal(got, want) {
				t.Fatalf("one-byte reads: %d bytes, err %v", len(got), err)
			}
		})
	}
	// A body that fails its check at the end never yields its last byte.
	bad := s3err.New(s3err.XAmzContentSHA256Mismatch, "mismatch")
	r := &holdLast{r: io.MultiReader(bytes.NewReader(data), iotest.ErrReader(bad))}
	got, err := io.ReadAll(r)
	if !errors.Is(err, bad) || len(got) >= len(data) {
		t.Fatalf("failing body: %d of %d bytes, err %v", len(got), len(data), err)
	}
}

func TestErrorCode(t *testing.T) {
	for in, want := range map[string]string{
		`<?xml version="1.0"?><Error><Code>NoSuchKey</Code><Message>m</Message></Error>`: "NoSuchKey",
		`<Error><Code>` + strings.Repeat("x", 100) + `</Code></Error>`:                   "",
		`not xml`: "", `<Code>unterminated`: "",
	} {
		if got := errorCode([]byte(in)); got != want {
			t.Errorf("errorCode(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestKnownPrunes(t *testing.T) {
	now := time.Now()
	k := newKnown(func() time.Time { return now })
	live := gateway.NewGrant(gateway.Info{ID: "g_live", CredentialID: "LIVE", ExpiresAt: now.Add(time.Hour)})
	old := gateway.NewGrant(gateway.Info{ID: "g_old", CredentialID: "OLD", ExpiresAt: now.Add(time.Minute)})
	recent := gateway.NewGrant(gateway.Info{ID: "g_recent", CredentialID: "RECENT", ExpiresAt: now.Add(time.Hour)})
	k.add(live)
	k.add(old)
	k.add(recent)
	old.End("expired")
	recent.End("revoked")
	now = now.Add(endedRetention + 2*time.Minute)
	k.mu.Lock()
	k.pruneLocked()
	k.mu.Unlock()
	if k.get("OLD") != nil || k.get("RECENT") == nil || k.get("LIVE") == nil {
		t.Fatalf("after pruning: old=%v recent=%v live=%v", k.get("OLD") != nil, k.get("RECENT") != nil, k.get("LIVE") != nil)
	}
}

// canonicalHeaderKey returns what textproto.CanonicalMIMEHeaderKey
// returns, for keys already canonical (its fast path) and for every other
// kind: lower or mixed case, a byte outside a token before or after a
// letter out of case, non-ASCII, empty.
func TestCanonicalHeaderKeyMatchesTextproto(t *testing.T) {
	for _, k := range []string{"", "-", "a", "A", "Host", "X-Amz-Date", "x-amz-date", "X-AMZ-DATE", "X-Amz-date",
		"Amz-Sdk-Invocation-Id", "X_amz_copy_source", "X-Amz-Meta-Key_name", "x amz", "X Amz", "X-Amz-Caf\u00e9",
		"caf\u00e9-x", "X-\u212a", "X-Amz-Date ", " X-Amz-Date", "A-B-C-", "--a", "Content-MD5", "X-Amz-Meta-1a",
		"X-Amz-Meta-a1", "Www-Authenticate", "X:y", "X-Amz-Date\r\n"} {
		if got, want := canonicalHeaderKey(k), textproto.CanonicalMIMEHeaderKey(k); got != want {
			t.Errorf("canonicalHeaderKey(%q) = %q, want %q", k, got, want)
		}
	}
}

// Every key of up to four bytes from an alphabet of letters in both
// cases, '-', token and non-token bytes and a non-ASCII one.
func TestCanonicalHeaderKeyShortKeys(t *testing.T) {
	alphabet := []byte("aAzZ-_0: \x7f\xc3")
	var try func(k []byte)
	try = func(k []byte) {
		if got, want := canonicalHeaderKey(string(k)), textproto.CanonicalMIMEHeaderKey(string(k)); got != want {
			t.Fatalf("canonicalHeaderKey(%q) = %q, want %q", k, got, want)
		}
		if len(k) == 4 {
			return
		}
		for _, c := range alphabet {
			try(append(k, c))
		}
	}
	try(nil)
}

// BenchmarkCanonicalHeaderKey checks the keys of an SDK's GetObject, as
// upstreamHeader does on every call: textproto's function, then the
// gateway's.
func BenchmarkCanonicalHeaderKey(b *testing.B) {
	keys := []string{"Accept-Encoding", "Amz-Sdk-Invocation-Id", "Amz-Sdk-Request", "Authorization",
		"User-Agent", "X-Amz-Content-Sha256", "X-Amz-Date", "X-Amz-Security-Token"}
	for _, f := range []struct {
		name string
		f    func(string) string
	}{{"textproto", textproto.CanonicalMIMEHeaderKey}, {"gateway", canonicalHeaderKey}} {
		b.Run(f.name, func(b *testing.B) {
			for b.Loop() {
				for _, k := range keys {
					if f.f(k) != k {
						b.Fatal(k)
					}
				}
			}
		})
	}
}
