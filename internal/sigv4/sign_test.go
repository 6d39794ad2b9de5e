package sigv4

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
)

// signCase is a request as the AWS gateway sends one upstream.
type signCase struct {
	name, method, path, rawPath, query string
	header                             http.Header
	length                             int64
	token                              string
}

var signCases = []signCase{
	{name: "get", method: "GET", path: "/logs/app/obj", header: http.Header{
		"X-Amz-Content-Sha256": {"UNSIGNED-PAYLOAD"}, "Range": {"bytes=0-99"}, "User-Agent": {"aws-sdk-go-v2/1.0"},
		"Amz-Sdk-Invocation-Id": {"3f7a"}, "Amz-Sdk-Request": {"attempt=1; max=3"}, "Accept-Encoding": {"identity"}}},
	{name: "put", method: "PUT", path: "/logs/app/obj", length: 1024, header: http.Header{
		"X-Amz-Content-Sha256": {"a591a6d40bf420404a011733cfb7b190d62c65bf0bcda32b57b277d9ad9f146e"},
		"Content-Type":         {"text/plain"}, "X-Amz-Meta-Note": {"  two   spaces  "}, "X-Amz-Meta-Multi": {"a", "b"},
		"X-Amz-Checksum-Crc32": {"AAAAAA=="}, "Expect": {"100-continue"}}},
	{name: "list", method: "GET", path: "/logs", query: "list-type=2&prefix=app%2Fx%20y&delimiter=%2F&max-keys=10&continuation-token=a%2Bb%3D%3D",
		header: http.Header{"X-Amz-Content-Sha256": {"UNSIGNED-PAYLOAD"}}},
	{name: "bare-params", method: "POST", path: "/logs", query: "delete", length: 10,
		header: http.Header{"X-Amz-Content-Sha256": {"UNSIGNED-PAYLOAD"}, "Content-Md5": {"abc=="}}},
	{name: "escaped-path", method: "GET", path: "/logs/a b/c+d/ü", rawPath: "/logs/a%20b/c%2Bd/%C3%BC",
		header: http.Header{"X-Amz-Content-Sha256": {"UNSIGNED-PAYLOAD"}}},
	{name: "token", method: "HEAD", path: "/logs/app/obj", token: "FwoGZXIvYXdzE+token/with=chars",
		header: http.Header{"X-Amz-Content-Sha256": {"UNSIGNED-PAYLOAD"}}},
	{name: "upload-part", method: "PUT", path: "/logs/app/big", query: "uploadId=2~abc.def_-&partNumber=3", length: 5,
		header: http.Header{"X-Amz-Content-Sha256": {"UNSIGNED-PAYLOAD"}}},
}

func (sc signCase) request(t *testing.T) *http.Request {
	t.Helper()
	u := &url.URL{Scheme: "http", Host: "upstream.test:9000", Path: sc.path, RawPath: sc.rawPath, RawQuery: sc.query}
	req, err := http.NewRequest(sc.method, u.String(), nil)
	if err != nil {
		t.Fatal(err)
	}
	req.URL = u
	req.Header = sc.header.Clone()
	req.ContentLength = sc.length
	return req
}

