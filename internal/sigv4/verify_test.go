package sigv4

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/smithy-go/encoding/httpbinding"

	"github.com/airlock-dev/airlock/internal/s3err"
)

// objectURL is the path-style URL of key, escaped as the S3 client does.
func objectURL(bucket, key, query string) string {
	u := "http://127.0.0.1:9000/" + bucket + "/" + httpbinding.EscapePath(key, false)
	if query != "" {
		u += "?" + query
	}
	return u
}

func TestVerifyHeaderSDKSigned(t *testing.T) {
	body := []byte("hello, airlock")
	cases := []struct {
		name, method, url string
		body              []byte
		payload           string
		extra             func(*http.Request) // before signing
		after             func(*http.Request) // after signing: unsigned changes
		wantMode          PayloadMode
	}{
		{name: "plain get", method: "GET", url: objectURL("logs", "app/one.log", ""), payload: sha256Hex(nil), wantMode: SHA256},
		{name: "space in key", method: "GET", url: objectURL("logs", "app/with space.log", ""), payload: unsignedPayload, wantMode: Unsigned},
		{name: "unicode key", method: "GET", url: objectURL("logs", "app/日本語/ü.txt", ""), payload: unsignedPayload, wantMode: Unsigned},
		{name: "plus and tilde", method: "GET", url: objectURL("logs", "app/a+b~c.txt", ""), payload: unsignedPayload, wantMode: Unsigned},
		{name: "literal percent-2F in key", method: "GET", url: objectURL("logs", "app/a%2Fb", ""), payload: unsignedPayload, wantMode: Unsigned},
		{name: "encoded slash kept as sent", method: "GET", url: "http://127.0.0.1:9000/logs/app%2Fb", payload: unsignedPayload, wantMode: Unsigned},
		{name: "dot segments not normalised", method: "GET", url: "http://127.0.0.1:9000/logs/app/../x//y", payload: unsignedPayload, wantMode: Unsigned},
		{name: "specials in key", method: "GET", url: objectURL("logs", "app/!$&'()*,;=:@.txt", ""), payload: unsignedPayload, wantMode: Unsigned},
		{name: "list with prefix", method: "GET", url: "http://127.0.0.1:9000/logs?list-type=2&prefix=" + url.QueryEscape("app/a b+c~/日") + "&delimiter=%2F", payload: sha256Hex(nil), wantMode: SHA256},
		{name: "param without value", method: "GET", url: "http://127.0.0.1:9000/logs/k?acl", payload: sha256Hex(nil), wantMode: SHA256},
		{name: "param with empty value", method: "GET", url: "http://127.0.0.1:9000/logs/k?acl=&versionId=", payload: sha256Hex(nil), wantMode: SHA256},
		{name: "repeated params", method: "GET", url: "http://127.0.0.1:9000/logs?b=2&a=2&a=1&a=10", payload: sha256Hex(nil), wantMode: SHA256},
		{name: "put with body", method: "PUT", url: objectURL("logs", "app/new.log", ""), body: body, payload: sha256Hex(body), wantMode: SHA256,
			extra: func(r *http.Request) {
				r.Header.Set("Content-Type", "text/plain")
				r.Header.Set("X-Amz-Meta-Note", "  several   spaces  here ")
			}},
		{name: "extra unsigned headers", method: "GET", url: objectURL("logs", "app/one.log", ""), payload: unsignedPayload, wantMode: Unsigned,
			after: func(r *http.Request) {
				r.Header.Set("User-Agent", "changed-after-signing")
				r.Header.Set("X-Forwarded-For", "10.0.0.1")
			}},
		{name: "multi-valued signed header", method: "GET", url: objectURL("logs", "k", ""), payload: unsignedPayload, wantMode: Unsigned,
			extra: func(r *http.Request) {
				r.Header.Add("X-Amz-Meta-Tag", "one")
				r.Header.Add("X-Amz-Meta-Tag", " two ")
			}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req := newReq(t, tc.method, tc.url, tc.body)
			if tc.extra != nil {
				tc.extra(req)
			}
			signHeader(t, req, tc.payload, testCreds(), testNow.Add(-time.Minute))
			if tc.after != nil {
				tc.after(req)
			}
			srv := onWire(t, req)
			a, err := testVerifier().Verify(srv)
			if err != nil {
				t.Fatalf("Verify: %v\nrequest line: %s %s", err, srv.Method, srv.RequestURI)
			}
			if a.AccessKeyID != testAK || a.Region != testRegion || a.Service != "s3" || a.Presigned {
				t.Errorf("auth = %+v", a)
			}
			if a.Payload != tc.wantMode {
				t.Errorf("payload mode = %v, want %v", a.Payload, tc.wantMode)
			}
			if !a.SignedAt.Equal(testNow.Add(-time.Minute)) {
				t.Errorf("SignedAt = %v", a.SignedAt)
			}
			if len(a.SignedHeaders) == 0 || !contains(a.SignedHeaders, "host") {
				t.Errorf("SignedHeaders = %v", a.SignedHeaders)
			}
			got, err := io.ReadAll(a.Body(srv.Body))
			if err != nil {
				t.Fatalf("reading body: %v", err)
			}
			if string(got) != string(tc.body) {
				t.Errorf("body = %q, want %q", got, tc.body)
			}
		})
	}
}

