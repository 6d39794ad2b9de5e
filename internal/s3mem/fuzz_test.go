package s3mem

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

func FuzzParseRange(f *testing.F) {
	for _, s := range []string{"bytes=0-1", "bytes=5-", "bytes=-3", "bytes=1-0", "bytes=-", "bytes=0-1,2-3", "bytes= 1-2"} {
		f.Add(s, uint32(10))
	}
	f.Fuzz(func(t *testing.T, h string, size uint32) {
		r, ok, unsat := parseRange(h, int64(size))
		if ok && unsat {
			t.Fatal("both a range and unsatisfiable")
		}
		if ok && (r.start < 0 || r.end < r.start || r.end >= int64(size)) {
			t.Fatalf("range %v outside an object of %d bytes", r, size)
		}
		if cr, ok := parseCopyRange(h, int64(size)); ok && (cr.start < 0 || cr.end < cr.start || cr.end >= int64(size)) {
			t.Fatalf("copy range %v outside %d bytes", cr, size)
		}
	})
}

// FuzzListPage checks that paging through a listing, however small the
// pages, yields exactly the entries of one big page, in order.
func FuzzListPage(f *testing.F) {
	f.Add("a\nb/1\nb/2\nb/c/3\nc", "", "/", uint8(1))
	f.Add("x/y/z\nx/y\nx//\nx", "x", "/", uint8(2))
	f.Add("aa\nab\nb", "a", "b", uint8(1))
	f.Fuzz(func(t *testing.T, joined, prefix, delim string, max uint8) {
		seen := map[string]bool{}
		var keys []string
		for _, k := range strings.Split(joined, "\n") {
			if !seen[k] && k != "" {
				seen[k] = true
				keys = append(keys, k)
			}
		}
		sort.Strings(keys)
		whole := listPage(keys, prefix, delim, "", len(keys)+1)
		if whole.truncated {
			t.Fatal("a page larger than the bucket is truncated")
		}
		n := int(max%8) + 1
		var got listing
		after := ""
		for pages := 0; ; pages++ {
			if pages > len(keys)+1 {
				t.Fatal("paging does not end")
			}
			p := listPage(keys, prefix, delim, after, n)
			if len(p.keys)+len(p.prefixes) > n || p.truncated && len(p.keys)+len(p.prefixes) == 0 {
				t.Fatalf("page of %d keys %d prefixes for max %d, truncated %v", len(p.keys), len(p.prefixes), n, p.truncated)
			}
			got.keys = append(got.keys, p.keys...)
			got.prefixes = append(got.prefixes, p.prefixes...)
			if !p.truncated {
				break
			}
			after = p.last
		}
		if !reflect.DeepEqual(got.keys, whole.keys) || !reflect.DeepEqual(got.prefixes, whole.prefixes) {
			t.Fatalf("paged by %d: %q %q; whole: %q %q", n, got.keys, got.prefixes, whole.keys, whole.prefixes)
		}
	})
}

// FuzzServeHTTP sends correctly signed requests of any shape: the server
// must never panic or fail internally, and its byte count must stay equal
// to what it holds.
func FuzzServeHTTP(f *testing.F) {
	seeds := []struct{ method, target, body, hdr string }{
		{"GET", "/logs?list-type=2&prefix=a&delimiter=/&max-keys=1&encoding-type=url", "", ""},
		{"GET", "/logs/a/b", "", "Range: bytes=1-2"},
		{"PUT", "/logs/new", "data", "Content-MD5: xx"},
		{"PUT", "/logs/copy", "", "x-amz-copy-source: logs/a/b"},
		{"POST", "/logs?delete", "<Delete><Object><Key>a/b</Key></Object></Delete>", ""},
		{"POST", "/logs/m?uploads", "", "x-amz-tagging: a=1"},
		{"POST", "/logs/m?uploadId=x", "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>x</ETag></Part></CompleteMultipartUpload>", ""},
		{"PUT", "/logs/a/b?tagging", "<Tagging><TagSet><Tag><Key>k</Key><Value>v</Value></Tag></TagSet></Tagging>", ""},
		{"PUT", "/newbucket", "<CreateBucketConfiguration><LocationConstraint>eu-west-1</LocationConstraint></CreateBucketConfiguration>", ""},
		{"GET", "/logs?versioning", "", ""},
		{"PUT", "/logs/m?partNumber=1&uploadId=UPLOAD", "part", ""},
		{"PUT", "/logs/m?partNumber=2&uploadId=UPLOAD", "", "x-amz-copy-source: /logs/a/b"},
		{"GET", "/logs/m?uploadId=UPLOAD&max-parts=1", "", ""},
		{"DELETE", "/logs/m?uploadId=UPLOAD", "", ""},
	}
	for _, s := range seeds {
		f.Add(s.method, s.target, s.body, s.hdr)
	}
	creds := aws.Credentials{AccessKeyID: testAK, SecretAccessKey: testSK}
	signer := v4.NewSigner()
	f.Fuzz(func(t *testing.T, method, target, body, hdr string) {
		srv := New(testAK, testSK)
		srv.SetMaxBytes(1 << 16)
		srv.Put("logs", "a/b", []byte("hello"))
		id, _ := srv.st.createUpload("logs", "m", meta{})
		target = strings.ReplaceAll(target, "UPLOAD", id)
		req, err := http.NewRequest(method, "http://127.0.0.1"+target, strings.NewReader(body))
		if err != nil || req.URL.Host != "127.0.0.1" || !strings.HasPrefix(target, "/") {
			return
		}
		if k, v, ok := strings.Cut(hdr, ":"); ok {
			k = strings.TrimSpace(k)
			if k == "" || strings.ContainsAny(k+v, "\r\n\x00") || strings.EqualFold(k, "Authorization") || strings.HasPrefix(strings.ToLower(k), "x-amz-content") || strings.HasPrefix(strings.ToLower(k), "x-amz-date") {
				return
			}
			req.Header.Set(k, strings.TrimSpace(v))
		}
		sum := sha256.Sum256([]byte(body))
		hash := hex.EncodeToString(sum[:])
		req.Header.Set("x-amz-content-sha256", hash)
		if err := signer.SignHTTP(context.Background(), creds, req, hash, "s3", "us-east-1", time.Now()); err != nil {
			return
		}
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, req)
		if testing.Verbose() {
			t.Logf("%s %s -> %d", method, target, rec.Code)
		}
		if rec.Code >= 500 && rec.Code != http.StatusNotImplemented {
			t.Fatalf("%s %s: status %d %s", method, target, rec.Code, rec.Body)
		}
		srv.st.mu.Lock()
		defer srv.st.mu.Unlock()
		var held int64
		for _, b := range srv.st.buckets {
			for _, o := range b.objects {
				held += int64(len(o.data))
			}
			for _, u := range b.uploads {
				for _, p := range u.parts {
					held += int64(len(p.data))
				}
			}
		}
		if held != srv.st.used || held > srv.st.max {
			t.Fatalf("used %d, held %d, max %d", srv.st.used, held, srv.st.max)
		}
	})
}