// TestSignMatchesSDK signs the same requests with Signer and with the AWS
// SDK's signer (as the gateway configured it) and wants the very same
// Authorization header and query.
func TestSignMatchesSDK(t *testing.T) {
	var s Signer
	at := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	for _, tc := range signCases {
		t.Run(tc.name, func(t *testing.T) {
			creds := Credentials{AccessKeyID: "AKIDUPSTREAM", SecretAccessKey: "upstream/secret+key", SessionToken: tc.token}
			for range 2 { // the second time from the key cache
				ours := tc.request(t)
				if err := s.Sign(ours, creds, "eu-west-1", "s3", ours.Header.Get("X-Amz-Content-Sha256"), at); err != nil {
					t.Fatal(err)
				}
				sdk := tc.request(t)
				if err := s3Signer().SignHTTP(context.Background(), aws.Credentials{AccessKeyID: creds.AccessKeyID, SecretAccessKey: creds.SecretAccessKey, SessionToken: creds.SessionToken},
					sdk, sdk.Header.Get("X-Amz-Content-Sha256"), "s3", "eu-west-1", at); err != nil {
					t.Fatal(err)
				}
				if got, want := ours.Header.Get("Authorization"), sdk.Header.Get("Authorization"); got != want {
					t.Fatalf("Authorization\n got %s\nwant %s", got, want)
				}
				if ours.URL.RawQuery != sdk.URL.RawQuery {
					t.Fatalf("query %q, the SDK's %q", ours.URL.RawQuery, sdk.URL.RawQuery)
				}
				for _, h := range []string{"X-Amz-Date", "X-Amz-Security-Token"} {
					if ours.Header.Get(h) != sdk.Header.Get(h) {
						t.Fatalf("%s = %q, the SDK's %q", h, ours.Header.Get(h), sdk.Header.Get(h))
					}
				}
			}
		})
	}
}

// What Signer signs, the Verifier accepts; and it refuses it once any
// signed part changes.
func TestSignVerifies(t *testing.T) {
	var s Signer
	at := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	const ak, secret = "AKIDUPSTREAM", "upstream/secret+key"
	for _, tc := range signCases {
		t.Run(tc.name, func(t *testing.T) {
			v := &Verifier{Now: func() time.Time { return at }, Lookup: func(string) (string, string, error) { return secret, tc.token, nil }}
			req := tc.request(t)
			if err := s.Sign(req, Credentials{ak, secret, tc.token}, "eu-west-1", "s3", req.Header.Get("X-Amz-Content-Sha256"), at); err != nil {
				t.Fatal(err)
			}
			if _, err := v.Verify(req); err != nil {
				t.Fatalf("the signed request does not verify: %v", err)
			}
			if !strings.Contains(req.Header.Get("Authorization"), "SignedHeaders=") || strings.Contains(req.Header.Get("Authorization"), "user-agent") {
				t.Fatalf("Authorization = %q", req.Header.Get("Authorization"))
			}
			tampered := req.Clone(context.Background())
			tampered.Method = "DELETE"
			_, err := v.Verify(tampered)
			wantCode(t, err, "SignatureDoesNotMatch")
			tampered = req.Clone(context.Background())
			tampered.Header.Set("X-Amz-Content-Sha256", strings.Repeat("0", 64))
			_, err = v.Verify(tampered)
			wantCode(t, err, "SignatureDoesNotMatch")
		})
	}
}

func TestSignRefuses(t *testing.T) {
	var s Signer
	req := signCases[0].request(t)
	if err := s.Sign(req, Credentials{AccessKeyID: "AK"}, "us-east-1", "s3", unsignedPayload, time.Now()); err == nil {
		t.Fatal("signed without a secret")
	}
	req.URL.RawQuery = "a=%zz"
	if err := s.Sign(req, Credentials{"AK", "SK", ""}, "us-east-1", "s3", unsignedPayload, time.Now()); err == nil {
		t.Fatal("signed a malformed query")
	}
}

// TestKeyCacheSign checks the cache's reused HMAC states against a fresh
// crypto/hmac for every message length around a block, over one entry
// used again and again, and that a rotated secret gets its own key.
func TestKeyCacheSign(t *testing.T) {
	var c keyCache
	sc := &scratch{}
	cr := credentials{accessKey: "AK", date: "20261203", region: "us-east-1", service: "s3", scope: "20261203/us-east-1/s3/aws4_request"}
	for _, secret := range []string{"SK1", "SK2"} {
		want := deriveKey(secret, cr.date, cr.region, cr.service)
		for range 3 {
			for _, n := range []int{0, 1, 55, 56, 64, 65, 150, 1000} {
				msg := []byte(strings.Repeat("m", n))
				m := hmac.New(sha256.New, want[:])
				m.Write(msg)
				key, sig := c.sign(secret, &cr, sc, msg)
				if key != want {
					t.Fatalf("secret %s: key %x, want %x", secret, key, want)
				}
				if !bytes.Equal(sig[:], m.Sum(nil)) {
					t.Fatalf("secret %s, len %d: signature %x, want %x", secret, n, sig, m.Sum(nil))
				}
			}
		}
	}
}

