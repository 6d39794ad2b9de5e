package s3iam_test

import (
	"bufio"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/airlock-dev/airlock/internal/s3err"
	"github.com/airlock-dev/airlock/internal/s3iam"
	"github.com/airlock-dev/airlock/internal/scope"
)

// rawRequest parses a request exactly as net/http's server would: from
// the request line and headers on the wire.
func rawRequest(t testing.TB, method, target, host string, headers ...string) *http.Request {
	t.Helper()
	var b strings.Builder
	b.WriteString(method + " " + target + " HTTP/1.1\r\nHost: " + host + "\r\n")
	for _, h := range headers {
		b.WriteString(h + "\r\n")
	}
	b.WriteString("\r\n")
	r, err := http.ReadRequest(bufio.NewReader(strings.NewReader(b.String())))
	if err != nil {
		t.Fatalf("ReadRequest(%s %s): %v", method, target, err)
	}
	return r
}

// appGrant is the walkthrough's grant, plus writes and listing under the
// same prefix, to show what each trick would reach.
func appGrant(t *testing.T) scope.Scope {
	t.Helper()
	sc, err := scope.Parse([]string{
		"s3:GetObject,s3:PutObject,s3:DeleteObject,s3:ListBucket arn:aws:s3:::logs/app/*",
	})
	if err != nil {
		t.Fatal(err)
	}
	return sc
}

func allowed(sc scope.Scope, op *s3iam.Op) bool {
	if len(op.Checks) == 0 {
		return false
	}
	for _, c := range op.Checks {
		if !c.AllowedBy(sc) {
			return false
		}
	}
	return true
}