// signedGet returns a server-side view of a GET signed by the SDK.
func signedGet(t *testing.T, rawURL string, creds aws.Credentials, at time.Time) *http.Request {
	t.Helper()
	req := newReq(t, "GET", rawURL, nil)
	req.Header.Set("Range", "bytes=0-9")
	signHeader(t, req, sha256Hex(nil), creds, at)
	return onWire(t, req)
}

func TestVerifyHeaderTampering(t *testing.T) {
	base := objectURL("logs", "app/one.log", "versionId=7")
	otherSecret := testCreds()
	otherSecret.SecretAccessKey = "not-the-secret"
	noToken := testCreds()
	noToken.SessionToken = ""
	otherToken := testCreds()
	otherToken.SessionToken = "another-token"
	cases := []struct {
		name   string
		creds  aws.Credentials
		at     time.Time
		tamper func(*http.Request)
		v      func(*Verifier)
		code   string
		// anonymous: no credentials at all (every other refusal names some)
		anonymous bool
	}{
		{name: "path", tamper: func(r *http.Request) { r.RequestURI = strings.Replace(r.RequestURI, "one.log", "two.log", 1) }, code: s3err.SignatureDoesNotMatch},
		{name: "path encoding", tamper: func(r *http.Request) { r.RequestURI = strings.Replace(r.RequestURI, "app/one", "app%2Fone", 1) }, code: s3err.SignatureDoesNotMatch},
		{name: "query value", tamper: func(r *http.Request) { r.URL.RawQuery = "versionId=8" }, code: s3err.SignatureDoesNotMatch},
		{name: "query added", tamper: func(r *http.Request) { r.URL.RawQuery += "&acl" }, code: s3err.SignatureDoesNotMatch},
		{name: "query removed", tamper: func(r *http.Request) { r.URL.RawQuery = "" }, code: s3err.SignatureDoesNotMatch},
		{name: "signed header", tamper: func(r *http.Request) { r.Header.Set("Range", "bytes=0-99") }, code: s3err.SignatureDoesNotMatch},
		{name: "signed header removed", tamper: func(r *http.Request) { r.Header.Del("Range") }, code: s3err.SignatureDoesNotMatch},
		{name: "host", tamper: func(r *http.Request) { r.Host = "127.0.0.1:9001" }, code: s3err.SignatureDoesNotMatch},
		{name: "method", tamper: func(r *http.Request) { r.Method = "DELETE" }, code: s3err.SignatureDoesNotMatch},
		{name: "payload hash", tamper: func(r *http.Request) { r.Header.Set("X-Amz-Content-Sha256", unsignedPayload) }, code: s3err.SignatureDoesNotMatch},
		{name: "date", tamper: func(r *http.Request) {
			r.Header.Set("X-Amz-Date", testNow.Add(-2*time.Minute).Format(amzDateFmt))
		}, code: s3err.SignatureDoesNotMatch},
		{name: "region in credential", tamper: func(r *http.Request) {
			r.Header.Set("Authorization", strings.Replace(r.Header.Get("Authorization"), "/us-east-1/", "/eu-west-1/", 1))
		}, code: s3err.SignatureDoesNotMatch},
		{name: "region pinned by verifier", v: func(v *Verifier) { v.Region = "eu-west-1" }, code: s3err.AuthorizationHeaderMalformed},
		{name: "service pinned by verifier", v: func(v *Verifier) { v.Service = "sts" }, code: s3err.AuthorizationHeaderMalformed},
		{name: "signature", tamper: func(r *http.Request) {
			h := r.Header.Get("Authorization")
			r.Header.Set("Authorization", h[:len(h)-4]+"0000")
		}, code: s3err.SignatureDoesNotMatch},
		{name: "wrong secret", creds: otherSecret, code: s3err.SignatureDoesNotMatch},
		{name: "missing token", creds: noToken, code: s3err.InvalidToken},
		{name: "wrong token", creds: otherToken, code: s3err.InvalidToken},
		{name: "token swapped after signing", tamper: func(r *http.Request) { r.Header.Set("X-Amz-Security-Token", "another-token") }, code: s3err.InvalidToken},
		{name: "unknown key", tamper: func(r *http.Request) {
			r.Header.Set("Authorization", strings.Replace(r.Header.Get("Authorization"), testAK, "AKIDUNKNOWN", 1))
		}, code: s3err.InvalidAccessKeyID},
		{name: "clock skew past", at: testNow.Add(-6 * time.Minute), code: s3err.RequestTimeTooSkewed},
		{name: "clock skew future", at: testNow.Add(6 * time.Minute), code: s3err.RequestTimeTooSkewed},
		{name: "scope date differs", tamper: func(r *http.Request) {
			r.Header.Set("Authorization", strings.Replace(r.Header.Get("Authorization"), "/20250601/", "/20250531/", 1))
		}, code: s3err.AuthorizationHeaderMalformed},
		{name: "missing content sha256", tamper: func(r *http.Request) { r.Header.Del("X-Amz-Content-Sha256") }, code: s3err.InvalidRequest},
		{name: "missing authorization", tamper: func(r *http.Request) { r.Header.Del("Authorization") }, code: s3err.AccessDenied, anonymous: true},
		{name: "missing authorization and content sha256", tamper: func(r *http.Request) {
			r.Header.Del("Authorization")
			r.Header.Del("X-Amz-Content-Sha256")
		}, code: s3err.AccessDenied, anonymous: true},
		{name: "host not signed", tamper: func(r *http.Request) {
			r.Header.Set("Authorization", strings.Replace(r.Header.Get("Authorization"), "SignedHeaders=host;", "SignedHeaders=", 1))
		}, code: s3err.AuthorizationHeaderMalformed},
		{name: "token not signed", tamper: func(r *http.Request) {
			r.Header.Set("Authorization", strings.Replace(r.Header.Get("Authorization"), ";x-amz-security-token", "", 1))
		}, code: s3err.InvalidToken},
		{name: "header and query auth", tamper: func(r *http.Request) { r.URL.RawQuery += "&X-Amz-Signature=00" }, code: s3err.InvalidArgument},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			creds := tc.creds
			if creds.AccessKeyID == "" {
				creds = testCreds()
			}
			at := tc.at
			if at.IsZero() {
				at = testNow
			}
			r := signedGet(t, base, creds, at)
			if tc.tamper != nil {
				tc.tamper(r)
			}
			v := testVerifier()
			if tc.v != nil {
				tc.v(v)
			}
			a, err := v.Verify(r)
			if err == nil {
				t.Fatalf("tampered request verified: %+v", a)
			}
			wantCode(t, err, tc.code)
			wantAnonymous(t, err, tc.anonymous)
		})
	}
}

