package pggw

import (
	"bytes"
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
		{"cancelKey", unsafe.Sizeof(cancelKey{}), 32},
	} {
		if s.size > s.max {
			t.Errorf("%s is %d bytes, more than %d: an idle session holds it", s.name, s.size, s.max)
		}
	}
}

// A cancel key keeps the upstream's secret key, of 4 bytes (protocol 3.0)
// or longer (3.2 allows up to 256), as a copy.
func TestCancelKeySecret(t *testing.T) {
	for _, n := range []int{4, 32, 1} {
		in := bytes.Repeat([]byte{7}, n)
		k := newCancelKey(nil, 42, in)
		in[0] = 9
		if got := k.key(); !bytes.Equal(got, bytes.Repeat([]byte{7}, n)) || k.pid != 42 {
			t.Errorf("a %d-byte key is kept as %v (pid %d)", n, got, k.pid)
		}
	}
}