func TestAdversarial(t *testing.T) {
	m := &s3iam.Mapper{Hosts: []string{"s3.test", "localhost"}}
	sc := appGrant(t)
	tests := []struct {
		name         string
		method       string
		target, host string
		headers      []string
		code         string // expected error code, or "" for success
		op, bucket   string
		key          string
		checks       []s3iam.Check
		allowed      bool // whether appGrant allows the op
	}{
		{name: "plain read inside the prefix", method: "GET", target: "/logs/app/a.log", host: "s3.test",
			op: "GetObject", bucket: "logs", key: "app/a.log", checks: []s3iam.Check{{Action: "s3:GetObject", Resource: "arn:aws:s3:::logs/app/a.log"}}, allowed: true},
		{name: "read outside the prefix", method: "GET", target: "/logs/secret/a.log", host: "s3.test",
			op: "GetObject", bucket: "logs", key: "secret/a.log", checks: []s3iam.Check{{Action: "s3:GetObject", Resource: "arn:aws:s3:::logs/secret/a.log"}}},
		{name: "raw dot-dot", method: "GET", target: "/logs/app/../secret/a.log", host: "s3.test", code: s3err.AccessDenied},
		{name: "encoded dot-dot", method: "GET", target: "/logs/app/%2e%2e/secret/a.log", host: "s3.test", code: s3err.AccessDenied},
		{name: "encoded dot-dot and slash", method: "GET", target: "/logs/app%2F%2E%2E%2Fsecret", host: "s3.test", code: s3err.AccessDenied},
		{name: "trailing dot-dot", method: "GET", target: "/logs/app/..", host: "s3.test", code: s3err.AccessDenied},
		{name: "dot segment", method: "GET", target: "/logs/app/./a.log", host: "s3.test", code: s3err.AccessDenied},
		{name: "dots inside a name are fine", method: "GET", target: "/logs/app/..a/b..", host: "s3.test",
			op: "GetObject", bucket: "logs", key: "app/..a/b..", checks: []s3iam.Check{{Action: "s3:GetObject", Resource: "arn:aws:s3:::logs/app/..a/b.."}}, allowed: true},
		{name: "overlong UTF-8 dots", method: "GET", target: "/logs/app/%C0%AE%C0%AE/secret", host: "s3.test", code: s3err.InvalidArgument},
		{name: "invalid UTF-8", method: "GET", target: "/logs/app/%FF", host: "s3.test", code: s3err.InvalidArgument},
		{name: "encoded surrogate", method: "GET", target: "/logs/app/%ED%A0%80", host: "s3.test", code: s3err.InvalidArgument},
		{name: "double slash after bucket", method: "GET", target: "/logs//app/a.log", host: "s3.test", code: s3err.AccessDenied},
		{name: "double slash in key", method: "GET", target: "/logs/app//a.log", host: "s3.test", code: s3err.AccessDenied},
		{name: "encoded slash is a slash", method: "GET", target: "/logs/app%2Fa.log", host: "s3.test",
			op: "GetObject", bucket: "logs", key: "app/a.log", checks: []s3iam.Check{{Action: "s3:GetObject", Resource: "arn:aws:s3:::logs/app/a.log"}}, allowed: true},
		{name: "double encoding is a literal %2F", method: "GET", target: "/logs/app%252Fa.log", host: "s3.test",
			op: "GetObject", bucket: "logs", key: "app%2Fa.log", checks: []s3iam.Check{{Action: "s3:GetObject", Resource: "arn:aws:s3:::logs/app%2Fa.log"}}},
		{name: "NUL", method: "GET", target: "/logs/app/a%00b", host: "s3.test", code: s3err.InvalidArgument},
		{name: "newline", method: "GET", target: "/logs/app/a%0Ab", host: "s3.test", code: s3err.InvalidArgument},
		{name: "DEL", method: "GET", target: "/logs/app/a%7Fb", host: "s3.test", code: s3err.InvalidArgument},
		{name: "C1 control", method: "GET", target: "/logs/app/a%C2%85b", host: "s3.test", code: s3err.InvalidArgument},
		{name: "encoded backslash", method: "GET", target: "/logs/app/..%5Csecret", host: "s3.test", code: s3err.InvalidArgument},
		{name: "literal plus", method: "GET", target: "/logs/app/a+b", host: "s3.test", code: s3err.InvalidArgument},
		{name: "encoded plus", method: "GET", target: "/logs/app/a%2Bb", host: "s3.test",
			op: "GetObject", bucket: "logs", key: "app/a+b", checks: []s3iam.Check{{Action: "s3:GetObject", Resource: "arn:aws:s3:::logs/app/a+b"}}, allowed: true},
		{name: "NFC kept as sent", method: "GET", target: "/logs/app/caf%C3%A9", host: "s3.test",
			op: "GetObject", bucket: "logs", key: "app/caf\u00e9", checks: []s3iam.Check{{Action: "s3:GetObject", Resource: "arn:aws:s3:::logs/app/caf\u00e9"}}, allowed: true},
		{name: "NFD kept as sent", method: "GET", target: "/logs/app/cafe%CC%81", host: "s3.test",
			op: "GetObject", bucket: "logs", key: "app/cafe\u0301", checks: []s3iam.Check{{Action: "s3:GetObject", Resource: "arn:aws:s3:::logs/app/cafe\u0301"}}, allowed: true},
		{name: "key too long", method: "GET", target: "/logs/app/" + strings.Repeat("a", 1021), host: "s3.test", code: "KeyTooLongError"},
		{name: "folder key", method: "PUT", target: "/logs/app/dir/", host: "s3.test",
			op: "PutObject", bucket: "logs", key: "app/dir/", checks: []s3iam.Check{{Action: "s3:PutObject", Resource: "arn:aws:s3:::logs/app/dir/"}}, allowed: true},

		// GetObject's response-* overrides become the upstream's response
		// headers: no control character may reach it.
		{name: "response override with NUL", method: "GET", target: "/logs/app/a.log?response-expires=a%00b", host: "s3.test", code: s3err.InvalidArgument},
		{name: "response override with CRLF", method: "GET", target: "/logs/app/a.log?response-content-type=a%0D%0AX-Injected:%201", host: "s3.test", code: s3err.InvalidArgument},
		{name: "response override with DEL", method: "HEAD", target: "/logs/app/a.log?response-content-disposition=a%7Fb", host: "s3.test", code: s3err.InvalidArgument},
		{name: "response override with a tab and UTF-8", method: "GET", target: "/logs/app/a.log?response-content-disposition=attachment%3B%09filename%3D%22caf%C3%A9%22", host: "s3.test",
			op: "GetObject", bucket: "logs", key: "app/a.log", checks: []s3iam.Check{{Action: "s3:GetObject", Resource: "arn:aws:s3:::logs/app/a.log"}}, allowed: true},

		// Buckets and hosts.
		{name: "bucket in host and path", method: "GET", target: "/other/a.log", host: "logs.s3.test",
			op: "GetObject", bucket: "logs", key: "other/a.log", checks: []s3iam.Check{{Action: "s3:GetObject", Resource: "arn:aws:s3:::logs/other/a.log"}}},
		{name: "foreign host is path-style", method: "GET", target: "/logs/app/a.log", host: "evil.com",
			op: "GetObject", bucket: "logs", key: "app/a.log", checks: []s3iam.Check{{Action: "s3:GetObject", Resource: "arn:aws:s3:::logs/app/a.log"}}, allowed: true},
		{name: "suffix trick is path-style", method: "GET", target: "/logs/app/a.log", host: "secret.s3.test.evil.com",
			op: "GetObject", bucket: "logs", key: "app/a.log", checks: []s3iam.Check{{Action: "s3:GetObject", Resource: "arn:aws:s3:::logs/app/a.log"}}, allowed: true},
		{name: "virtual host, case and port", method: "GET", target: "/app/a.log", host: "LOGS.S3.Test:8701",
			op: "GetObject", bucket: "logs", key: "app/a.log", checks: []s3iam.Check{{Action: "s3:GetObject", Resource: "arn:aws:s3:::logs/app/a.log"}}, allowed: true},
		{name: "virtual host trailing dot", method: "GET", target: "/app/a.log", host: "logs.localhost.",
			op: "GetObject", bucket: "logs", key: "app/a.log", checks: []s3iam.Check{{Action: "s3:GetObject", Resource: "arn:aws:s3:::logs/app/a.log"}}, allowed: true},
		{name: "dotted bucket in host", method: "GET", target: "/k", host: "my.logs.s3.test",
			op: "GetObject", bucket: "my.logs", key: "k", checks: []s3iam.Check{{Action: "s3:GetObject", Resource: "arn:aws:s3:::my.logs/k"}}},
		{name: "virtual host leading slash key", method: "GET", target: "//app/a.log", host: "logs.s3.test", code: s3err.AccessDenied},
		{name: "virtual host bucket listing", method: "GET", target: "/?list-type=2&prefix=app%2F", host: "logs.s3.test",
			op: "ListObjectsV2", bucket: "logs", checks: []s3iam.Check{{Action: "s3:ListBucket", Resource: "arn:aws:s3:::logs/app/*"}}, allowed: true},
		{name: "bad bucket in host", method: "GET", target: "/k", host: "a..b.s3.test", code: "InvalidBucketName"},
		{name: "short bucket in host", method: "GET", target: "/k", host: "ab.s3.test", code: "InvalidBucketName"},
		{name: "upper-case bucket in path", method: "GET", target: "/Logs/app/a.log", host: "s3.test", code: "InvalidBucketName"},
		{name: "encoded bucket in path", method: "GET", target: "/lo%67s/app/a.log", host: "s3.test", code: "InvalidBucketName"},
		{name: "IP address bucket", method: "GET", target: "/192.168.1.1/k", host: "s3.test", code: "InvalidBucketName"},
		{name: "IPv6 host is path-style", method: "GET", target: "/logs/app/a", host: "[::1]:8701",
			op: "GetObject", bucket: "logs", key: "app/a", checks: []s3iam.Check{{Action: "s3:GetObject", Resource: "arn:aws:s3:::logs/app/a"}}, allowed: true},

		// Copy sources.
		{name: "copy from outside the prefix", method: "PUT", target: "/logs/app/copy", host: "s3.test", headers: []string{"x-amz-copy-source: logs/secret/a.log"},
			op: "CopyObject", bucket: "logs", key: "app/copy", checks: []s3iam.Check{{Action: "s3:PutObject", Resource: "arn:aws:s3:::logs/app/copy"}, {Action: "s3:GetObject", Resource: "arn:aws:s3:::logs/secret/a.log"}}},
		{name: "copy from another bucket", method: "PUT", target: "/logs/app/copy", host: "s3.test", headers: []string{"x-amz-copy-source: /other/app/a.log"},
			op: "CopyObject", bucket: "logs", key: "app/copy", checks: []s3iam.Check{{Action: "s3:PutObject", Resource: "arn:aws:s3:::logs/app/copy"}, {Action: "s3:GetObject", Resource: "arn:aws:s3:::other/app/a.log"}}},
		{name: "copy within the prefix", method: "PUT", target: "/logs/app/copy", host: "s3.test", headers: []string{"x-amz-copy-source: /logs/app/a%20b%2Bc.log"},
			op: "CopyObject", bucket: "logs", key: "app/copy", checks: []s3iam.Check{{Action: "s3:PutObject", Resource: "arn:aws:s3:::logs/app/copy"}, {Action: "s3:GetObject", Resource: "arn:aws:s3:::logs/app/a b+c.log"}}, allowed: true},
		{name: "copy source dot-dot", method: "PUT", target: "/logs/app/copy", host: "s3.test", headers: []string{"x-amz-copy-source: logs/app/../secret"}, code: s3err.InvalidArgument},
		{name: "copy source encoded dot-dot", method: "PUT", target: "/logs/app/copy", host: "s3.test", headers: []string{"x-amz-copy-source: logs/app/%2E%2E/secret"}, code: s3err.InvalidArgument},
		{name: "copy source literal plus", method: "PUT", target: "/logs/app/copy", host: "s3.test", headers: []string{"x-amz-copy-source: logs/app/a+b"}, code: s3err.InvalidArgument},
		{name: "copy source extra query", method: "PUT", target: "/logs/app/copy", host: "s3.test", headers: []string{"x-amz-copy-source: logs/app/a?versionId=1&x=2"}, code: s3err.InvalidArgument},
		{name: "copy source encoded version", method: "PUT", target: "/logs/app/copy", host: "s3.test", headers: []string{"x-amz-copy-source: logs/app/a%3FversionId%3D1"}, code: s3err.InvalidArgument},
		{name: "copy source other query", method: "PUT", target: "/logs/app/copy", host: "s3.test", headers: []string{"x-amz-copy-source: logs/app/a?partNumber=1"}, code: s3err.InvalidArgument},
		{name: "copy source encoded bucket", method: "PUT", target: "/logs/app/copy", host: "s3.test", headers: []string{"x-amz-copy-source: logs%2Fapp/a"}, code: s3err.InvalidArgument},
		{name: "copy source no key", method: "PUT", target: "/logs/app/copy", host: "s3.test", headers: []string{"x-amz-copy-source: logs"}, code: s3err.InvalidArgument},
		{name: "copy source access point", method: "PUT", target: "/logs/app/copy", host: "s3.test", headers: []string{"x-amz-copy-source: arn:aws:s3:us-east-1:1:accesspoint/ap/object/k"}, code: s3err.NotImplemented},
		{name: "copy source twice", method: "PUT", target: "/logs/app/copy", host: "s3.test", headers: []string{"x-amz-copy-source: logs/app/a", "x-amz-copy-source: logs/secret/b"}, code: s3err.InvalidArgument},
		{name: "copy source on a GET", method: "GET", target: "/logs/app/a", host: "s3.test", headers: []string{"x-amz-copy-source: logs/secret/b"}, code: s3err.InvalidRequest},
		{name: "copy source on CreateMultipartUpload", method: "POST", target: "/logs/app/a?uploads", host: "s3.test", headers: []string{"x-amz-copy-source: logs/secret/b"}, code: s3err.InvalidRequest},
		{name: "upload part copy from outside", method: "PUT", target: "/logs/app/a?partNumber=1&uploadId=u", host: "s3.test", headers: []string{"x-amz-copy-source: logs/secret/b"},
			op: "UploadPartCopy", bucket: "logs", key: "app/a", checks: []s3iam.Check{{Action: "s3:PutObject", Resource: "arn:aws:s3:::logs/app/a"}, {Action: "s3:GetObject", Resource: "arn:aws:s3:::logs/secret/b"}}},

		// Listings.
		{name: "list the granted prefix", method: "GET", target: "/logs?list-type=2&prefix=app/&delimiter=/", host: "s3.test",
			op: "ListObjectsV2", bucket: "logs", checks: []s3iam.Check{{Action: "s3:ListBucket", Resource: "arn:aws:s3:::logs/app/*"}}, allowed: true},
		{name: "list under the granted prefix", method: "GET", target: "/logs?list-type=2&prefix=app%2Fx", host: "s3.test",
			op: "ListObjectsV2", bucket: "logs", checks: []s3iam.Check{{Action: "s3:ListBucket", Resource: "arn:aws:s3:::logs/app/x*"}}, allowed: true},
		{name: "list a shorter prefix", method: "GET", target: "/logs?list-type=2&prefix=app", host: "s3.test",
			op: "ListObjectsV2", bucket: "logs", checks: []s3iam.Check{{Action: "s3:ListBucket", Resource: "arn:aws:s3:::logs/app*"}}},
		{name: "list the whole bucket", method: "GET", target: "/logs/", host: "s3.test",
			op: "ListObjects", bucket: "logs", checks: []s3iam.Check{{Action: "s3:ListBucket", Resource: "arn:aws:s3:::logs/*"}}},
		{name: "list with dot-dot prefix", method: "GET", target: "/logs?prefix=app/../", host: "s3.test", code: s3err.AccessDenied},
		{name: "list with partial dot-dot prefix", method: "GET", target: "/logs?prefix=app/..", host: "s3.test", code: s3err.AccessDenied},
		{name: "list with prefix twice", method: "GET", target: "/logs?prefix=app/&prefix=", host: "s3.test", code: s3err.InvalidArgument},
		{name: "list with encoded duplicate name", method: "GET", target: "/logs?prefix=app/&%70refix=", host: "s3.test", code: s3err.InvalidArgument},
		{name: "list with plus in prefix", method: "GET", target: "/logs?prefix=app/a+b", host: "s3.test", code: s3err.InvalidArgument},
		{name: "list with semicolon", method: "GET", target: "/logs?prefix=app/;prefix=", host: "s3.test", code: s3err.InvalidArgument},
		{name: "list-type 3", method: "GET", target: "/logs?list-type=3", host: "s3.test", code: s3err.InvalidArgument},
		{name: "list versions outside", method: "GET", target: "/logs?versions&prefix=", host: "s3.test",
			op: "ListObjectVersions", bucket: "logs", checks: []s3iam.Check{{Action: "s3:ListBucketVersions", Resource: "arn:aws:s3:::logs/*"}}},
		{name: "head bucket: a prefix grant may see the bucket", method: "HEAD", target: "/logs", host: "s3.test",
			op: "HeadBucket", bucket: "logs", checks: []s3iam.Check{{Action: "s3:ListBucket", Resource: "arn:aws:s3:::logs", InBucket: true}}, allowed: true},
		{name: "head bucket: not another bucket", method: "HEAD", target: "/logs2", host: "s3.test",
			op: "HeadBucket", bucket: "logs2", checks: []s3iam.Check{{Action: "s3:ListBucket", Resource: "arn:aws:s3:::logs2", InBucket: true}}},
		{name: "head bucket: not a bucket sharing the name's start", method: "HEAD", target: "/", host: "log.s3.test",
			op: "HeadBucket", bucket: "log", checks: []s3iam.Check{{Action: "s3:ListBucket", Resource: "arn:aws:s3:::log", InBucket: true}}},

		// Query and header tricks.
		{name: "unknown parameter", method: "GET", target: "/logs/app/a?foo=bar", host: "s3.test", code: s3err.NotImplemented},
		{name: "header hoisted into the query", method: "PUT", target: "/logs/app/a?x-amz-copy-source=logs%2Fsecret%2Fb", host: "s3.test", code: s3err.NotImplemented},
		{name: "two subresources", method: "GET", target: "/logs/app/a?acl&tagging", host: "s3.test", code: s3err.NotImplemented},
		{name: "x-id disagrees", method: "PUT", target: "/logs/app/a?x-id=GetObject", host: "s3.test", code: s3err.AccessDenied},
		{name: "x-id agrees", method: "PUT", target: "/logs/app/a?x-id=PutObject", host: "s3.test",
			op: "PutObject", bucket: "logs", key: "app/a", checks: []s3iam.Check{{Action: "s3:PutObject", Resource: "arn:aws:s3:::logs/app/a"}}, allowed: true},
		{name: "presigned GET", method: "GET", target: "/logs/app/a?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AK%2F20260101%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20260101T000000Z&X-Amz-Expires=60&X-Amz-SignedHeaders=host&X-Amz-Security-Token=tok%2B&X-Amz-Signature=ab", host: "s3.test",
			op: "GetObject", bucket: "logs", key: "app/a", checks: []s3iam.Check{{Action: "s3:GetObject", Resource: "arn:aws:s3:::logs/app/a"}}, allowed: true},
		{name: "empty versionId", method: "GET", target: "/logs/app/a?versionId=", host: "s3.test", code: s3err.InvalidArgument},
		{name: "versionId on PutObject", method: "PUT", target: "/logs/app/a?versionId=1", host: "s3.test", code: s3err.NotImplemented},
		{name: "subresource with a value", method: "GET", target: "/logs/app/a?tagging=x", host: "s3.test", code: s3err.InvalidArgument},
		{name: "upload part without part number", method: "PUT", target: "/logs/app/a?uploadId=u", host: "s3.test", code: s3err.InvalidArgument},
		{name: "part number 0", method: "PUT", target: "/logs/app/a?partNumber=0&uploadId=u", host: "s3.test", code: s3err.InvalidArgument},
		{name: "part number 10001", method: "PUT", target: "/logs/app/a?partNumber=10001&uploadId=u", host: "s3.test", code: s3err.InvalidArgument},
		{name: "part number with sign", method: "PUT", target: "/logs/app/a?partNumber=%2B1&uploadId=u", host: "s3.test", code: s3err.InvalidArgument},
		{name: "empty upload id", method: "DELETE", target: "/logs/app/a?uploadId=", host: "s3.test", code: s3err.InvalidArgument},
		{name: "rename", method: "PUT", target: "/logs/app/a?renameObject", host: "s3.test", headers: []string{"x-amz-rename-source: /logs/secret/b"}, code: s3err.AccessDenied},
		{name: "rename header on PutObject", method: "PUT", target: "/logs/app/a", host: "s3.test", headers: []string{"x-amz-rename-source: /logs/secret/b"}, code: s3err.AccessDenied},
		{name: "bypass governance", method: "DELETE", target: "/logs/app/a", host: "s3.test", headers: []string{"X-AMZ-Bypass-Governance-Retention: TRUE"},
			op: "DeleteObject", bucket: "logs", key: "app/a", checks: []s3iam.Check{{Action: "s3:DeleteObject", Resource: "arn:aws:s3:::logs/app/a"}, {Action: "s3:BypassGovernanceRetention", Resource: "arn:aws:s3:::logs/app/a"}}},
		{name: "grant header needs PutObjectAcl", method: "PUT", target: "/logs/app/a", host: "s3.test", headers: []string{"x-amz-grant-read: uri=http://acs.amazonaws.com/groups/global/AllUsers"},
			op: "PutObject", bucket: "logs", key: "app/a", checks: []s3iam.Check{{Action: "s3:PutObject", Resource: "arn:aws:s3:::logs/app/a"}, {Action: "s3:PutObjectAcl", Resource: "arn:aws:s3:::logs/app/a"}}},

		// Refused operations.
		{name: "browser POST upload", method: "POST", target: "/logs", host: "s3.test", code: s3err.AccessDenied},
		{name: "browser POST upload to an object path", method: "POST", target: "/logs/app/a", host: "s3.test", code: s3err.AccessDenied},
		{name: "options", method: "OPTIONS", target: "/logs/app/a", host: "s3.test", code: s3err.NotImplemented},
		{name: "versitygw admin API", method: "PATCH", target: "/create-user", host: "s3.test", code: s3err.NotImplemented},
		{name: "versitygw admin API on a bucket", method: "PATCH", target: "/logs/create", host: "s3.test", code: s3err.NotImplemented},
		{name: "delete on an object path", method: "POST", target: "/logs/app/a?delete", host: "s3.test", code: s3err.NotImplemented},
		{name: "create session", method: "GET", target: "/?session", host: "logs.s3.test", code: s3err.AccessDenied},
		{name: "create metadata table", method: "POST", target: "/logs?metadataTable", host: "s3.test", code: s3err.AccessDenied},
		{name: "rename", method: "PUT", target: "/logs/app/a?renameObject", host: "s3.test", code: s3err.AccessDenied},

		// Operations the grant must name: the app/* grant has none of them.
		{name: "restore", method: "POST", target: "/logs/app/a?restore", host: "s3.test",
			op: "RestoreObject", bucket: "logs", key: "app/a", checks: []s3iam.Check{{Action: "s3:RestoreObject", Resource: "arn:aws:s3:::logs/app/a"}}},
		{name: "select reads the object", method: "POST", target: "/logs/app/a?select&select-type=2", host: "s3.test",
			op: "SelectObjectContent", bucket: "logs", key: "app/a", checks: []s3iam.Check{{Action: "s3:GetObject", Resource: "arn:aws:s3:::logs/app/a"}}, allowed: true},
		{name: "torrent", method: "GET", target: "/logs/app/a?torrent", host: "s3.test",
			op: "GetObjectTorrent", bucket: "logs", key: "app/a", checks: []s3iam.Check{{Action: "s3:GetObjectTorrent", Resource: "arn:aws:s3:::logs/app/a"}}},
		{name: "create bucket", method: "PUT", target: "/logs", host: "s3.test",
			op: "CreateBucket", bucket: "logs", checks: []s3iam.Check{{Action: "s3:CreateBucket", Resource: "arn:aws:s3:::logs"}}},
		{name: "create bucket with object lock", method: "PUT", target: "/logs", host: "s3.test", headers: []string{"X-Amz-Bucket-Object-Lock-Enabled: True"},
			op: "CreateBucket", bucket: "logs", checks: []s3iam.Check{{Action: "s3:CreateBucket", Resource: "arn:aws:s3:::logs"},
				{Action: "s3:PutBucketObjectLockConfiguration", Resource: "arn:aws:s3:::logs"}, {Action: "s3:PutBucketVersioning", Resource: "arn:aws:s3:::logs"}}},
		{name: "delete bucket", method: "DELETE", target: "/logs/", host: "s3.test",
			op: "DeleteBucket", bucket: "logs", checks: []s3iam.Check{{Action: "s3:DeleteBucket", Resource: "arn:aws:s3:::logs"}}},
		{name: "bucket policy write", method: "PUT", target: "/logs?policy", host: "s3.test",
			op: "PutBucketPolicy", bucket: "logs", checks: []s3iam.Check{{Action: "s3:PutBucketPolicy", Resource: "arn:aws:s3:::logs"}}},
		{name: "retention with bypass", method: "PUT", target: "/logs/app/a?retention&versionId=v1", host: "s3.test", headers: []string{"X-Amz-Bypass-Governance-Retention: true"},
			op: "PutObjectRetention", bucket: "logs", key: "app/a", checks: []s3iam.Check{{Action: "s3:PutObjectRetention", Resource: "arn:aws:s3:::logs/app/a"},
				{Action: "s3:BypassGovernanceRetention", Resource: "arn:aws:s3:::logs/app/a"}}},
		// SDKs send "versionId=" for an unset VersionId (the versitygw
		// suite's WORMProtection tests do): it must pass where the version
		// does not change the action, and stay refused on GetObject.
		{name: "retention put, empty versionId", method: "PUT", target: "/logs/app/a?retention&versionId=", host: "s3.test",
			op: "PutObjectRetention", bucket: "logs", key: "app/a", checks: []s3iam.Check{{Action: "s3:PutObjectRetention", Resource: "arn:aws:s3:::logs/app/a"}}},
		{name: "retention get, empty versionId", method: "GET", target: "/logs/app/a?retention&versionId=", host: "s3.test",
			op: "GetObjectRetention", bucket: "logs", key: "app/a", checks: []s3iam.Check{{Action: "s3:GetObjectRetention", Resource: "arn:aws:s3:::logs/app/a"}}},
		{name: "legal hold put, empty versionId", method: "PUT", target: "/logs/app/a?legal-hold&versionId=", host: "s3.test",
			op: "PutObjectLegalHold", bucket: "logs", key: "app/a", checks: []s3iam.Check{{Action: "s3:PutObjectLegalHold", Resource: "arn:aws:s3:::logs/app/a"}}},
		{name: "analytics get by id", method: "GET", target: "/logs?analytics&id=a1", host: "s3.test",
			op: "GetBucketAnalyticsConfiguration", bucket: "logs", checks: []s3iam.Check{{Action: "s3:GetAnalyticsConfiguration", Resource: "arn:aws:s3:::logs"}}},
		{name: "analytics list", method: "GET", target: "/logs?analytics", host: "s3.test",
			op: "ListBucketAnalyticsConfigurations", bucket: "logs", checks: []s3iam.Check{{Action: "s3:GetAnalyticsConfiguration", Resource: "arn:aws:s3:::logs"}}},
		{name: "analytics list takes no id-less parameter of Get", method: "GET", target: "/logs?analytics&versionId=1", host: "s3.test", code: s3err.NotImplemented},
		{name: "PUT to the service", method: "PUT", target: "/", host: "s3.test", code: s3err.NotImplemented},
		{name: "absolute-form target", method: "GET", target: "http://s3.test/logs/app/a", host: "s3.test",
			op: "GetObject", bucket: "logs", key: "app/a", checks: []s3iam.Check{{Action: "s3:GetObject", Resource: "arn:aws:s3:::logs/app/a"}}, allowed: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := rawRequest(t, tc.method, tc.target, tc.host, tc.headers...)
			op, err := m.Map(r)
			if tc.code != "" {
				assertCode(t, err, tc.code)
				return
			}
			if err != nil {
				t.Fatalf("Map: %v", err)
			}
			if op.Name != tc.op || op.Bucket != tc.bucket || op.Key != tc.key {
				t.Errorf("got %s %q %q, want %s %q %q", op.Name, op.Bucket, op.Key, tc.op, tc.bucket, tc.key)
			}
			if !slices.Equal(op.Checks, tc.checks) {
				t.Errorf("checks\n got %v\nwant %v", op.Checks, tc.checks)
			}
			if got := allowed(sc, op); got != tc.allowed {
				t.Errorf("the app/* grant allows = %v, want %v", got, tc.allowed)
			}
		})
	}
}

