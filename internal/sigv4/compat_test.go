package sigv4

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha512"
	"encoding/base64"
	"hash/crc32"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/airlock-dev/airlock/internal/s3err"
)

// What real clients send that the first version refused or misread.

func TestSigV2Refused(t *testing.T) {
	const want = "The authorization mechanism you have provided is not supported. Please use AWS4-HMAC-SHA256."
	for name, tamper := range map[string]func(*http.Request){
		// boto3 < 1.36's default presign, and s3cmd signurl.
		"query": func(r *http.Request) {
			r.URL.RawQuery = "AWSAccessKeyId=" + testAK + "&Signature=abc%3D&Expires=1748779200"
		},
		"header": func(r *http.Request) { r.Header.Set("Authorization", "AWS "+testAK+":c2lnbmF0dXJl") },
	} {
		t.Run(name, func(t *testing.T) {
			r := onWire(t, newReq(t, "GET", objectURL("logs", "app/one.log", ""), nil))
			tamper(r)
			_, err := testVerifier().Verify(r)
			wantCode(t, err, s3err.InvalidRequest)
			e := s3err.As(err)
			if e.Status != http.StatusBadRequest || !strings.HasPrefix(e.Message, want) {
				t.Fatalf("got %d %q", e.Status, e.Message)
			}
		})
	}
	// Without any signature it stays anonymous.
	_, err := testVerifier().Verify(onWire(t, newReq(t, "GET", objectURL("logs", "k", "x-id=GetObject"), nil)))
	wantCode(t, err, s3err.AccessDenied)
}

func TestRegionErrors(t *testing.T) {
	r := signedGet(t, objectURL("logs", "k", ""), testCreds(), testNow)
	a, err := testVerifier().Verify(r)
	if err != nil {
		t.Fatal(err)
	}
	if e := a.CheckRegion(testRegion); e != nil {
		t.Fatalf("same region: %v", e)
	}
	e := a.CheckRegion("eu-west-1")
	if e == nil || e.Code != s3err.AuthorizationHeaderMalformed || e.Status != 400 || e.Region != "eu-west-1" ||
		e.Message != "The authorization header is malformed; the region 'us-east-1' is wrong; expecting 'eu-west-1'" {
		t.Fatalf("header form: %+v", e)
	}
	a.Presigned = true
	e = a.CheckRegion("eu-west-1")
	if e == nil || e.Code != s3err.AuthorizationQueryParametersError || e.Status != 400 || e.Region != "eu-west-1" ||
		e.Message != "Error parsing the X-Amz-Credential parameter; the region 'us-east-1' is wrong; expecting 'eu-west-1'" {
		t.Fatalf("presigned form: %+v", e)
	}
	// A Verifier pinned to a region says the same.
	v := testVerifier()
	v.Region = "eu-west-1"
	_, err = v.Verify(signedGet(t, objectURL("logs", "k", ""), testCreds(), testNow))
	if e := s3err.As(err); e.Code != s3err.AuthorizationHeaderMalformed || e.Region != "eu-west-1" || !strings.Contains(e.Message, "the region 'us-east-1' is wrong; expecting 'eu-west-1'") {
		t.Fatalf("pinned: %+v", e)
	}
}

// presignQuery presigns a request whose extra query parameters stand for
// headers, as the JS SDK v3 and Go SDK v2 presigners put them.
func presignQuery(t *testing.T, method, rawURL string, body []byte) *http.Request {
	t.Helper()
	req := newReq(t, method, rawURL, nil)
	signed, _, err := s3Signer().PresignHTTP(context.Background(), testCreds(), req, unsignedPayload, "s3", testRegion, testNow)
	if err != nil {
		t.Fatal(err)
	}
	out := newReq(t, method, signed, body)
	return onWire(t, out)
}