func TestVerifySkewBoundary(t *testing.T) {
	for _, d := range []time.Duration{-5 * time.Minute, 5 * time.Minute, 0} {
		r := signedGet(t, objectURL("b", "k", ""), testCreds(), testNow.Add(d))
		if _, err := testVerifier().Verify(r); err != nil {
			t.Errorf("skew %v: %v", d, err)
		}
	}
	v := testVerifier()
	v.MaxSkew = time.Minute
	r := signedGet(t, objectURL("b", "k", ""), testCreds(), testNow.Add(-2*time.Minute))
	_, err := v.Verify(r)
	wantCode(t, err, s3err.RequestTimeTooSkewed)
}

func TestVerifyCredentialWithoutToken(t *testing.T) {
	v := testVerifier()
	v.Lookup = func(string) (string, string, error) { return testSecret, "", nil }
	noToken := testCreds()
	noToken.SessionToken = ""
	if _, err := v.Verify(signedGet(t, objectURL("b", "k", ""), noToken, testNow)); err != nil {
		t.Fatalf("credential without a token: %v", err)
	}
	// A token on a credential that has none is refused, as AWS does.
	_, err := v.Verify(signedGet(t, objectURL("b", "k", ""), testCreds(), testNow))
	wantCode(t, err, s3err.InvalidToken)
}