// TestRefusalNamesOperation checks that a refused request's message says
// what was refused, so the user of the CLI knows.
func TestRefusalNamesOperation(t *testing.T) {
	m := &s3iam.Mapper{}
	for target, want := range map[string]string{
		"POST /logs":               "PostObject (browser form upload) (POST on a bucket): its authorization is a signed policy document",
		"POST /logs?metadataTable": "CreateBucketMetadataTableConfiguration (POST on a bucket with ?metadataTable): it needs S3 Tables permissions",
		"PUT /logs/k?renameObject": "RenameObject",
		"PUT /logs?frobnicate":     `the query parameter "frobnicate" on CreateBucket`,
		"PATCH /create-user":       "Airlock forwards the S3 API only, not a server's own admin API",
		"GET /logs?session":        "CreateSession",
	} {
		method, target, _ := strings.Cut(target, " ")
		_, err := m.Map(rawRequest(t, method, target, "s3.test"))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s %s: error %v does not contain %q", method, target, err, want)
		}
	}
}

// TestNonCanonicalHeaderKey checks that a copy source set under a
// non-canonical header key (as a handler building a request by hand
// might) is still seen, since the upstream would act on it.
func TestNonCanonicalHeaderKey(t *testing.T) {
	r := rawRequest(t, "PUT", "/logs/app/a", "s3.test")
	r.Header["x-amz-copy-source"] = []string{"logs/secret/b"}
	op, err := (&s3iam.Mapper{}).Map(r)
	if err != nil {
		t.Fatal(err)
	}
	if op.Name != "CopyObject" || op.CopySourceKey != "secret/b" {
		t.Fatalf("got %s from %q", op.Name, op.CopySourceKey)
	}
	if got := op.CopySourceHeader(); got != "/logs/secret/b" {
		t.Errorf("CopySourceHeader %q", got)
	}
}