// TestVerifySignAllocs bounds the allocations of the two signatures every
// gateway call costs, one verified and one made: with the signing key
// cached and its HMAC state reused, a verification allocates its Auth
// (which holds a short signed-header list; a plain body needs no payload
// state of its own), and a signature the backing array of its header
// values and the Authorization string.
func TestVerifySignAllocs(t *testing.T) {
	if raceOn {
		t.Skip("allocation bounds hold only without the race detector")
	}
	req := newReq(t, "GET", objectURL("logs", "app/2025/06/01/server.log", ""), nil)
	req.Header.Set("User-Agent", "aws-sdk-go-v2/1.0 os/linux")
	signHeader(t, req, sha256Hex(nil), testCreds(), testNow)
	r := onWire(t, req)
	v := testVerifier()
	if _, err := v.Verify(r); err != nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(100, func() { _, _ = v.Verify(r) }); n > 1 {
		t.Errorf("Verify: %.0f allocations, want at most 1", n)
	}
	var s Signer
	up := newReq(t, "GET", objectURL("logs", "app/2025/06/01/server.log", ""), nil)
	up.Header.Set(hContentSHA256, unsignedPayload)
	creds := Credentials{AccessKeyID: "AKUP", SecretAccessKey: "SKUP"}
	if err := s.Sign(up, creds, "us-east-1", "s3", unsignedPayload, time.Now()); err != nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(100, func() { _ = s.Sign(up, creds, "us-east-1", "s3", unsignedPayload, time.Now()) }); n > 2 {
		t.Errorf("Sign: %.0f allocations, want at most 2", n)
	}
	// With the header values kept in the caller's room, the Authorization
	// string alone.
	var room [3]string
	if n := testing.AllocsPerRun(100, func() { _ = s.SignIn(up, creds, "us-east-1", "s3", unsignedPayload, time.Now(), &room) }); n > 1 {
		t.Errorf("SignIn: %.0f allocations, want at most 1", n)
	}
}

// TestSignInSameAsSign: SignIn sets the very headers and query Sign sets,
// whatever its room held before, with a session token or without; the
// values it keeps in the room are apart, as Sign's are.
func TestSignInSameAsSign(t *testing.T) {
	var s Signer
	at := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	for _, tc := range signCases {
		for _, token := range []string{"", "TOKEN"} {
			creds := Credentials{AccessKeyID: "AKIDUPSTREAM", SecretAccessKey: "upstream/secret+key", SessionToken: token}
			want, got := tc.request(t), tc.request(t)
			if err := s.Sign(want, creds, "eu-west-1", "s3", want.Header.Get("X-Amz-Content-Sha256"), at); err != nil {
				t.Fatal(err)
			}
			room := [3]string{"stale", "stale", "stale"}
			if err := s.SignIn(got, creds, "eu-west-1", "s3", got.Header.Get("X-Amz-Content-Sha256"), at, &room); err != nil {
				t.Fatal(err)
			}
			if !maps.EqualFunc(got.Header, want.Header, slices.Equal[[]string]) || got.URL.RawQuery != want.URL.RawQuery {
				t.Fatalf("%s: SignIn set %v %q, Sign %v %q", tc.name, got.Header, got.URL.RawQuery, want.Header, want.URL.RawQuery)
			}
			if room[0] != got.Header.Get(hAmzDate) || room[1] != got.Header.Get(hAuthorization) || room[2] != token {
				t.Fatalf("%s: room %q", tc.name, room)
			}
			authz := got.Header.Get(hAuthorization)
			got.Header.Add(hAmzDate, "x")
			if got.Header.Get(hAuthorization) != authz || token != "" && got.Header.Get(hSecurityToken) != token {
				t.Fatalf("%s: appending to one header value changed another: %q", tc.name, got.Header)
			}
		}
	}
}

