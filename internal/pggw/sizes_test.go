package pggw

import (
	"bytes"
	"testing"
	"unsafe"

	"github.com/airlock-dev/airlock/internal/netpark"
)

// An idle session holds its conn for as long as it idles, with its
// relayState, cancel key and client socket's netpark.Conn inside it (one
// allocation: bench/HISTORY.md, "An idle session in fewer objects"). conn's
// bound is the size class it was brought into, 480: the four were 224,
// 160, 32 and 80 bytes apart, each a size class of its own, and 496
// together (the 512 class) until conn's pointer to its relayState went and
// sessCtx's flag byte moved into conn's padding. The parts' bounds keep
// each as small as it was, so a field more in one shows there too.
func TestIdleSessionStructSizes(t *testing.T) {
	for _, s := range []struct {
		name      string
		size, max uintptr
	}{
		{"conn", unsafe.Sizeof(conn{}), 480},
		{"conn without its parts", unsafe.Sizeof(conn{}) - unsafe.Sizeof(relayState{}) - unsafe.Sizeof(cancelKey{}) - unsafe.Sizeof(netpark.Conn{}), 208},
		{"relayState", unsafe.Sizeof(relayState{}), 160},
		{"cancelKey", unsafe.Sizeof(cancelKey{}), 32},
		{"sessCtx", unsafe.Sizeof(sessCtx{}), 16},
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