func TestVerifyLookupErrorUnchanged(t *testing.T) {
	sentinel := s3err.New(s3err.ExpiredToken, "The provided token has expired.")
	v := testVerifier()
	v.Lookup = func(string) (string, string, error) { return "", "", sentinel }
	_, err := v.Verify(signedGet(t, objectURL("b", "k", ""), testCreds(), testNow))
	if err != sentinel {
		t.Fatalf("err = %v, want Lookup's error unchanged", err)
	}
}

func TestVerifyMessagesHideSecrets(t *testing.T) {
	// The signature the server expects must not appear in the message, or
	// an attacker could forge one by asking.
	r := signedGet(t, objectURL("b", "k", ""), testCreds(), testNow)
	good := r.Header.Get("Authorization")
	wantSig := good[strings.LastIndex(good, "=")+1:]
	r.Header.Set("Authorization", good[:len(good)-64]+strings.Repeat("0", 64))
	_, err := testVerifier().Verify(r)
	wantCode(t, err, s3err.SignatureDoesNotMatch)
	if strings.Contains(err.Error(), wantSig) {
		t.Fatalf("message contains the expected signature: %v", err)
	}
}

func TestPresigned(t *testing.T) {
	presign := func(t *testing.T, method, rawURL string, creds aws.Credentials, at time.Time, expires time.Duration) *http.Request {
		t.Helper()
		req := newReq(t, method, rawURL, nil)
		q := req.URL.Query()
		q.Set("X-Amz-Expires", strconv.Itoa(int(expires/time.Second)))
		req.URL.RawQuery = q.Encode()
		signed, hdr, err := s3Signer().PresignHTTP(context.Background(), creds, req, unsignedPayload, "s3", testRegion, at)
		if err != nil {
			t.Fatal(err)
		}
		out := newReq(t, method, signed, nil)
		for k, v := range hdr {
			if k != "Host" {
				out.Header[k] = v
			}
		}
		return onWire(t, out)
	}
	t.Run("valid", func(t *testing.T) {
		for _, key := range []string{"app/one.log", "app/with space+plus~tilde/日本.txt", "app/a%2Fb"} {
			r := presign(t, "GET", objectURL("logs", key, "response-content-type=text%2Fplain"), testCreds(), testNow.Add(-time.Hour), 2*time.Hour)
			a, err := testVerifier().Verify(r)
			if err != nil {
				t.Fatalf("%s: %v (%s)", key, err, r.RequestURI)
			}
			if !a.Presigned || a.Payload != Unsigned || !a.Expires.Equal(testNow.Add(time.Hour)) {
				t.Errorf("auth = %+v", a)
			}
		}
	})
	cases := []struct {
		name    string
		at      time.Time
		expires time.Duration
		creds   aws.Credentials
		tamper  func(*http.Request)
		code    string
		// anonymous: no presigned query left at all
		anonymous bool
	}{
		{name: "expired", at: testNow.Add(-2 * time.Hour), expires: time.Hour, code: s3err.AccessDenied},
		{name: "expires too long", expires: 8 * 24 * time.Hour, code: s3err.AuthorizationQueryParametersError},
		{name: "dated in the future", at: testNow.Add(10 * time.Minute), expires: time.Hour, code: s3err.AccessDenied},
		{name: "path", tamper: func(r *http.Request) { r.RequestURI = strings.Replace(r.RequestURI, "one.log", "two.log", 1) }, code: s3err.SignatureDoesNotMatch},
		{name: "query", tamper: func(r *http.Request) { r.URL.RawQuery += "&acl" }, code: s3err.SignatureDoesNotMatch},
		{name: "expires extended", tamper: func(r *http.Request) {
			r.URL.RawQuery = strings.Replace(r.URL.RawQuery, "X-Amz-Expires=3600", "X-Amz-Expires=7200", 1)
		}, code: s3err.SignatureDoesNotMatch},
		{name: "token removed", tamper: func(r *http.Request) {
			q := r.URL.Query()
			q.Del("X-Amz-Security-Token")
			r.URL.RawQuery = q.Encode()
		}, code: s3err.InvalidToken},
		{name: "wrong token", creds: aws.Credentials{AccessKeyID: testAK, SecretAccessKey: testSecret, SessionToken: "nope"}, code: s3err.InvalidToken},
		{name: "wrong secret", creds: aws.Credentials{AccessKeyID: testAK, SecretAccessKey: "nope", SessionToken: testToken}, code: s3err.SignatureDoesNotMatch},
		{name: "missing signature", tamper: func(r *http.Request) {
			q := r.URL.Query()
			q.Del("X-Amz-Signature")
			r.URL.RawQuery = q.Encode()
		}, code: s3err.AuthorizationQueryParametersError},
		{name: "bad credential", tamper: func(r *http.Request) {
			q := r.URL.Query()
			q.Set("X-Amz-Credential", "AK/2025/us-east-1/s3")
			r.URL.RawQuery = q.Encode()
		}, code: s3err.AuthorizationQueryParametersError},
		{name: "method", tamper: func(r *http.Request) { r.Method = "PUT" }, code: s3err.SignatureDoesNotMatch},
		{name: "credential alone", tamper: func(r *http.Request) {
			q := r.URL.Query()
			q.Del("X-Amz-Signature")
			q.Del("X-Amz-Algorithm")
			r.URL.RawQuery = q.Encode()
		}, code: s3err.AccessDenied, anonymous: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			at, exp, creds := tc.at, tc.expires, tc.creds
			if at.IsZero() {
				at = testNow
			}
			if exp == 0 {
				exp = time.Hour
			}
			if creds.AccessKeyID == "" {
				creds = testCreds()
			}
			r := presign(t, "GET", objectURL("logs", "app/one.log", ""), creds, at, exp)
			if tc.tamper != nil {
				tc.tamper(r)
			}
			a, err := testVerifier().Verify(r)
			if err == nil {
				t.Fatalf("verified: %+v", a)
			}
			wantCode(t, err, tc.code)
			wantAnonymous(t, err, tc.anonymous)
		})
	}
}