// TestAppendHeaderValue: values trimmed, inner runs of spaces collapsed
// (the path that scans byte by byte), others copied whole, joined by ",".
func TestAppendHeaderValue(t *testing.T) {
	for _, c := range []struct {
		in   []string
		want string
	}{
		{[]string{"plain"}, "plain"},
		{[]string{" a  b   c "}, "a b c"},
		{[]string{"a b", "\tc  d\t", ""}, "a b,c d,"},
		{[]string{"x\t\ty"}, "x\t\ty"},
		{[]string{"a b  c", "ab  ", "a b c", "a  ", " a", "a  b"}, "a b c,ab,a b c,a,a,a b"},
	} {
		if got := string(appendHeaderValue([]byte("k:"), c.in)); got != "k:"+c.want {
			t.Errorf("%q: %q, want %q", c.in, got, "k:"+c.want)
		}
	}
}

// TestSignHeaderValuesApart: the header values Sign sets share one array,
// so an append to one must not change another.
func TestSignHeaderValuesApart(t *testing.T) {
	var s Signer
	up := newReq(t, "GET", objectURL("logs", "k", ""), nil)
	up.Header.Set(hContentSHA256, unsignedPayload)
	if err := s.Sign(up, Credentials{AccessKeyID: "AKUP", SecretAccessKey: "SKUP", SessionToken: "TOKEN"}, "us-east-1", "s3", unsignedPayload, time.Now()); err != nil {
		t.Fatal(err)
	}
	date, authz, token := up.Header.Get(hAmzDate), up.Header.Get(hAuthorization), up.Header.Get(hSecurityToken)
	up.Header.Add(hAmzDate, "x")
	up.Header.Add(hAuthorization, "y")
	if up.Header.Get(hAuthorization) != authz || up.Header.Get(hSecurityToken) != token || token != "TOKEN" {
		t.Fatalf("appending to one header value changed another: %q", up.Header)
	}
	if v := up.Header.Values(hAmzDate); len(v) != 2 || v[0] != date {
		t.Fatalf("X-Amz-Date values %q", v)
	}
}

// The names splitSignedHeaders gives a list it accepts are
// strings.Split's, in a room of eight and past it.
func TestSplitSignedHeadersMatchesSplit(t *testing.T) {
	for _, s := range []string{"host", "host;x-amz-date",
		"amz-sdk-invocation-id;amz-sdk-request;host;x-amz-content-sha256;x-amz-date;xa;xb;xc;xd;xe"} {
		var room [8]string
		got, msg := splitSignedHeaders(s, room[:0])
		if want := strings.Split(s, ";"); msg != "" || !slices.Equal(got, want) {
			t.Errorf("splitSignedHeaders(%q) = %q, %q, want %q", s, got, msg, want)
		}
	}
}

// Sign takes the values of a signNames key from its map entry as it
// iterates, where headerValues would look them up under
// canonicalKey(name): the same entry only if every key there is in that
// canonical form. The unsigned headers are there with "", and no other.
func TestSignNamesCanonical(t *testing.T) {
	unsigned := 0
	for k, l := range signNames {
		if l == "" {
			if !slices.Contains(unsignedHeaders, k) {
				t.Errorf("signNames[%q] is empty: %q would be left unsigned", k, k)
			}
			unsigned++
			continue
		}
		if got := string(canonicalKey(nil, l)); got != k || l != strings.ToLower(k) {
			t.Errorf("signNames[%q] = %q, whose canonical key is %q", k, l, got)
		}
	}
	if unsigned != len(unsignedHeaders) {
		t.Errorf("%d of the %d unsigned headers are in signNames", unsigned, len(unsignedHeaders))
	}
}

