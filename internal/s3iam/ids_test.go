package s3iam

import (
	"errors"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/airlock-dev/airlock/internal/s3err"
)

func TestCheckQueryID(t *testing.T) {
	long := strings.Repeat("a", MaxIDBytes)
	for _, tc := range []struct {
		name, value string
		ok          bool
	}{
		// Real ids: AWS (base64url-ish with . _ -), versitygw (UUID),
		// Ceph ("2~…"), base64 with + and =, "null" versions.
		{"uploadId", "VXBsb2FkIElEIGZvciA2aWWpbmcncyBteS1tb3ZpZS5tMnRzIHVwbG9hZA", true},
		{"uploadId", "exampleJZ7L7rt0g4s1wjY4mPi1KM6tF0yRGfGI0Wu3yZ6wt3RD0wGeP8ogJZ5n9v1BXZWUAkBsVTM5g_yGCM75Q9rBZ4jNgiOAW8GXvxumR7LMBQjt1SxtRfX0ZHAcADuM-", true},
		{"uploadId", "1f2f5d47-fd31-4e17-9a47-e11894131ca0", true},
		{"uploadId", "2~GUNu_JoXLOXlvW7kYqnobtaDyHcAI_N", true},
		{"versionId", "null", true},
		{"versionId", "IvE3ZXsHL4F.xCVgVKqRjWQoOmVJUrSa", true},
		{"versionId", "3sL4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY+MTRCxf3vjVBH40Nr8X8gdRQBpUMLUo=", true},
		{"uploadId", long, true},
		{"uploadId", long + "a", false},
		{"uploadId", "", false},
		{"uploadId", "..", false},
		{"uploadId", ".", false},
		{"uploadId", "../../../victimdir", false},
		{"uploadId", "..\\victim", false},
		{"uploadId", "a/b", false},
		{"uploadId", "abc\x00", false},
		{"uploadId", "abc\r\n", false},
		{"uploadId", "a b", false},
		{"uploadId", "é", false},
		{"versionId", "../v", false},
		{"upload-id-marker", "x/../y", false},
		{"version-id-marker", "..", false},
		{"partNumber", "1", true},
		{"partNumber", "10000", true},
		{"partNumber", "0", false},
		{"partNumber", "10001", false},
		{"partNumber", "07", false},
		{"partNumber", "+7", false},
		{"partNumber", "7 ", false},
		{"partNumber", "", false},
		{"part-number-marker", "0", true},
		{"part-number-marker", "9999", true},
		{"part-number-marker", "-1", false},
		{"part-number-marker", "../1", false},
		// Keys as markers: the key rules.
		{"marker", "app/x/y.log", true},
		{"marker", "", true},
		{"key-marker", "app/../secret", false},
		{"start-after", "app/\x1b[2K", false},
		{"start-after", "app\\x", false},
		// Continuation tokens: base64 with '/', or a key.
		{"continuation-token", "1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=", true},
		{"continuation-token", "//8=", true},
		{"continuation-token", "app/ü/a b", true},
		{"continuation-token", "app/../../etc", false},
		{"continuation-token", "..", false},
		{"continuation-token", "a\\b", false},
		{"continuation-token", "a\x00", false},
		{"continuation-token", "\xff", false},
		{"continuation-token", strings.Repeat("a", MaxTokenBytes+1), false},
		// Not an identifier: not checked here.
		{"prefix", "../x", true},
	} {
		err := CheckQueryID(tc.name, tc.value)
		if (err == nil) != tc.ok {
			t.Errorf("CheckQueryID(%s, %q) = %v, want ok=%v", tc.name, tc.value, err, tc.ok)
			continue
		}
		if err != nil {
			var e *s3err.Error
			if !errors.As(err, &e) || e.Code != s3err.InvalidArgument || e.Status != 400 {
				t.Errorf("CheckQueryID(%s, %q): %#v, want InvalidArgument 400", tc.name, tc.value, err)
			}
			if strings.ContainsAny(e.Message, "\x00\r\n\x1b") {
				t.Errorf("the message echoes a control character: %q", e.Message)
			}
		}
	}
}