func TestKeyCacheFollowsSecret(t *testing.T) {
	v := testVerifier()
	secret := testSecret
	v.Lookup = func(string) (string, string, error) { return secret, testToken, nil }
	r := signedGet(t, objectURL("b", "k", ""), testCreds(), testNow)
	if _, err := v.Verify(r); err != nil {
		t.Fatal(err)
	}
	// The secret changes: the cached key for the same scope must not be used.
	secret = "rotated"
	_, err := v.Verify(signedGet(t, objectURL("b", "k", ""), testCreds(), testNow))
	wantCode(t, err, s3err.SignatureDoesNotMatch)
	rotated := testCreds()
	rotated.SecretAccessKey = "rotated"
	if _, err := v.Verify(signedGet(t, objectURL("b", "k", ""), rotated, testNow)); err != nil {
		t.Fatalf("rotated secret: %v", err)
	}
}

// TestVerifyWith checks that a per-request lookup is the one consulted,
// that its error comes back unchanged, and that one Verifier keeps its
// derived keys across requests verified with different lookups.
func TestVerifyWith(t *testing.T) {
	v := &Verifier{Now: func() time.Time { return testNow }}
	calls := 0
	lookup := func(ak string) (string, string, error) {
		calls++
		if ak != testAK {
			return "", "", s3err.New(s3err.InvalidAccessKeyID, "unknown")
		}
		return testSecret, testToken, nil
	}
	for i := range 3 {
		a, err := v.VerifyWith(signedGet(t, objectURL("b", "k", ""), testCreds(), testNow), lookup)
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		if a.AccessKeyID != testAK {
			t.Fatalf("AccessKeyID = %q", a.AccessKeyID)
		}
	}
	if calls != 3 {
		t.Fatalf("lookup called %d times, want 3", calls)
	}
	v.keys.mu.Lock()
	n := len(v.keys.m)
	v.keys.mu.Unlock()
	if n != 1 {
		t.Fatalf("%d cached keys after three requests under one scope, want 1", n)
	}
	wrong := func(string) (string, string, error) { return "not-the-secret", testToken, nil }
	_, err := v.VerifyWith(signedGet(t, objectURL("b", "k", ""), testCreds(), testNow), wrong)
	wantCode(t, err, s3err.SignatureDoesNotMatch)
	sentinel := s3err.New(s3err.ExpiredToken, "gone")
	_, err = v.VerifyWith(signedGet(t, objectURL("b", "k", ""), testCreds(), testNow), func(string) (string, string, error) { return "", "", sentinel })
	if err != sentinel {
		t.Fatalf("lookup's error came back as %v", err)
	}
	if _, err := v.Verify(signedGet(t, objectURL("b", "k", ""), testCreds(), testNow)); err == nil {
		t.Fatal("a Verifier without Lookup verified a request")
	}
}

