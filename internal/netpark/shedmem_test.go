//go:build linux

package netpark

import (
	"bytes"
	"io"
	"net"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// vmRSS is the process's resident set in bytes (/proc/self/status).
func vmRSS(t testing.TB) int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.Index(b, []byte("VmRSS:"))
	f := bytes.Fields(b[i+len("VmRSS:"):])
	kb, _ := strconv.ParseInt(string(f[0]), 10, 64)
	return kb << 10
}

func heapAlloc() int64 {
	runtime.GC()
	runtime.GC()
	debug.FreeOSMemory()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapAlloc)
}

// TestIdleSocketsMemory measures what shedding saves per idle session (two
// parked TCP sockets, as a PostgreSQL session through the gateway holds):
// NETPARK_IDLE_SESSIONS sessions are accepted and parked, then shed, then
// as many again are accepted and parked. The peers are bare descriptors
// (no Go object), so that only the parked side counts. With
// NETPARK_IDLE_SHED=0 nothing is shed, for comparison. Skipped unless
// NETPARK_IDLE_SESSIONS is set.
func TestIdleSocketsMemory(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("NETPARK_IDLE_SESSIONS"))
	if n == 0 {
		t.Skip("set NETPARK_IDLE_SESSIONS to measure")
	}
	shed := os.Getenv("NETPARK_IDLE_SHED") != "0"
	p := newPoller(t)
	ln := listen(t)
	addr := ln.Addr().(*net.TCPAddr)
	var peers []int
	var conns []*Conn
	t.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
		for _, fd := range peers {
			unix.Close(fd)
		}
	})
	open := func() {
		for range 2 * n {
			fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
			if err != nil {
				t.Fatal(err)
			}
			sa := &unix.SockaddrInet4{Port: addr.Port}
			copy(sa.Addr[:], addr.IP.To4())
			if err := unix.Connect(fd, sa); err != nil {
				t.Fatal(err)
			}
			peers = append(peers, fd)
			sv, err := ln.Accept()
			if err != nil {
				t.Fatal(err)
			}
			c := p.Wrap(sv).(*Conn)
			if err := c.Park(func() {}); err != nil {
				t.Fatal(err)
			}
			conns = append(conns, c)
		}
	}
	rss0, heap0 := vmRSS(t), heapAlloc()
	open()
	heap1 := heapAlloc()
	rss1 := vmRSS(t)
	if shed {
		for _, c := range conns {
			if !c.Shed() {
				t.Fatal("not shed")
			}
		}
	}
	heap2 := heapAlloc()
	rss2 := vmRSS(t)
	open()
	heap3 := heapAlloc()
	rss3 := vmRSS(t)
	per := func(d int64) int64 { return d / int64(n) }
	t.Logf("%d sessions (2 parked sockets each), shed %v; per session:", n, shed)
	t.Logf("  first %d parked: heap +%d, VmRSS +%d", n, per(heap1-heap0), per(rss1-rss0))
	t.Logf("  after shedding them: heap %+d, VmRSS %+d (against parked)", per(heap2-heap1), per(rss2-rss1))
	t.Logf("  %d more parked: heap +%d, VmRSS +%d", n, per(heap3-heap2), per(rss3-rss2))
	t.Logf("  all %d idle: heap %d, VmRSS %d", 2*n, (heap3-heap0)/int64(2*n), (rss3-rss0)/int64(2*n))
}

// BenchmarkWake is one idle period of a parked connection: park, (shed,)
// a byte from the peer, the wake-up, the read that takes it.
func BenchmarkWake(b *testing.B) {
	for _, shed := range []bool{false, true} {
		name := "parked"
		if shed {
			name = "shed"
		}
		b.Run(name, func(b *testing.B) {
			p, sv, cl := benchPair(b)
			pc := p.Wrap(sv).(*Conn)
			defer pc.Close() // its rebuilt net.Conn, not sv, after shedding
			woke := make(chan struct{}, 1)
			wake := funcWaker(func() { woke <- struct{}{} })
			one, buf := []byte{1}, make([]byte, 1)
			b.ReportAllocs()
			for b.Loop() {
				if err := pc.ParkWaker(wake); err != nil {
					b.Fatal(err)
				}
				if shed && !pc.Shed() {
					b.Fatal("not shed")
				}
				cl.Write(one)
				<-woke
				if _, err := io.ReadFull(pc, buf); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkIO is what the Conn adds to a busy connection's calls through
// its raw connection (as pggw's reader and writer make them), against the
// wrapped net.Conn's own: "io" writes and reads a byte each way, "control"
// is an empty Control call, the wrapper's cost without system calls.
func BenchmarkIO(b *testing.B) {
	for _, wrapped := range []bool{false, true} {
		for _, kind := range []string{"io", "control"} {
			name := map[bool]string{false: "net.Conn", true: "netpark.Conn"}[wrapped] + "/" + kind
			b.Run(name, func(b *testing.B) { benchIO(b, wrapped, kind == "control") })
		}
	}
}

func benchIO(b *testing.B, wrapped, control bool) {
	p, sv, cl := benchPair(b)
	var c net.Conn = sv
	if wrapped {
		c = p.Wrap(sv)
	}
	raw, _ := c.(syscall.Conn).SyscallConn()
	b.ReportAllocs()
	if control {
		nop := func(uintptr) {}
		for b.Loop() {
			raw.Control(nop)
		}
		return
	}
	one := []byte{1}
	wr := func(fd uintptr) bool { unix.Write(int(fd), one); return true }
	rd := func(fd uintptr) bool { _, err := unix.Read(int(fd), one); return err != unix.EAGAIN }
	clRaw, _ := cl.(*net.TCPConn).SyscallConn()
	for b.Loop() {
		raw.Write(wr)
		clRaw.Read(rd)
		clRaw.Write(wr)
		raw.Read(rd)
	}
}

// benchPair returns a poller and the server and client sides of a
// loopback TCP connection, all closed when b ends.
func benchPair(b *testing.B) (*Poller, net.Conn, net.Conn) {
	p, err := New(nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { p.Close() })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	cl, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { cl.Close() })
	sv, err := ln.Accept()
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { sv.Close() })
	return p, sv, cl
}