// TestUpstreamPathRoundTrip checks that the path a gateway sends upstream
// decodes, as Go's server decodes it, to exactly the key authorized.
func TestUpstreamPathRoundTrip(t *testing.T) {
	m := &s3iam.Mapper{}
	for _, k := range []string{"app/a b+c=d&e%f~é.log", "app/%2F", "app/?#[]@!$'()*,;", "app/dir/", "app/cafe\u0301"} {
		op := &s3iam.Op{Bucket: "logs", Key: k}
		r := rawRequest(t, "GET", op.UpstreamPath(), "s3.test")
		got, err := m.Map(r)
		if err != nil {
			t.Fatalf("%q: %v", k, err)
		}
		if got.Key != k || r.URL.Path != "/logs/"+k {
			t.Errorf("key %q came back as %q (URL.Path %q)", k, got.Key, r.URL.Path)
		}
	}
}

// x-amz-acl and x-amz-object-ownership ask for their action by being
// there, whatever their first value: an empty first value followed by a
// second one must not slip an ACL past s3:PutObjectAcl (the upstream may
// read the last value, as Ceph RGW does).
func TestACLHeaderValuesCannotHide(t *testing.T) {
	m := &s3iam.Mapper{}
	sc := appGrant(t)
	for _, hs := range [][]string{
		{"X-Amz-Acl: ", "X-Amz-Acl: public-read"},
		{"x-amz-acl: ", "X-AMZ-ACL: public-read"},
		{"X-Amz-Acl: private", "X-Amz-Acl: public-read"},
		{"X-Amz-Acl: "},
	} {
		op, err := m.Map(rawRequest(t, "PUT", "/logs/app/x", "gw", hs...))
		if err == nil && allowed(sc, op) {
			t.Errorf("%q: allowed as %s with checks %+v, without s3:PutObjectAcl", hs, op.Name, op.Checks)
		}
	}
	op, err := m.Map(rawRequest(t, "PUT", "/newbucket", "gw", "X-Amz-Object-Ownership: ", "X-Amz-Object-Ownership: ObjectWriter"))
	if err == nil && !slices.ContainsFunc(op.Checks, func(c s3iam.Check) bool { return c.Action == "s3:PutBucketOwnershipControls" }) {
		t.Errorf("CreateBucket with a hidden x-amz-object-ownership: checks %+v", op.Checks)
	}
}

