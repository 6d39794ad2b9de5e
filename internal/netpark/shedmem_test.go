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
	"time"

	"golang.org/x/sys/unix"
)

// vmRSS is the process's resident set in bytes (/proc/self/status).
func vmRSS(t testing.TB) int64 { return procStatus(t, "VmRSS:") }

// procStatus reads a size in bytes from /proc/self/status.
func procStatus(t testing.TB, key string) int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.Index(b, []byte(key))
	if i < 0 {
		t.Fatalf("no %s in /proc/self/status", key)
	}
	f := bytes.Fields(b[i+len(key):])
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

// acceptParked connects a bare socket (no Go object: only the accepted
// side counts) to ln and returns the accepted side, wrapped and parked,
// and the bare peer's descriptor.
func acceptParked(t testing.TB, p *Poller, ln net.Listener) (*Conn, int) {
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
	c := p.Wrap(sv).(*Conn)
	if err := c.Park(func() {}); err != nil {
		unix.Close(fd)
		t.Fatal(err)
	}
	return c, fd
}

// parkedSet holds sockets accepted and parked by acceptParked, closed
// with their peers when the test ends.
type parkedSet struct {
	t     testing.TB
	p     *Poller
	ln    net.Listener
	conns []*Conn
	peers []int
}

func newParkedSet(t testing.TB, p *Poller, ln net.Listener) *parkedSet {
	ps := &parkedSet{t: t, p: p, ln: ln}
	t.Cleanup(func() {
		for _, c := range ps.conns {
			c.Close()
		}
		for _, fd := range ps.peers {
			unix.Close(fd)
		}
	})
	return ps
}

// add accepts and parks one more socket.
func (ps *parkedSet) add() {
	c, fd := acceptParked(ps.t, ps.p, ps.ln)
	ps.conns, ps.peers = append(ps.conns, c), append(ps.peers, fd)
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
	ps := newParkedSet(t, p, ln)
	open := func() {
		for range 2 * n {
			ps.add()
		}
	}
	rss0, heap0 := vmRSS(t), heapAlloc()
	open()
	heap1 := heapAlloc()
	rss1 := vmRSS(t)
	if shed {
		for _, c := range ps.conns {
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

// TestBurstPollDescriptors measures what a burst of logins leaves behind
// in the runtime's poll descriptors (the runtime allocates them outside
// the heap, 4 KiB blocks at a time, and keeps every one for the next
// socket), with and without ShedWhenCrowded: NETPARK_BURST_SESSIONS
// sessions (two accepted, parked sockets each; bare peers) opened one
// every NETPARK_BURST_PACE (default 2ms, about a login through the
// gateway), then RssAnon's growth per session once all are shed, after a
// collection that gives the heap's free pages back. Skipped unless NETPARK_BURST_SESSIONS is set; NETPARK_BURST_CROWD=0
// measures without the crowd rule.
func TestBurstPollDescriptors(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("NETPARK_BURST_SESSIONS"))
	if n == 0 {
		t.Skip("set NETPARK_BURST_SESSIONS to measure")
	}
	pace := 2 * time.Millisecond
	if v := os.Getenv("NETPARK_BURST_PACE"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatal(err)
		}
		pace = d
	}
	crowd := os.Getenv("NETPARK_BURST_CROWD") != "0"
	p := newPoller(t)
	if crowd {
		p.ShedWhenCrowded(64)
	}
	p.ShedAfter(5 * time.Second)
	ln := listen(t)
	ps := newParkedSet(t, p, ln)
	// RssAnon after a collection that gives the heap's free pages back:
	// the live heap, the runtime's structures outside it as far as they
	// were touched (the poll descriptors), and stacks.
	anon := func() int64 {
		heapAlloc()
		return procStatus(t, "RssAnon:")
	}
	anon0 := anon()
	start := time.Now()
	for range n {
		for range 2 {
			ps.add()
		}
		time.Sleep(pace)
	}
	took := time.Since(start)
	// Every socket shed, by the crowd's sweeps or ShedAfter's.
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		k := 0
		for _, c := range ps.conns {
			if c.Bare() {
				k++
			}
		}
		if k == len(ps.conns) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d sockets shed after 30 s", k, len(ps.conns))
		}
	}
	t.Logf("%d sessions in %v, crowd rule %v: RssAnon grew %d bytes per session", n, took.Round(time.Millisecond), crowd, (anon()-anon0)/int64(n))
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
