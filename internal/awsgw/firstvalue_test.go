package awsgw

import (
	"net/http"
	"testing"
)

// firstValue answers as Header.Get does for the canonical keys it is
// given, absent, empty and repeated ones included.
func TestFirstValue(t *testing.T) {
	h := http.Header{"Authorization": {"a", "b"}, "Expect": {}, "Content-Length": {""}}
	for _, k := range []string{"Authorization", "Expect", "Content-Length", "Upgrade", "Connection"} {
		if got, want := firstValue(h, k), h.Get(k); got != want {
			t.Errorf("firstValue(%q) = %q, Header.Get %q", k, got, want)
		}
	}
}