// TestCheckedAt: an Auth carries the Verifier's clock reading its
// signature's time was checked against, header-signed and presigned
// alike, for a caller to judge the credential's life at without reading
// the clock again (awsgw's authenticate).
func TestCheckedAt(t *testing.T) {
	now := testNow.Add(3 * time.Second) // not the signature's time
	reads := 0
	v := testVerifier()
	v.Now = func() time.Time { reads++; return now }

	r := newReq(t, "GET", objectURL("logs", "app/one.log", ""), nil)
	signHeader(t, r, sha256Hex(nil), testCreds(), testNow)
	a, err := v.Verify(onWire(t, r))
	if err != nil {
		t.Fatal(err)
	}
	if !a.CheckedAt.Equal(now) || a.SignedAt.Equal(now) || reads != 1 {
		t.Errorf("header: CheckedAt %v, SignedAt %v, %d reads; want CheckedAt %v after one read", a.CheckedAt, a.SignedAt, reads, now)
	}

	reads = 0
	p := newReq(t, "GET", objectURL("logs", "app/one.log", "X-Amz-Expires=3600"), nil)
	signed, _, err := s3Signer().PresignHTTP(context.Background(), testCreds(), p, unsignedPayload, "s3", testRegion, testNow)
	if err != nil {
		t.Fatal(err)
	}
	if a, err = v.Verify(onWire(t, newReq(t, "GET", signed, nil))); err != nil {
		t.Fatal(err)
	}
	if !a.CheckedAt.Equal(now) || !a.Presigned || reads != 1 {
		t.Errorf("presigned: CheckedAt %v, presigned %v, %d reads; want CheckedAt %v after one read", a.CheckedAt, a.Presigned, reads, now)
	}
}
