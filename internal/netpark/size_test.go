package netpark

import (
	"errors"
	"testing"
	"unsafe"
)

// A parked (or shed) idle session holds two Conns for as long as it
// idles: Conn stays within the 80-byte size class (bench/README.md, "An
// idle session's objects, trimmed").
func TestConnSize(t *testing.T) {
	if n := unsafe.Sizeof(Conn{}); n > 80 {
		t.Errorf("netpark.Conn is %d bytes, more than 80 (the next size class is 96)", n)
	}
}

// A call beyond maxBusy concurrent ones fails instead of wrapping the
// count (which would let the connection be shed under calls in progress);
// the count is left as it was.
func TestBusyBound(t *testing.T) {
	p := newPoller(t)
	pc, _ := pair(t, p, listen(t))
	pc.mu.Lock()
	pc.busy = maxBusy
	pc.mu.Unlock()
	if _, err := pc.Write([]byte("x")); !errors.Is(err, errBusy) {
		t.Fatalf("a write past maxBusy calls: %v, want errBusy", err)
	}
	pc.mu.Lock()
	busy := pc.busy
	pc.busy = 0
	pc.mu.Unlock()
	if busy != maxBusy {
		t.Fatalf("busy is %d after the refused call, want %d", busy, maxBusy)
	}
	if _, err := pc.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
}