// Every identifier is refused by Map itself, with InvalidArgument, so the
// gateway never records or forwards it: the query, the copy source's
// versionId and DeleteObjects' <VersionId>.
func TestMapRefusesBadIdentifiers(t *testing.T) {
	m := &Mapper{}
	for _, tc := range []struct {
		method, target string
		header         map[string]string
	}{
		{"DELETE", "/logs/app/rt/x?uploadId=..%2F..%2F..%2Fvictimdir", nil},
		{"PUT", "/logs/app/rt/x?partNumber=7&uploadId=../../../victim3", nil},
		{"PUT", "/logs/app/rt/x?partNumber=0&uploadId=u1", nil},
		{"GET", "/logs/app/rt/x?uploadId=u1&part-number-marker=..", nil},
		{"POST", "/logs/app/rt/x?uploadId=..", nil},
		{"GET", "/logs/app/rt/x?versionId=..%5Cv", nil},
		{"DELETE", "/logs/app/rt/x?versionId=a%2F..%2Fb", nil},
		{"GET", "/logs?list-type=2&prefix=app/&continuation-token=app%2F..%2F..%2Fx", nil},
		{"GET", "/logs?prefix=app/&marker=app%2F..%2Fx", nil},
		{"GET", "/logs?versions&prefix=app/&version-id-marker=..%2Fv", nil},
		{"GET", "/logs?uploads&prefix=app/&upload-id-marker=%2E%2E", nil},
		{"PUT", "/logs/app/c", map[string]string{"X-Amz-Copy-Source": "/logs/app/a?versionId=..%2F..%2Fv"}},
		{"PUT", "/logs/app/c?partNumber=1&uploadId=u1", map[string]string{"X-Amz-Copy-Source": "/logs/app/a?versionId=%00"}},
	} {
		r := httptest.NewRequest(tc.method, "http://s3.test"+tc.target, nil)
		for k, v := range tc.header {
			r.Header.Set(k, v)
		}
		_, err := m.Map(r)
		var e *s3err.Error
		if !errors.As(err, &e) || e.Code != s3err.InvalidArgument {
			t.Errorf("%s %s %v: %v, want InvalidArgument", tc.method, tc.target, tc.header, err)
		}
	}
	body := `<Delete><Object><Key>app/a</Key><VersionId>../../v</VersionId></Object></Delete>`
	op, err := m.Map(httptest.NewRequest("POST", "http://s3.test/logs?delete", nil))
	if err != nil {
		t.Fatal(err)
	}
	var e *s3err.Error
	if err := op.AddBodyChecks([]byte(body)); !errors.As(err, &e) || e.Code != s3err.InvalidArgument {
		t.Errorf("DeleteObjects with a <VersionId> path: %v", err)
	}
}

// FuzzCheckQueryID checks what an accepted identifier can and cannot do:
// joined to a directory it never leaves it (for an opaque id, it is one
// direct child), it has no control characters, and it is bounded.
func FuzzCheckQueryID(f *testing.F) {
	for _, s := range []string{"uploadId\x00../../x", "uploadId\x00VXBsb2Fk-_.~=+", "versionId\x00null", "partNumber\x0010000",
		"part-number-marker\x000", "continuation-token\x001ueGcx/wm3=", "continuation-token\x00a/./b", "start-after\x00app/x",
		"key-marker\x00app/..", "uploadId\x00..", "uploadId\x00.", "uploadId\x00a\\b", "partNumber\x00007"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		name, value, _ := strings.Cut(in, "\x00")
		err := CheckQueryID(name, value)
		if err != nil {
			var e *s3err.Error
			if !errors.As(err, &e) || e.Code != s3err.InvalidArgument {
				t.Fatalf("error %#v is not InvalidArgument", err)
			}
			return
		}
		kind := idParams[name]
		if kind == 0 {
			return
		}
		if kind == idPartNumber || kind == idPartMarker {
			n, aerr := strconv.Atoi(value)
			if aerr != nil || strconv.Itoa(n) != value || n > 10000 || n < 0 || (kind == idPartNumber && n < 1) {
				t.Fatalf("%s %q accepted", name, value)
			}
			return
		}
		if len(value) > MaxTokenBytes || !utf8.ValidString(value) || strings.ContainsAny(value, "\\\x00\r\n\x7f") {
			t.Fatalf("%s %q accepted", name, value)
		}
		for _, c := range []byte(value) {
			if c < 0x20 {
				t.Fatalf("%s %q with a control byte accepted", name, value)
			}
		}
		const dir = "/data/bucket/.sgwtmp/multipart/hash"
		joined := filepath.Join(dir, value)
		if joined != dir && !strings.HasPrefix(joined, dir+"/") {
			t.Fatalf("%s %q joined to %s gives %s", name, value, dir, joined)
		}
		if kind == idOpaque && filepath.Dir(joined) != dir {
			t.Fatalf("upload/version id %q is not one path element: %s", value, joined)
		}
	})
}
