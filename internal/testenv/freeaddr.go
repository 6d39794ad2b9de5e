package testenv

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"sync"
	"testing"
)

// FreeAddr returns a loopback address ("127.0.0.1:port") that was free a
// moment ago, for a program the test starts with a --listen flag.
//
// Why not listen on :0 and close: the kernel hands that port out again
// for the next outgoing connection of any process on the machine (it comes
// from the ephemeral range), so under a parallel `go test ./...` another
// package's client could take it before the program binds it ("address
// already in use": one CI run lost). FreeAddr picks at random below the
// ephemeral range, where the kernel never assigns ports by itself; only
// another explicit pick can collide, which this process rules out for
// itself and other processes make unlikely (thousands of ports, random).
func FreeAddr(t testing.TB) string {
	t.Helper()
	port, err := FreePort()
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("127.0.0.1:%d", port)
}

// FreePort is FreeAddr's port, for code without a testing.TB.
func FreePort() (int, error) {
	lo, hi := pickRange()
	for range 200 {
		port := lo + rand.IntN(hi-lo)
		if !claim(port) {
			continue
		}
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			continue // taken by another process
		}
		ln.Close()
		return port, nil
	}
	return 0, fmt.Errorf("no free loopback port in %d-%d after 200 tries", lo, hi)
}

var (
	claimedMu sync.Mutex
	claimed   = map[int]bool{}
)

// claim records port as handed out by this process; false if it already was.
func claim(port int) bool {
	claimedMu.Lock()
	defer claimedMu.Unlock()
	if claimed[port] {
		return false
	}
	claimed[port] = true
	return true
}

// pickRange is the range FreeAddr picks from: from 20000 up to the start
// of the kernel's ephemeral range (32768 by default on Linux).
func pickRange() (lo, hi int) {
	lo, hi = 20000, 32768
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		var first, last int
		if _, err := fmt.Sscan(string(b), &first, &last); err == nil && first > lo+1000 {
			hi = first
		}
	}
	return lo, hi
}
