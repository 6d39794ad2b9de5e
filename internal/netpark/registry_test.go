//go:build linux

package netpark

import (
	"net"
	"testing"

	"golang.org/x/sys/unix"
)

// TestParkedRegistryBytes bounds what the poller's registry of parked
// connections holds per parked socket (a parked PostgreSQL session through
// the gateway has two): the heap's growth when n accepted, wrapped sockets
// are parked in a poller that had none, nothing else allocated. Its slots
// hold a pointer each (and a freed slot 4 bytes), the slice's spare room
// included about 10 bytes per socket; the map from tokens to connections
// it replaced held 19-39 (groups of eight 16-byte entries and their
// control bytes, 7/8 full at most), 37 at this n (bench/HISTORY.md, "An
// idle session's recorder in one object").
func TestParkedRegistryBytes(t *testing.T) {
	if testing.Short() {
		t.Skip("memory measurement skipped in -short mode")
	}
	const n = 2000
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil || lim.Cur < 2*n+200 {
		t.Skipf("needs %d descriptors (RLIMIT_NOFILE %d)", 2*n+200, lim.Cur)
	}
	p := newPoller(t)
	ln := listen(t)
	conns := make([]*Conn, 0, n)
	for range n {
		c, fd := acceptWrapped(t, p, ln)
		t.Cleanup(func() { c.Close(); unix.Close(fd) })
		conns = append(conns, c)
	}
	before := heapAlloc()
	for _, c := range conns {
		if err := c.Park(func() {}); err != nil {
			t.Fatal(err)
		}
	}
	per := float64(heapAlloc()-before) / n
	t.Logf("%d sockets parked: the registry holds %.1f bytes per socket", n, per)
	if per > maxRegistryBytes {
		t.Errorf("parking %d sockets grew the heap %.1f bytes per socket, more than %d: what does the poller keep per parked connection?", n, per, maxRegistryBytes)
	}
}

// maxRegistryBytes is TestParkedRegistryBytes' bound: above the slots'
// 10 or so, below the map's 19 at its fullest.
const maxRegistryBytes = 16

// acceptWrapped connects a bare socket (no Go object) to ln and returns
// the accepted side, wrapped, not parked, and the peer's descriptor.
func acceptWrapped(t testing.TB, p *Poller, ln net.Listener) (*Conn, int) {
	addr := ln.Addr().(*net.TCPAddr)
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	sa := &unix.SockaddrInet4{Port: addr.Port}
	copy(sa.Addr[:], addr.IP.To4())
	if err := unix.Connect(fd, sa); err != nil {
		unix.Close(fd)
		t.Fatal(err)
	}
	sv, err := ln.Accept()
	if err != nil {
		unix.Close(fd)
		t.Fatal(err)
	}
	return p.Wrap(sv).(*Conn), fd
}