// An ACL sent as an AccessControlPolicy body (as boto3's and the SDKs'
// AccessControlPolicy parameter sends it) grants as much as the
// x-amz-grant-* headers, so its grantees are recorded as theirs are: a
// record of PutBucketAcl that said nothing of whom it made the bucket
// readable by hid the public grant.
func TestACLBodyGranteesRecorded(t *testing.T) {
	m := &s3iam.Mapper{}
	const allUsers = "http://acs.amazonaws.com/groups/global/AllUsers"
	policy := func(grants string) string {
		return `<AccessControlPolicy xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Owner><ID>owner-id</ID></Owner><AccessControlList>` + grants + `</AccessControlList></AccessControlPolicy>`
	}
	grant := func(grantee, perm string) string {
		return `<Grant><Grantee xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="CanonicalUser">` + grantee + `</Grantee><Permission>` + perm + `</Permission></Grant>`
	}
	sc, err := scope.Parse([]string{"s3:PutBucketAcl arn:aws:s3:::logs", "s3:PutObjectAcl arn:aws:s3:::logs/app/*"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, target string
		headers      []string
		body         string
		want         map[string]string // Params, or nil for MalformedXML
	}{
		{name: "public read and another account", target: "/logs?acl",
			body: policy(grant("<URI>"+allUsers+"</URI>", "READ") + grant("<ID>other-account</ID><DisplayName>x</DisplayName>", "FULL_CONTROL") + grant("<EmailAddress>a@example.com</EmailAddress>", "READ")),
			want: map[string]string{"acl": "grant", "grant_read": `uri="` + allUsers + `", emailAddress="a@example.com"`, "grant_full_control": `id="other-account"`}},
		{name: "object ACL with a header grant too", target: "/logs/app/a.log?acl", headers: []string{`X-Amz-Grant-Write-Acp: id="h"`},
			body: policy(grant("<URI>"+allUsers+"</URI>", "WRITE_ACP")),
			want: map[string]string{"acl": "grant", "grant_write_acp": `id="h", uri="` + allUsers + `"`}},
		{name: "owner only", target: "/logs?acl", body: policy(""), want: map[string]string{}},
		// What S3 refuses as a malformed ACL is the upstream's to refuse;
		// the record names everything it might apply.
		{name: "unknown permission", target: "/logs?acl", body: policy(grant("<URI>"+allUsers+"</URI>", "EVERYTHING")),
			want: map[string]string{"acl": "grant", "grant_other": `permission="EVERYTHING" uri="` + allUsers + `"`}},
		{name: "no grantee", target: "/logs?acl", body: policy(grant("", "READ")), want: map[string]string{}},
		{name: "two grantees in one", target: "/logs?acl", body: policy(grant("<ID>a</ID><URI>"+allUsers+"</URI>", "READ")),
			want: map[string]string{"acl": "grant", "grant_read": `id="a", uri="` + allUsers + `"`}},
		{name: "two permissions in one", target: "/logs?acl", body: policy(`<Grant><Permission>WRITE_ACP</Permission><Grantee><Permission>READ</Permission><ID>a</ID></Grantee></Grant>`),
			want: map[string]string{"acl": "grant", "grant_read": `id="a"`, "grant_write_acp": `id="a"`}},
		// A grantee's value is quoted as Go quotes it: written between
		// quotes as it stood, an ID with a " in it read as a grant to
		// everyone.
		{name: "a quote in a grantee", target: "/logs?acl", body: policy(grant(`<ID>x", uri="`+allUsers+`</ID>`, "READ") + grant("<ID>a\\\tb</ID>", "READ\"")),
			want: map[string]string{"acl": "grant", "grant_read": `id="x\", uri=\"` + allUsers + `"`, "grant_other": `permission="READ\"" id="a\\\tb"`}},
		{name: "DOCTYPE", target: "/logs?acl", body: `<!DOCTYPE x [<!ENTITY u "` + allUsers + `">]>` + policy(grant("<URI>&u;</URI>", "READ"))},
		{name: "not XML", target: "/logs?acl", body: "<AccessControlPolicy>"},
		{name: "mismatched ends", target: "/logs?acl", body: "<AccessControlPolicy><AccessControlList></AccessControlPolicy></AccessControlList>"},
		{name: "another root", target: "/logs?acl", body: "<Policy/>"},
		{name: "too many grants", target: "/logs?acl", body: policy(strings.Repeat(grant("<ID>a</ID>", "READ"), 1001))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hs := append([]string{"Content-Length: " + itoa(len(tt.body))}, tt.headers...)
			op, err := m.Map(rawRequest(t, "PUT", tt.target, "s3.test", hs...))
			if err != nil {
				t.Fatalf("Map: %v", err)
			}
			if !op.NeedsBody || allowed(sc, op) {
				t.Fatalf("%s with a body is allowed before its body is read (NeedsBody %v)", op.Name, op.NeedsBody)
			}
			err = op.AddBodyChecks([]byte(tt.body))
			if tt.want == nil {
				if s3err.As(err).Code != s3err.MalformedXML {
					t.Fatalf("AddBodyChecks: %v, want MalformedXML", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("AddBodyChecks: %v", err)
			}
			if !allowed(sc, op) || len(op.Checks) != 1 {
				t.Fatalf("checks %v: want the operation's one ACL action, allowed", op.Checks)
			}
			for k, v := range tt.want {
				if op.Params[k] != v {
					t.Errorf("param %s = %q, want %q (params %v)", k, op.Params[k], v, op.Params)
				}
			}
			for k := range op.Params {
				if _, ok := tt.want[k]; !ok && strings.HasPrefix(k, "grant") {
					t.Errorf("param %s = %q recorded, want none", k, op.Params[k])
				}
			}
		})
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

// PutObjectRetention and PutObjectLegalHold set in their body what the
// x-amz-object-lock-* headers of a write set, and a COMPLIANCE retention
// cannot be undone before its date: recorded under the same names.
func TestLockBodyRecorded(t *testing.T) {
	m := &s3iam.Mapper{}
	sc, err := scope.Parse([]string{"s3:PutObjectRetention,s3:PutObjectLegalHold,s3:BypassGovernanceRetention arn:aws:s3:::logs/app/*"})
	if err != nil {
		t.Fatal(err)
	}
	const ns = ` xmlns="http://s3.amazonaws.com/doc/2006-03-01/"`
	tests := []struct {
		name, target string
		headers      []string
		body         string
		want         map[string]string // Params, or nil for MalformedXML
		checks       int
	}{
		{name: "compliance retention", target: "/logs/app/a.log?retention",
			body: `<Retention` + ns + `><Mode>COMPLIANCE</Mode><RetainUntilDate>2099-01-01T00:00:00Z</RetainUntilDate></Retention>`,
			want: map[string]string{"object_lock_mode": "COMPLIANCE", "object_lock_retain_until_date": "2099-01-01T00:00:00Z"}, checks: 1},
		{name: "governance with bypass", target: "/logs/app/a.log?retention", headers: []string{"X-Amz-Bypass-Governance-Retention: true"},
			body: "<Retention>\n <Mode>GOVERNANCE</Mode>\n <RetainUntilDate> 2030-01-01T00:00:00Z </RetainUntilDate>\n</Retention>",
			want: map[string]string{"object_lock_mode": "GOVERNANCE", "object_lock_retain_until_date": "2030-01-01T00:00:00Z"}, checks: 2},
		{name: "legal hold", target: "/logs/app/a.log?legal-hold", body: `<LegalHold` + ns + `><Status>ON</Status></LegalHold>`,
			want: map[string]string{"object_lock_legal_hold": "ON"}, checks: 1},
		// What S3 would refuse is the upstream's to refuse; the record
		// names everything it might apply.
		{name: "mode twice", target: "/logs/app/a.log?retention", body: `<Retention><Mode>GOVERNANCE</Mode><Mode>COMPLIANCE</Mode></Retention>`,
			want: map[string]string{"object_lock_mode": "GOVERNANCE, COMPLIANCE"}, checks: 1},
		{name: "unknown element", target: "/logs/app/a.log?retention", body: `<Retention><Mode>COMPLIANCE</Mode><Other><Mode>GOVERNANCE</Mode></Other></Retention>`,
			want: map[string]string{"object_lock_mode": "COMPLIANCE"}, checks: 1},
		{name: "value too long", target: "/logs/app/a.log?retention", body: `<Retention><Mode>` + strings.Repeat("C", 65) + `</Mode></Retention>`,
			want: map[string]string{"object_lock_mode": strings.Repeat("C", 64) + "..."}, checks: 1},
		{name: "nested", target: "/logs/app/a.log?retention", body: `<Retention><Mode><x/>COMPLIANCE</Mode></Retention>`},
		{name: "wrong root", target: "/logs/app/a.log?legal-hold", body: `<Retention><Mode>COMPLIANCE</Mode></Retention>`},
		{name: "DOCTYPE", target: "/logs/app/a.log?retention", body: `<!DOCTYPE r [<!ENTITY m "COMPLIANCE">]><Retention><Mode>&m;</Mode></Retention>`},
		{name: "incomplete", target: "/logs/app/a.log?retention", body: `<Retention><Mode>COMPLIANCE</Mode>`},
		{name: "mismatched", target: "/logs/app/a.log?retention", body: `<Retention><Mode>COMPLIANCE</Retention></Mode>`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hs := append([]string{"Content-Length: " + itoa(len(tt.body))}, tt.headers...)
			op, err := m.Map(rawRequest(t, "PUT", tt.target, "s3.test", hs...))
			if err != nil {
				t.Fatalf("Map: %v", err)
			}
			if !op.NeedsBody || allowed(sc, op) {
				t.Fatalf("%s with a body is allowed before its body is read (NeedsBody %v)", op.Name, op.NeedsBody)
			}
			err = op.AddBodyChecks([]byte(tt.body))
			if tt.want == nil {
				if s3err.As(err).Code != s3err.MalformedXML {
					t.Fatalf("AddBodyChecks: %v, want MalformedXML", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("AddBodyChecks: %v", err)
			}
			if !allowed(sc, op) || len(op.Checks) != tt.checks {
				t.Fatalf("checks %v: want %d, allowed", op.Checks, tt.checks)
			}
			for k, v := range tt.want {
				if op.Params[k] != v {
					t.Errorf("param %s = %q, want %q (params %v)", k, op.Params[k], v, op.Params)
				}
			}
		})
	}
}

// PutObjectTagging and PutBucketTagging set in their body what a write's
// x-amz-tagging header sets, and tags decide what tag-based policies
// allow: recorded as that header is ("tagging": "k=v&…").
func TestTagBodyRecorded(t *testing.T) {
	m := &s3iam.Mapper{}
	sc, err := scope.Parse([]string{"s3:PutBucketTagging arn:aws:s3:::logs", "s3:PutObjectTagging arn:aws:s3:::logs/app/*"})
	if err != nil {
		t.Fatal(err)
	}
	tag := func(k, v string) string { return "<Tag><Key>" + k + "</Key><Value>" + v + "</Value></Tag>" }
	doc := func(tags string) string {
		return `<Tagging xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><TagSet>` + tags + `</TagSet></Tagging>`
	}
	tests := []struct {
		name, target, body string
		want               string // the tagging param; "-" for MalformedXML
	}{
		{name: "object tags", target: "/logs/app/a.log?tagging", body: doc(tag("public", "true") + tag("owner", "a b&amp;c=d")), want: "public=true&owner=a+b%26c%3Dd"},
		{name: "bucket tags", target: "/logs?tagging", body: "<Tagging>\n <TagSet>\n  " + tag("env", "prod") + "\n </TagSet>\n</Tagging>", want: "env=prod"},
		{name: "empty set", target: "/logs/app/a.log?tagging", body: doc(""), want: ""},
		{name: "empty value", target: "/logs/app/a.log?tagging", body: doc(tag("k", "")), want: "k="},
		{name: "tag twice", target: "/logs/app/a.log?tagging", body: doc(tag("k", "1") + tag("k", "2")), want: "k=1&k=2"},
		{name: "more than S3 takes", target: "/logs/app/a.log?tagging", body: doc(strings.Repeat(tag("k", "v"), 11)), want: strings.TrimSuffix(strings.Repeat("k=v&", 11), "&")},
		{name: "no value", target: "/logs/app/a.log?tagging", body: doc("<Tag><Key>k</Key></Tag>"), want: "-"},
		{name: "two keys", target: "/logs/app/a.log?tagging", body: doc("<Tag><Key>k</Key><Key>j</Key><Value>v</Value></Tag>"), want: "-"},
		{name: "stray element", target: "/logs/app/a.log?tagging", body: doc(tag("k", "v") + "<Other/>"), want: "-"},
		{name: "tag outside the set", target: "/logs/app/a.log?tagging", body: "<Tagging>" + tag("k", "v") + "</Tagging>", want: "-"},
		{name: "DOCTYPE", target: "/logs/app/a.log?tagging", body: `<!DOCTYPE t [<!ENTITY v "true">]>` + doc(tag("public", "&v;")), want: "-"},
		{name: "incomplete", target: "/logs/app/a.log?tagging", body: "<Tagging><TagSet>", want: "-"},
		{name: "more than S3 takes on a bucket", target: "/logs?tagging", body: doc(strings.Repeat(tag("k", "v"), 51)), want: strings.TrimSuffix(strings.Repeat("k=v&", 51), "&")},
		{name: "too many", target: "/logs?tagging", body: doc(strings.Repeat(tag("k", "v"), 1001)), want: "-"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			op, err := m.Map(rawRequest(t, "PUT", tt.target, "s3.test", "Content-Length: "+itoa(len(tt.body))))
			if err != nil {
				t.Fatalf("Map: %v", err)
			}
			if !op.NeedsBody || allowed(sc, op) {
				t.Fatalf("%s with a body is allowed before its body is read (NeedsBody %v)", op.Name, op.NeedsBody)
			}
			err = op.AddBodyChecks([]byte(tt.body))
			if tt.want == "-" {
				if s3err.As(err).Code != s3err.MalformedXML {
					t.Fatalf("AddBodyChecks: %v, want MalformedXML", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("AddBodyChecks: %v", err)
			}
			if !allowed(sc, op) || len(op.Checks) != 1 {
				t.Fatalf("checks %v: want the operation's one action, allowed", op.Checks)
			}
			if got, ok := op.Params["tagging"]; !ok || got != tt.want {
				t.Errorf("tagging = %q (recorded: %v), want %q", got, ok, tt.want)
			}
		})
	}
}

// A bucket policy or configuration write sets what its body says (a
// policy granting the world access, a lifecycle rule expiring every
// object, a default COMPLIANCE retention, versioning suspended) and was
// recorded as a bare operation name: recorded now as "policy" or
// "configuration", the document without comments.
func TestConfigBodyRecorded(t *testing.T) {
	m := &s3iam.Mapper{}
	sc, err := scope.Parse([]string{"s3:PutBucketPolicy,s3:PutBucketVersioning,s3:PutBucketPublicAccessBlock,s3:PutBucketObjectLockConfiguration," +
		"s3:PutLifecycleConfiguration,s3:PutBucketLogging,s3:PutBucketCORS,s3:PutBucketOwnershipControls,s3:PutEncryptionConfiguration," +
		"s3:PutBucketWebsite,s3:PutBucketNotification,s3:PutInventoryConfiguration arn:aws:s3:::logs"})
	if err != nil {
		t.Fatal(err)
	}
	const ns = ` xmlns="http://s3.amazonaws.com/doc/2006-03-01/"`
	policy := "{\n  \"Version\": \"2012-10-17\",\n  \"Statement\": [{\"Effect\": \"Allow\", \"Principal\": \"*\",\n \"Action\": \"s3:GetObject\", \"Resource\": \"arn:aws:s3:::logs/*\"}]\n}"
	tests := []struct {
		name, target, body string
		param, want        string // want "-" for MalformedXML
	}{
		{name: "policy", target: "/logs?policy", body: policy, param: "policy",
			want: `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::logs/*"}]}`},
		{name: "policy not JSON", target: "/logs?policy", body: "{not json", param: "policy", want: "{not json"},
		{name: "versioning", target: "/logs?versioning", body: "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<VersioningConfiguration" + ns + ">\n  <Status>Suspended</Status>\n  <MfaDelete>Enabled</MfaDelete>\n</VersioningConfiguration>",
			param: "configuration", want: "<VersioningConfiguration>\n  <Status>Suspended</Status>\n  <MfaDelete>Enabled</MfaDelete>\n</VersioningConfiguration>"},
		{name: "public access block", target: "/logs?publicAccessBlock", body: "<PublicAccessBlockConfiguration" + ns + "><BlockPublicAcls>false</BlockPublicAcls><!-- c --><BlockPublicPolicy>false</BlockPublicPolicy></PublicAccessBlockConfiguration>",
			param: "configuration", want: "<PublicAccessBlockConfiguration><BlockPublicAcls>false</BlockPublicAcls><BlockPublicPolicy>false</BlockPublicPolicy></PublicAccessBlockConfiguration>"},
		{name: "object lock", target: "/logs?object-lock", body: "<ObjectLockConfiguration><ObjectLockEnabled>Enabled</ObjectLockEnabled><Rule><DefaultRetention><Mode>COMPLIANCE</Mode><Years>100</Years></DefaultRetention></Rule></ObjectLockConfiguration>",
			param: "configuration", want: "<ObjectLockConfiguration><ObjectLockEnabled>Enabled</ObjectLockEnabled><Rule><DefaultRetention><Mode>COMPLIANCE</Mode><Years>100</Years></DefaultRetention></Rule></ObjectLockConfiguration>"},
		{name: "lifecycle, a prefix of one space and escapes", target: "/logs?lifecycle", body: "<LifecycleConfiguration>\n <Rule><ID>a&amp;b</ID><Filter><Prefix> </Prefix></Filter><Status>Enabled</Status><Expiration><Days>1</Days></Expiration></Rule>\n</LifecycleConfiguration>",
			param: "configuration", want: "<LifecycleConfiguration>\n <Rule><ID>a&amp;b</ID><Filter><Prefix> </Prefix></Filter><Status>Enabled</Status><Expiration><Days>1</Days></Expiration></Rule>\n</LifecycleConfiguration>"},
		{name: "CDATA and attributes", target: "/logs?logging", body: `<BucketLoggingStatus><LoggingEnabled><TargetGrants><Grant><Grantee xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="Group"><URI><![CDATA[http://acs.amazonaws.com/groups/global/AllUsers]]></URI></Grantee></Grant></TargetGrants></LoggingEnabled></BucketLoggingStatus>`,
			param: "configuration", want: `<BucketLoggingStatus><LoggingEnabled><TargetGrants><Grant><Grantee xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="Group"><URI>http://acs.amazonaws.com/groups/global/AllUsers</URI></Grantee></Grant></TargetGrants></LoggingEnabled></BucketLoggingStatus>`},
		{name: "an element S3 does not define", target: "/logs?cors", body: "<CORSConfiguration><CORSRule><AllowedOrigin>*</AllowedOrigin><AllowedMethod>PUT</AllowedMethod><Other>x</Other></CORSRule></CORSConfiguration>",
			param: "configuration", want: "<CORSConfiguration><CORSRule><AllowedOrigin>*</AllowedOrigin><AllowedMethod>PUT</AllowedMethod><Other>x</Other></CORSRule></CORSConfiguration>"},
		{name: "ownership", target: "/logs?ownershipControls", body: "<OwnershipControls><Rule><ObjectOwnership>ObjectWriter</ObjectOwnership></Rule></OwnershipControls>",
			param: "configuration", want: "<OwnershipControls><Rule><ObjectOwnership>ObjectWriter</ObjectOwnership></Rule></OwnershipControls>"},
		{name: "encryption", target: "/logs?encryption", body: "<ServerSideEncryptionConfiguration><Rule><ApplyServerSideEncryptionByDefault><SSEAlgorithm>aws:kms</SSEAlgorithm><KMSMasterKeyID>arn:aws:kms:us-east-1:1:key/k</KMSMasterKeyID></ApplyServerSideEncryptionByDefault></Rule></ServerSideEncryptionConfiguration>",
			param: "configuration", want: "<ServerSideEncryptionConfiguration><Rule><ApplyServerSideEncryptionByDefault><SSEAlgorithm>aws:kms</SSEAlgorithm><KMSMasterKeyID>arn:aws:kms:us-east-1:1:key/k</KMSMasterKeyID></ApplyServerSideEncryptionByDefault></Rule></ServerSideEncryptionConfiguration>"},
		{name: "website", target: "/logs?website", body: "<WebsiteConfiguration><RedirectAllRequestsTo><HostName>evil.example</HostName></RedirectAllRequestsTo></WebsiteConfiguration>",
			param: "configuration", want: "<WebsiteConfiguration><RedirectAllRequestsTo><HostName>evil.example</HostName></RedirectAllRequestsTo></WebsiteConfiguration>"},
		{name: "notification", target: "/logs?notification", body: "<NotificationConfiguration><TopicConfiguration><Topic>arn:aws:sns:us-east-1:2:t</Topic><Event>s3:ObjectCreated:*</Event></TopicConfiguration></NotificationConfiguration>",
			param: "configuration", want: "<NotificationConfiguration><TopicConfiguration><Topic>arn:aws:sns:us-east-1:2:t</Topic><Event>s3:ObjectCreated:*</Event></TopicConfiguration></NotificationConfiguration>"},
		{name: "inventory", target: "/logs?inventory&id=i", body: "<InventoryConfiguration><Destination><S3BucketDestination><Bucket>arn:aws:s3:::elsewhere</Bucket></S3BucketDestination></Destination></InventoryConfiguration>",
			param: "configuration", want: "<InventoryConfiguration><Destination><S3BucketDestination><Bucket>arn:aws:s3:::elsewhere</Bucket></S3BucketDestination></Destination></InventoryConfiguration>"},
		{name: "a value split by a comment, spelt in references", target: "/logs?versioning", body: "<VersioningConfiguration><Status>Sus<!-- -->&#112;ended</Status></VersioningConfiguration>",
			param: "configuration", want: "<VersioningConfiguration><Status>Suspended</Status></VersioningConfiguration>"},
		{name: "DOCTYPE", target: "/logs?versioning", body: `<!DOCTYPE v [<!ENTITY s "Suspended">]><VersioningConfiguration><Status>&s;</Status></VersioningConfiguration>`, want: "-"},
		{name: "two roots", target: "/logs?versioning", body: "<VersioningConfiguration/><VersioningConfiguration><Status>Suspended</Status></VersioningConfiguration>", want: "-"},
		{name: "incomplete", target: "/logs?lifecycle", body: "<LifecycleConfiguration><Rule>", want: "-"},
		{name: "not XML", target: "/logs?cors", body: "cors", want: "-"},
		{name: "too deep", target: "/logs?cors", body: strings.Repeat("<a>", 17) + strings.Repeat("</a>", 17), want: "-"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			op, err := m.Map(rawRequest(t, "PUT", tt.target, "s3.test", "Content-Length: "+itoa(len(tt.body))))
			if err != nil {
				t.Fatalf("Map: %v", err)
			}
			if !op.NeedsBody || allowed(sc, op) {
				t.Fatalf("%s with a body is allowed before its body is read (NeedsBody %v)", op.Name, op.NeedsBody)
			}
			err = op.AddBodyChecks([]byte(tt.body))
			if tt.want == "-" {
				// S3's message, word for word: clients and suites compare it.
				if e := s3err.As(err); e.Code != s3err.MalformedXML || !strings.HasPrefix(e.Message, "The XML you provided was not well-formed or did not validate against our published schema.") {
					t.Fatalf("AddBodyChecks: %v, want MalformedXML with S3's message", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("AddBodyChecks: %v", err)
			}
			if !allowed(sc, op) || len(op.Checks) != 1 {
				t.Fatalf("checks %v: want the operation's one action, allowed", op.Checks)
			}
			if got := op.Params[tt.param]; got != tt.want {
				t.Errorf("%s = %q, want %q", tt.param, got, tt.want)
			}
		})
	}
	t.Run("replication", func(t *testing.T) {
		body := "<ReplicationConfiguration><Role>arn:aws:iam::1:role/r</Role><Rule><Status>Enabled</Status><Destination><Bucket>arn:aws:s3:::elsewhere</Bucket></Destination></Rule></ReplicationConfiguration>"
		op, err := m.Map(rawRequest(t, "PUT", "/logs?replication", "s3.test", "Content-Length: "+itoa(len(body))))
		if err != nil {
			t.Fatal(err)
		}
		if err := op.AddBodyChecks([]byte(body)); err != nil {
			t.Fatal(err)
		}
		if got := op.Params["configuration"]; got != body {
			t.Errorf("configuration = %q, want %q", got, body)
		}
		if len(op.Checks) != 2 || op.Checks[1].Action != "iam:PassRole" {
			t.Errorf("checks %v: want the action and iam:PassRole", op.Checks)
		}
	})
	t.Run("policy too large", func(t *testing.T) {
		body := `{"Sid":"` + strings.Repeat("a", 6*20<<10) + `"}`
		op, err := m.Map(rawRequest(t, "PUT", "/logs?policy", "s3.test", "Content-Length: "+itoa(len(body))))
		if err != nil {
			t.Fatal(err)
		}
		if err := op.AddBodyChecks([]byte(body)); s3err.As(err).Code != s3err.InvalidArgument {
			t.Fatalf("AddBodyChecks: %v, want InvalidArgument", err)
		}
	})
}

// x-amz-mfa ("SERIAL CODE") authenticates a PutBucketVersioning that
// sets or unsets MfaDelete, or a version's deletion in an MFA-delete
// bucket: the device is recorded, the one-time code never.
func TestMFASerialRecorded(t *testing.T) {
	m := &s3iam.Mapper{}
	tests := []struct {
		name, method, target string
		headers              []string
		want                 string
	}{
		{name: "versioning", method: "PUT", target: "/logs?versioning", headers: []string{"x-amz-mfa: arn:aws:iam::111122223333:mfa/root 123456"}, want: "arn:aws:iam::111122223333:mfa/root"},
		{name: "delete a version", method: "DELETE", target: "/logs/a?versionId=v1", headers: []string{"X-Amz-Mfa: GAHT00000001 654321"}, want: "GAHT00000001"},
		{name: "given twice", method: "DELETE", target: "/logs/a?versionId=v1", headers: []string{"x-amz-mfa: A 111111", "x-amz-mfa: B 222222"}, want: "A, B"},
		{name: "serial alone", method: "DELETE", target: "/logs/a", headers: []string{"x-amz-mfa: A"}, want: "A"},
		{name: "over-long", method: "DELETE", target: "/logs/a", headers: []string{"x-amz-mfa: " + strings.Repeat("s", 300) + " 1"}, want: strings.Repeat("s", 256) + "..."},
		{name: "none", method: "DELETE", target: "/logs/a", want: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			op, err := m.Map(rawRequest(t, tt.method, tt.target, "s3.test", tt.headers...))
			if err != nil {
				t.Fatalf("Map: %v", err)
			}
			if got := op.Params["mfa_serial"]; got != tt.want {
				t.Errorf("mfa_serial = %q, want %q", got, tt.want)
			}
			for k, v := range op.Params {
				for _, code := range []string{"123456", "654321", "111111", "222222"} {
					if strings.Contains(v, code) {
						t.Errorf("Params[%s] = %q holds the one-time code", k, v)
					}
				}
			}
		})
	}
}

// A mapped object op keeps its UpstreamPath from the resource's string;
// an Op whose Bucket or Key is set again afterwards is sent the path of
// what it holds then, never the one kept for what was mapped.
func TestUpstreamPathAfterKeyChanges(t *testing.T) {
	m := &s3iam.Mapper{}
	op, err := m.Map(rawRequest(t, "GET", "/logs/app/a%20b", "s3.test"))
	if err != nil {
		t.Fatal(err)
	}
	if got := op.UpstreamPath(); got != "/logs/app/a%20b" {
		t.Fatalf("UpstreamPath %q", got)
	}
	if got := op.Checks[0].Resource; got != "arn:aws:s3:::logs/app/a b" {
		t.Fatalf("resource %q", got)
	}
	op.Key = "app/other"
	if got := op.UpstreamPath(); got != "/logs/app/other" {
		t.Fatalf("after the key changed: UpstreamPath %q", got)
	}
	op.Bucket, op.Key = "other", "app/a b"
	if got := op.UpstreamPath(); got != "/other/app/a%20b" {
		t.Fatalf("after the bucket changed: UpstreamPath %q", got)
	}
	op.Key = ""
	if got := op.UpstreamPath(); got != "/other" {
		t.Fatalf("without a key: UpstreamPath %q", got)
	}
}
