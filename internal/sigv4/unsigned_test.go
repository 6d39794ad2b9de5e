package sigv4

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"

	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"

	"github.com/airlock-dev/airlock/internal/s3err"
)

func expectHeadersNotSigned(t *testing.T, err error, names string) {
	t.Helper()
	var e *s3err.Error
	if !errors.As(err, &e) || e.Code != s3err.AccessDenied || e.Status != 403 ||
		e.Message != "There were headers present in the request which were not signed" || e.HeadersNotSigned != names {
		t.Fatalf("got %#v, want AccessDenied with HeadersNotSigned %q", err, names)
	}
}

func TestUnsignedAmzHeaderRefused(t *testing.T) {
	v := testVerifier()
	for _, tc := range []struct {
		add   map[string]string
		names string
	}{
		{map[string]string{"X-Amz-Tagging": "a=b"}, "x-amz-tagging"},
		{map[string]string{"X-Amz-Meta-Foo": "1", "X-Amz-Copy-Source": "logs/secret"}, "x-amz-copy-source, x-amz-meta-foo"},
		{map[string]string{"x-amz-acl": "public-read"}, "x-amz-acl"}, // a map key Go did not canonicalise
		{map[string]string{"X-Amz-Checksum-Crc32": "AAAAAA=="}, "x-amz-checksum-crc32"},
	} {
		req, _ := http.NewRequest(http.MethodPut, "https://s3.test/logs/app/a", nil)
		signHeader(t, req, sha256Hex(nil), testCreds(), testNow)
		for k, val := range tc.add {
			req.Header[k] = []string{val}
		}
		_, err := v.Verify(onWireKeepCase(t, req, tc.add))
		expectHeadersNotSigned(t, err, tc.names)
	}
}

// onWireKeepCase is onWire, except that headers set with a non-canonical
// key are put back as they were (a map built by hand, not by net/http).
func onWireKeepCase(t *testing.T, req *http.Request, added map[string]string) *http.Request {
	t.Helper()
	got := onWire(t, req)
	for k, v := range added {
		if ck := http.CanonicalHeaderKey(k); ck != k {
			delete(got.Header, ck)
			got.Header[k] = []string{v}
		}
	}
	return got
}

// A wrong signature is SignatureDoesNotMatch whatever headers are added:
// only the holder of the secret learns about unsigned headers.
func TestUnsignedHeaderAfterSignatureCheck(t *testing.T) {
	req, _ := http.NewRequest(http.MethodGet, "https://s3.test/logs/app/a", nil)
	creds := testCreds()
	creds.SecretAccessKey = "wrong"
	signHeader(t, req, sha256Hex(nil), creds, testNow)
	req.Header.Set("X-Amz-Tagging", "a=b")
	_, err := testVerifier().Verify(onWire(t, req))
	var e *s3err.Error
	if !errors.As(err, &e) || e.Code != s3err.SignatureDoesNotMatch {
		t.Fatalf("got %v, want SignatureDoesNotMatch", err)
	}
}

// x-amz-content-sha256 is the one x-amz-* header S3 takes unsigned: its
// value is in the canonical request anyway. Headers that only look alike
// (x-amzn-trace-id) are not x-amz-* headers.
func TestUnsignedHeaderExceptions(t *testing.T) {
	req, _ := http.NewRequest(http.MethodGet, "https://s3.test/logs/app/a", nil)
	hash := sha256Hex(nil)
	if err := s3Signer().SignHTTP(context.Background(), testCreds(), req, hash, "s3", testRegion, testNow); err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Amz-Content-Sha256", hash)
	req.Header.Set("X-Amzn-Trace-Id", "Root=1-abc")
	req.Header.Set("User-Agent", "added")
	a, err := testVerifier().Verify(onWire(t, req))
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	for _, h := range a.SignedHeaders {
		if h == "x-amz-content-sha256" {
			t.Fatal("the test meant to leave x-amz-content-sha256 unsigned")
		}
	}
	// An unsigned digest that is not the one signed fails the signature.
	req.Header.Set("X-Amz-Content-Sha256", sha256Hex([]byte("other")))
	_, err = testVerifier().Verify(onWire(t, req))
	var e *s3err.Error
	if !errors.As(err, &e) || e.Code != s3err.SignatureDoesNotMatch {
		t.Fatalf("a changed unsigned digest: %v", err)
	}
}