// A header map built by hand may hold keys that differ only in case, a
// known name's among them: Sign signs each name once, with the values the
// verifier reads for it, so what it signs verifies.
func TestSignCaseDuplicates(t *testing.T) {
	var s Signer
	req := signCase{method: "PUT", path: "/logs/app/obj", length: 3, header: http.Header{
		"X-Amz-Content-Sha256": {"UNSIGNED-PAYLOAD"}, "X-Amz-Acl": {"private"}, "x-amz-acl": {"public-read"},
		"X-Amz-Meta-A": {"1"}, "x-amz-meta-a": {"2"}, "Content-Type": {"text/plain"}}}.request(t)
	c := testCreds()
	if err := s.Sign(req, Credentials{AccessKeyID: c.AccessKeyID, SecretAccessKey: c.SecretAccessKey, SessionToken: c.SessionToken}, "us-east-1", "s3", unsignedPayload, testNow); err != nil {
		t.Fatal(err)
	}
	if got, want := req.Header.Get("Authorization"), "SignedHeaders=content-length;content-type;host;x-amz-acl;x-amz-content-sha256;x-amz-date;x-amz-meta-a;x-amz-security-token,"; !strings.Contains(got, want) {
		t.Fatalf("Authorization %q, want it to hold %q", got, want)
	}
	if _, err := testVerifier().Verify(req); err != nil {
		t.Fatalf("the signed request does not verify: %v", err)
	}
}

// BenchmarkSign signs a GetObject as the gateway sends one upstream (the
// "get" case: an SDK's headers less its authentication), the signing key
// cached.
func BenchmarkSign(b *testing.B) {
	var s Signer
	t := &testing.T{}
	creds := Credentials{AccessKeyID: "AKIDUPSTREAM", SecretAccessKey: "upstream/secret+key"}
	req := signCases[0].request(t)
	b.ReportAllocs()
	for b.Loop() {
		if err := s.Sign(req, creds, "eu-west-1", "s3", unsignedPayload, testNow); err != nil {
			b.Fatal(err)
		}
	}
}

// appendOneValueWas is appendOneValue as it was: strings.Contains looked
// for a run of spaces in the whole trimmed value.
func appendOneValueWas(b []byte, v string) []byte {
	v = strings.TrimSpace(v)
	if !strings.Contains(v, "  ") {
		return append(b, v...)
	}
	space := false
	for j := 0; j < len(v); j++ {
		if v[j] == ' ' {
			if space {
				continue
			}
			space = true
		} else {
			space = false
		}
		b = append(b, v[j])
	}
	return b
}

// FuzzAppendOneValue holds appendOneValue, which looks for a run of
// spaces only from the first space on, to the form that looked in the
// whole value: an equivalence, passing without the cut too.
func FuzzAppendOneValue(f *testing.F) {
	for _, s := range []string{"", "plain", " a  b   c ", "a b  c", "a b c", "ab  ", "\u00a0a  b\u0085", strings.Repeat("t", 300)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		if got, want := appendOneValue([]byte("k:"), v), appendOneValueWas([]byte("k:"), v); !bytes.Equal(got, want) {
			t.Fatalf("appendOneValue(%q) = %q, want %q", v, got, want)
		}
	})
}

// FuzzSignName holds signName's table to the map signNames it is built
// from, for any key; TestSignName has every key of the map.
func FuzzSignName(f *testing.F) {
	for _, k := range []string{"", "User-Agent", "X-Amz-Date", "x-amz-date", "X-Amz-Datf", "Authorization", "\xff"} {
		f.Add(k)
	}
	f.Fuzz(func(t *testing.T, k string) {
		l, ok := signName(k)
		if wl, wok := signNames[k]; l != wl || ok != wok {
			t.Fatalf("signName(%q) = %q, %v; signNames has %q, %v", k, l, ok, wl, wok)
		}
	})
}

func TestSignName(t *testing.T) {
	for k, want := range signNames {
		if l, ok := signName(k); !ok || l != want {
			t.Errorf("signName(%q) = %q, %v, want %q, true", k, l, ok, want)
		}
	}
	for _, k := range []string{"", "x-amz-date", "X-Amz-Meta-A", "Host"} {
		if l, ok := signName(k); ok {
			t.Errorf("signName(%q) = %q, true for a key not in signNames", k, l)
		}
	}
	if 2*len(signNames) > signSlotCount {
		t.Errorf("signSlots has %d slots for %d names", signSlotCount, len(signNames))
	}
}
