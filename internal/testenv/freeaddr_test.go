package testenv

import (
	"net"
	"strconv"
	"testing"
)

// TestFreeAddrBelowEphemeral: FreeAddr's ports are outside the range the
// kernel hands to outgoing connections and :0 listeners, never the same
// twice in one process, and bindable.
func TestFreeAddrBelowEphemeral(t *testing.T) {
	lo, hi := pickRange()
	seen := map[string]bool{}
	for range 50 {
		addr := FreeAddr(t)
		if seen[addr] {
			t.Fatalf("%s handed out twice", addr)
		}
		seen[addr] = true
		_, p, _ := net.SplitHostPort(addr)
		port, _ := strconv.Atoi(p)
		if port < lo || port >= hi {
			t.Fatalf("%s outside %d-%d", addr, lo, hi)
		}
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			t.Fatalf("%s not bindable: %v", addr, err)
		}
		ln.Close()
	}
	// The ephemeral range itself: a :0 listener's port is never in ours.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if p := ln.Addr().(*net.TCPAddr).Port; p >= lo && p < hi {
		t.Fatalf("kernel picked %d, inside FreeAddr's range %d-%d", p, lo, hi)
	}
}
