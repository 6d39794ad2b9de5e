package pggw

import (
	"testing"
	"unsafe"
)

// An idle session holds its conn for as long as it idles: each of these
// bounds is the size class the struct was brought into (bench/README.md,
// "An idle session's own objects, trimmed"); a field more spills into the
// next class.
func TestIdleSessionStructSizes(t *testing.T) {
	for _, s := range []struct {
		name      string
		size, max uintptr
	}{
		{"conn", unsafe.Sizeof(conn{}), 224},
		{"relayState", unsafe.Sizeof(relayState{}), 160},
	} {
		if s.size > s.max {
			t.Errorf("%s is %d bytes, more than %d: an idle session holds it", s.name, s.size, s.max)
		}
	}
}