// Presigned URLs: x-amz-* parameters in the query are signed with it, as
// is every header in X-Amz-SignedHeaders; a header added to the request is
// refused.
func TestUnsignedHeaderPresigned(t *testing.T) {
	req, _ := http.NewRequest(http.MethodPut, "https://s3.test/logs/app/a?X-Amz-Expires=900&x-amz-acl=private&x-amz-checksum-crc32=AAAAAA%3D%3D", nil)
	req.Header.Set("X-Amz-Meta-Signed", "yes")
	u, hdr, err := s3Signer().PresignHTTP(context.Background(), testCreds(), req, "UNSIGNED-PAYLOAD", "s3", testRegion, testNow, func(o *v4.SignerOptions) {})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(hdr.Get("X-Amz-Meta-Signed"), "yes") {
		t.Fatalf("the presigner did not keep the header signed: %v", hdr)
	}
	use := func(extra map[string]string) error {
		r, _ := http.NewRequest(http.MethodPut, u, nil)
		r.Header.Set("X-Amz-Meta-Signed", "yes")
		for k, v := range extra {
			r.Header.Set(k, v)
		}
		_, err := testVerifier().Verify(onWire(t, r))
		return err
	}
	if err := use(nil); err != nil {
		t.Fatalf("presigned request as signed: %v", err)
	}
	expectHeadersNotSigned(t, use(map[string]string{"X-Amz-Tagging": "a=b", "X-Amz-Security-Token": "x"}), "x-amz-security-token, x-amz-tagging")
	// An unsigned x-amz-content-sha256 is ignored (the payload stays
	// unsigned), as S3 does.
	if err := use(map[string]string{"X-Amz-Content-Sha256": sha256Hex(nil)}); err != nil {
		t.Fatalf("presigned request with an unsigned x-amz-content-sha256: %v", err)
	}
}

func TestUnsignedAmzHeadersBounded(t *testing.T) {
	h := http.Header{}
	for i := range 40 {
		h.Set("X-Amz-Meta-"+strings.Repeat("k", i+1), "v")
	}
	h["x-amz-meta-\x1b[2k"] = []string{"v"}
	names := UnsignedAmzHeaders(h, []string{"host"})
	if len(names) != 41 {
		t.Fatalf("%d names", len(names))
	}
	e := headersNotSigned(names)
	if strings.Count(e.HeadersNotSigned, ",") != maxListedUnsigned-1 || strings.ContainsAny(e.HeadersNotSigned, "\x1b") {
		t.Fatalf("HeadersNotSigned %q", e.HeadersNotSigned)
	}
	if got := UnsignedAmzHeaders(http.Header{"X-Amz-Date": {"x"}, "Host": {"h"}}, []string{"host", "x-amz-date"}); got != nil {
		t.Fatalf("signed headers reported: %v", got)
	}
}

// FuzzUnsignedAmzFast holds unsignedAmz's path for a verified list (an
// ASCII key compared by length, then byte by byte) to the
// strings.EqualFold path every other list takes: for any header keys, including non-ASCII
// ones that EqualFold folds onto ASCII (the Kelvin sign, the long s), and
// any list splitSignedHeaders accepts, both name the same headers. Being
// an equivalence it passes without the fast path too; the seeds cover
// the keys a request carries and those that must take EqualFold's path.
func FuzzUnsignedAmzFast(f *testing.F) {
	f.Add("X-Amz-Date\nX-Amz-Security-Token\nX-Amz-Content-Sha256\nX-Amz-Tagging\nUser-Agent", "host;x-amz-content-sha256;x-amz-date;x-amz-security-token")
	f.Add("x-amz-date\nX-AMZ-DATE\nX-Amz-Meta-\u212a\nX-Amz-Meta-k\nX-Amz-Meta-\u017f", "host;x-amz-date;x-amz-meta-k;x-amz-meta-s")
	f.Add("X-Amz-Meta-"+strings.Repeat("A", 60)+"\nx-amz-\nX-Amz-Date\x80", "host;x-amz-date;x-amz-meta-"+strings.Repeat("a", 60))
	f.Fuzz(func(t *testing.T, keys, list string) {
		signed, msg := splitSignedHeaders(list, nil)
		if msg != "" {
			return
		}
		h := http.Header{}
		for k := range strings.SplitSeq(keys, "\n") {
			h[k] = []string{"v"}
		}
		amz := amzHeaders(h, nil)
		fast, slow := unsignedAmz(amz, signed, true), unsignedAmz(amz, signed, false)
		if !slices.Equal(fast, slow) {
			t.Fatalf("keys %q, list %q: %q with the fast path, %q with EqualFold", keys, list, fast, slow)
		}
	})
}

// TestUnsignedOKAmz: unsignedAmz compares the exceptions with x-amz-* keys
// past their first len(amzPrefix) bytes, so each must start with it, in
// lower case, and be lower case throughout.
func TestUnsignedOKAmz(t *testing.T) {
	for _, s := range unsignedOK {
		if !strings.HasPrefix(s, amzPrefix) || s != strings.ToLower(s) {
			t.Errorf("unsignedOK holds %q", s)
		}
	}
}
