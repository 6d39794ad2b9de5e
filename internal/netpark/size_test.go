package netpark

import (
	"testing"
	"unsafe"
)

// A parked (or shed) idle session holds two Conns for as long as it
// idles: Conn stays within the 80-byte size class (bench/HISTORY.md, "An
// idle session's own objects, trimmed").
func TestConnSize(t *testing.T) {
	if n := unsafe.Sizeof(Conn{}); n > 80 {
		t.Errorf("netpark.Conn is %d bytes, more than 80 (the next size class is 96)", n)
	}
}
