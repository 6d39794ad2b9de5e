package s3iam

import (
	"strings"
	"testing"
)

func TestAmzKindOfSkipsByLength(t *testing.T) {
	for _, tc := range []struct {
		name string
		want amzKind
	}{
		{"date", amzOther},
		{"Content-Sha256", amzOther},
		{"Security-Token", amzOther},
		{"Grant-Read", amzGrant},
		{"grant-full-control", amzGrant},
		{"Tagging", amzTagging},
		{"ACL", amzACL},
		{"Object-Loc\u212a-Mode", amzLock}, // longer than its name: the EqualFold path
		{"Bypa\u017fs-Governance-Retention", amzBypass},
		{"Grant\u212a", amzOther},
		{strings.Repeat("a", 70), amzOther},
	} {
		if got := amzKindOf(tc.name); got != tc.want {
			t.Errorf("amzKindOf(%q) = %d, want %d", tc.name, got, tc.want)
		}
	}
}

// FuzzScanHeaderNames holds scanHeaders' ASCII tests of a header key
// (Range, the x-amz- prefix) to the strings.EqualFold tests they
// replaced, and amzKindOf's length filter to amzKindOfAny, what
// amzKindOf was before it, for any key.
func FuzzScanHeaderNames(f *testing.F) {
	for _, k := range []string{"Range", "RANGE", "Rang\u212a", "X-Amz-Date", "x-AMZ-tagging", "X-Amz-Object-Loc\u212a-Mode", "X-Amz-Grant-Read", "X-Amz\xff", "X-Amz-" + strings.Repeat("a", 40)} {
		f.Add(k)
	}
	f.Fuzz(func(t *testing.T, k string) {
		if got, want := len(k) == len("range") && hasLowerPrefixFold(k, "range"), strings.EqualFold(k, "Range"); got != want {
			t.Fatalf("Range test of %q: %v, EqualFold %v", k, got, want)
		}
		amz := len(k) >= 6 && strings.EqualFold(k[:6], "x-amz-")
		if got := hasLowerPrefixFold(k, "x-amz-"); got != amz {
			t.Fatalf("x-amz- test of %q: %v, EqualFold %v", k, got, amz)
		}
		if got, want := amzKindOf(k), amzKindOfAny(k); got != want {
			t.Fatalf("amzKindOf(%q) = %d, before %d", k, got, want)
		}
		if amz {
			if got, want := amzKindOf(k[6:]), amzKindOfAny(k[6:]); got != want {
				t.Fatalf("amzKindOf(%q) = %d, before %d", k[6:], got, want)
			}
		}
	})
}