func TestPresignedHoistedHeaders(t *testing.T) {
	data := []byte("presigned upload body")
	crc := crc32.ChecksumIEEE(data)
	good := base64.StdEncoding.EncodeToString([]byte{byte(crc >> 24), byte(crc >> 16), byte(crc >> 8), byte(crc)})
	bad := base64.StdEncoding.EncodeToString([]byte{0, 0, 0, 0})
	q := func(sum string) string {
		return "X-Amz-Expires=900&x-amz-sdk-checksum-algorithm=CRC32&x-amz-checksum-crc32=" + strings.ReplaceAll(sum, "=", "%3D") + "&x-id=PutObject"
	}
	t.Run("verified", func(t *testing.T) {
		r := presignQuery(t, "PUT", objectURL("logs", "app/p.txt", q(good)), data)
		a, err := testVerifier().Verify(r)
		if err != nil {
			t.Fatal(err)
		}
		if a.Hoisted.Get("X-Amz-Checksum-Crc32") != good || a.Hoisted.Get("X-Amz-Sdk-Checksum-Algorithm") != "CRC32" || a.Checksum != "x-amz-checksum-crc32" {
			t.Fatalf("hoisted %v checksum %q", a.Hoisted, a.Checksum)
		}
		if _, ok := a.Hoisted["X-Id"]; ok {
			t.Fatal("x-id is not a header")
		}
		if got, err := io.ReadAll(a.Body(r.Body)); err != nil || !bytes.Equal(got, data) {
			t.Fatalf("body: %v", err)
		}
	})
	t.Run("bad digest", func(t *testing.T) {
		r := presignQuery(t, "PUT", objectURL("logs", "app/p.txt", q(bad)), data)
		a, err := testVerifier().Verify(r)
		if err != nil {
			t.Fatal(err)
		}
		_, err = io.ReadAll(a.Body(r.Body))
		wantCode(t, err, s3err.BadDigest)
	})
	t.Run("checksum mode", func(t *testing.T) {
		r := presignQuery(t, "GET", objectURL("logs", "app/p.txt", "X-Amz-Expires=900&X-Amz-Checksum-Mode=ENABLED&x-id=GetObject"), nil)
		a, err := testVerifier().Verify(r)
		if err != nil {
			t.Fatal(err)
		}
		if a.Hoisted.Get("X-Amz-Checksum-Mode") != "ENABLED" || a.Checksum != "" {
			t.Fatalf("hoisted %v checksum %q", a.Hoisted, a.Checksum)
		}
	})
	t.Run("also as a header", func(t *testing.T) {
		r := presignQuery(t, "PUT", objectURL("logs", "app/p.txt", q(good)), data)
		r.Header.Set("X-Amz-Checksum-Sha256", base64.StdEncoding.EncodeToString(make([]byte, 32)))
		_, err := testVerifier().Verify(r)
		wantCode(t, err, s3err.InvalidRequest)
	})
	t.Run("tampered", func(t *testing.T) {
		r := presignQuery(t, "PUT", objectURL("logs", "app/p.txt", q(good)), data)
		r.URL.RawQuery = strings.Replace(r.URL.RawQuery, "CRC32&", "SHA256&", 1)
		_, err := testVerifier().Verify(r)
		wantCode(t, err, s3err.SignatureDoesNotMatch)
	})
}

func TestHeaderChecksumAlgorithms(t *testing.T) {
	data := []byte(strings.Repeat("checksums everywhere ", 100))
	m := md5.Sum(data)
	s := sha512.Sum512(data)
	cases := []struct {
		header, good string
		verified     bool
	}{
		{"x-amz-checksum-md5", base64.StdEncoding.EncodeToString(m[:]), true},
		{"x-amz-checksum-sha512", base64.StdEncoding.EncodeToString(s[:]), true},
		{"x-amz-checksum-xxhash64", base64.StdEncoding.EncodeToString(make([]byte, 8)), false},
		{"x-amz-checksum-xxhash3", base64.StdEncoding.EncodeToString(make([]byte, 8)), false},
		{"x-amz-checksum-xxhash128", base64.StdEncoding.EncodeToString(make([]byte, 16)), false},
	}
	send := func(t *testing.T, header, value string) (*Auth, []byte, error) {
		req := newReq(t, "PUT", objectURL("logs", "app/c.bin", ""), data)
		req.Header.Set(header, value)
		signHeader(t, req, sha256Hex(data), testCreds(), testNow)
		r := onWire(t, req)
		a, err := testVerifier().Verify(r)
		if err != nil {
			return nil, nil, err
		}
		got, err := io.ReadAll(a.Body(r.Body))
		return a, got, err
	}
	for _, tc := range cases {
		t.Run(tc.header, func(t *testing.T) {
			if Verifiable(tc.header) != tc.verified {
				t.Fatalf("Verifiable = %v", !tc.verified)
			}
			a, got, err := send(t, tc.header, tc.good)
			if err != nil || !bytes.Equal(got, data) || a.Checksum != tc.header {
				t.Fatalf("good: %v %d bytes", err, len(got))
			}
			// A value of the wrong size is refused whatever the algorithm.
			_, _, err = send(t, tc.header, tc.good[4:])
			wantCode(t, err, s3err.InvalidRequest)
			if tc.verified {
				wrong := base64.StdEncoding.EncodeToString(make([]byte, ChecksumSize(tc.header)))
				_, _, err = send(t, tc.header, wrong)
				wantCode(t, err, s3err.BadDigest)
			}
		})
	}
	_, _, err := send(t, "x-amz-checksum-crc16", "AAA=")
	wantCode(t, err, s3err.InvalidRequest)
}

// CompleteMultipartUpload's checksum header is the object's: Body must not
// check it against the XML.
func TestLeaveChecksumToUpstream(t *testing.T) {
	body := []byte("<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>\"x\"</ETag></Part></CompleteMultipartUpload>")
	objectSum := base64.StdEncoding.EncodeToString([]byte{1, 2, 3, 4})
	mk := func() (*Auth, *http.Request) {
		req := newReq(t, "POST", objectURL("logs", "app/mp.bin", "uploadId=abc"), body)
		req.Header.Set("X-Amz-Checksum-Crc32", objectSum)
		req.Header.Set("X-Amz-Checksum-Type", "FULL_OBJECT")
		signHeader(t, req, sha256Hex(body), testCreds(), testNow)
		r := onWire(t, req)
		a, err := testVerifier().Verify(r)
		if err != nil {
			t.Fatal(err)
		}
		return a, r
	}
	a, r := mk()
	_, err := io.ReadAll(a.Body(r.Body))
	wantCode(t, err, s3err.BadDigest) // what the first version answered
	a, r = mk()
	a.LeaveChecksumToUpstream()
	if got, err := io.ReadAll(a.Body(r.Body)); err != nil || !bytes.Equal(got, body) || a.Checksum != "" {
		t.Fatalf("left to the upstream: %v (checksum %q)", err, a.Checksum)
	}
}
