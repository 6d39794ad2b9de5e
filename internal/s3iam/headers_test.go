package s3iam

import (
	"net/http"
	"strings"
	"testing"
)

// amzKindFold is scanHeaders' matching as it was, a chain of
// strings.EqualFold in the switch's order: the reference amzKindOf is
// held to.
func amzKindFold(name string) amzKind {
	switch {
	case strings.EqualFold(name, "copy-source"):
		return amzCopySource
	case strings.EqualFold(name, "copy-source-range"):
		return amzCopySourceRange
	case strings.EqualFold(name, "acl"):
		return amzACL
	case len(name) > 6 && strings.EqualFold(name[:6], "grant-"):
		return amzGrant
	case strings.EqualFold(name, "tagging"):
		return amzTagging
	case strings.EqualFold(name, "object-lock-mode"), strings.EqualFold(name, "object-lock-retain-until-date"):
		return amzLock
	case strings.EqualFold(name, "object-lock-legal-hold"):
		return amzLegalHold
	case strings.EqualFold(name, "bypass-governance-retention"):
		return amzBypass
	case strings.EqualFold(name, "bucket-object-lock-enabled"):
		return amzBucketLock
	case strings.EqualFold(name, "object-ownership"):
		return amzOwnership
	case strings.EqualFold(name, "rename-source"):
		return amzRename
	case strings.EqualFold(name, "object-attributes"):
		return amzObjectAttrs
	case strings.EqualFold(name, "mfa"):
		return amzMFA
	}
	return amzOther
}

// amzKindOf names every header as strings.EqualFold did: each name in
// lower, upper and canonical case, the grant-* prefix, names near them,
// names longer than its stack buffer, and names with a character that
// Unicode folds to an ASCII letter (the Kelvin sign to "k", the long s to
// "s"), which only strings.EqualFold matches.
func TestAmzKindOfMatchesEqualFold(t *testing.T) {
	names := []string{"", "a", "grant-", "grant-read", "GRANT-FULL-CONTROL", "grant-" + strings.Repeat("x", 40),
		"content-sha256", "date", "security-token", "meta-acl", "acl-", "copy-source-", "mfa ",
		"object-loc\u212a-mode", "bypa\u017fs-governance-retention", "grant\u017f-read", "\u212aey",
		"object-lock-retain-until-date" + strings.Repeat("-", 10)}
	for n := range amzKinds {
		names = append(names, n, strings.ToUpper(n), http.CanonicalHeaderKey(n))
	}
	for _, n := range names {
		if got, want := amzKindOf(n), amzKindFold(n); got != want {
			t.Errorf("amzKindOf(%q) = %d, want %d (strings.EqualFold's)", n, got, want)
		}
	}
}

// scanHeaders reads a request's headers in any case, as before.
func TestScanHeadersAnyCase(t *testing.T) {
	h := http.Header{"X-Amz-Copy-Source": {"b/k"}, "x-amz-tagging": {"a=b"}, "X-AMZ-GRANT-READ": {"id=1"},
		"X-Amz-Object-Lock-Mode": {"GOVERNANCE"}, "X-Amz-Date": {"20261206T000000Z"}, "Range": {"bytes=0-1"}}
	got, err := scanHeaders(h)
	if err != nil {
		t.Fatal(err)
	}
	if got.copySource != "b/k" || !got.hasTagging || got.tagging != "a=b" || got.acl != "grant" ||
		got.grants["grant_read"] != "id=1" || !got.retention || got.lock["object_lock_mode"] != "GOVERNANCE" || got.rng != "bytes=0-1" {
		t.Errorf("got %+v", got)
	}
}

// An SDK's GetObject headers cost scanHeaders no allocation.
func TestScanHeadersAllocs(t *testing.T) {
	h := http.Header{"Accept-Encoding": {"identity"}, "Amz-Sdk-Invocation-Id": {"0"}, "Amz-Sdk-Request": {"attempt=1; max=3"},
		"X-Amz-Content-Sha256": {"UNSIGNED-PAYLOAD"}, "X-Amz-Date": {"20261206T000000Z"}, "X-Amz-Security-Token": {"t"}}
	if n := testing.AllocsPerRun(100, func() {
		if _, err := scanHeaders(h); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("%v allocations per call, want 0", n)
	}
}

// BenchmarkScanHeaders reads the headers of an AWS SDK's GetObject
// (three x-amz-* among eight), as the mapper does for every call.
func BenchmarkScanHeaders(b *testing.B) {
	h := http.Header{"Accept-Encoding": {"identity"}, "Amz-Sdk-Invocation-Id": {"00000000-0000-0000-0000-000000000000"},
		"Amz-Sdk-Request": {"attempt=1; max=3"}, "Authorization": {"AWS4-HMAC-SHA256 Credential=..."},
		"User-Agent": {"aws-sdk-go-v2/1.0"}, "X-Amz-Content-Sha256": {"UNSIGNED-PAYLOAD"},
		"X-Amz-Date": {"20261206T000000Z"}, "X-Amz-Security-Token": {"t"}}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := scanHeaders(h); err != nil {
			b.Fatal(err)
		}
	}
}
