//go:build linux

package pggw

import (
	"errors"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"testing"
	"unsafe"

	"github.com/airlock-dev/airlock/internal/testenv"
	"golang.org/x/sys/unix"
)

// BenchmarkRelayFloor measures what a relay costs in Go before it does
// anything a gateway does: two transparent byte relays in this process,
// with no parsing, recording or holding, carry `pgbench -S` (8 clients)
// to PostgreSQL, beside PgBouncer in session mode, in one run:
//
//	goroutines  a goroutine per direction, each blocked in net.Conn.Read
//	            and writing what it read: the design of the gateway's relay
//	epoll       one goroutine for every session: an epoll set of its own,
//	            level-triggered, registered with Go's poller (an epoll
//	            descriptor is readable when it has events), waited on
//	            through RawConn.Read; each ready socket is read once and
//	            its bytes written to its peer, with raw system calls
//	epoll-shared  the same loop, but every socket also stays open in Go's
//	            poller, as an event loop in the gateway must keep them so
//	            that a session can go back to a goroutine
//
// It says how far a change of design could take the gateway's relay
// toward PgBouncer's CPU per statement; cpu-us/stmt is this process's CPU
// (the relay's) or PgBouncer's.
func BenchmarkRelayFloor(b *testing.B) {
	pgbench := testenv.Tool(b, "pgbench", "install it with: apt-get install postgresql-client")
	e := newEnv(b, nil)
	if out, err := exec.Command(pgbench, "-i", "-q", "-s", "1", e.dbDSN).CombinedOutput(); err != nil {
		b.Fatalf("pgbench -i: %v\n%s", err, out)
	}
	u, err := url.Parse(e.dbDSN)
	if err != nil {
		b.Fatal(err)
	}
	upstream := u.Host
	through := func(ln net.Listener) string {
		v := *u
		v.Host = ln.Addr().String()
		return v.String()
	}
	bouncerPID, bouncerDSN := startBouncer(b, e.dbDSN)
	for _, mode := range []string{"simple", "prepared"} {
		b.Run("pgbouncer/"+mode, func(b *testing.B) { runBouncer(b, pgbench, mode, bouncerPID, bouncerDSN) })
		b.Run("goroutines/"+mode, func(b *testing.B) {
			ln := floorListen(b)
			go serveGoroutines(ln, upstream)
			_, tps, cpu := runPgbench(b, pgbench, mode, []string{through(ln)}, nil, nil)
			b.ReportMetric(tps, "stmts/s")
			b.ReportMetric(cpu, "cpu-us/stmt")
		})
		for _, shared := range []bool{false, true} {
			name := "epoll/"
			if shared {
				name = "epoll-shared/"
			}
			b.Run(name+mode, func(b *testing.B) {
				ln := floorListen(b)
				r, err := newEpollRelay()
				if err != nil {
					b.Fatal(err)
				}
				defer r.close()
				r.shared = shared
				go r.loop()
				go r.serve(ln, upstream)
				_, tps, cpu := runPgbench(b, pgbench, mode, []string{through(ln)}, nil, nil)
				b.ReportMetric(tps, "stmts/s")
				b.ReportMetric(cpu, "cpu-us/stmt")
			})
		}
	}
}

func floorListen(b *testing.B) net.Listener {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ln.Close() })
	return ln
}

// acceptPairs calls relay with every connection of ln and a new
// connection to upstream, until ln is closed.
func acceptPairs(ln net.Listener, upstream string, relay func(c, u net.Conn)) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		u, err := net.Dial("tcp", upstream)
		if err != nil {
			c.Close()
			continue
		}
		relay(c, u)
	}
}

// serveGoroutines relays every connection of ln to upstream with a
// goroutine per direction.
func serveGoroutines(ln net.Listener, upstream string) {
	acceptPairs(ln, upstream, func(c, u net.Conn) {
		pump := func(dst, src net.Conn) {
			defer dst.Close()
			defer src.Close()
			buf := make([]byte, ioBufSize)
			for {
				n, err := src.Read(buf)
				if n > 0 {
					if _, werr := dst.Write(buf[:n]); werr != nil {
						return
					}
				}
				if err != nil {
					return
				}
			}
		}
		go pump(u, c)
		go pump(c, u)
	})
}

// epollRelay relays sessions from one goroutine (see BenchmarkRelayFloor).
type epollRelay struct {
	epfd  int
	f     *os.File
	rc    syscall.RawConn
	mu    sync.Mutex
	peers map[int]int
	buf   []byte
	// shared keeps the connections open in Go's poller (see
	// BenchmarkRelayFloor); keep holds them.
	shared bool
	keep   []net.Conn
}

func newEpollRelay() (*epollRelay, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	if err := unix.SetNonblock(epfd, true); err != nil {
		unix.Close(epfd)
		return nil, err
	}
	// Non-blocking, so os registers it with the runtime's poller.
	f := os.NewFile(uintptr(epfd), "epoll")
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, err
	}
	return &epollRelay{epfd: epfd, f: f, rc: rc, peers: map[int]int{}, buf: make([]byte, 64<<10)}, nil
}

func (r *epollRelay) close() {
	r.f.Close()
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range r.keep {
		c.Close()
	}
}

// serve hands every connection of ln, and its upstream, to the loop.
func (r *epollRelay) serve(ln net.Listener, upstream string) {
	acceptPairs(ln, upstream, func(c, u net.Conn) {
		var a, b int
		if r.shared {
			a, b = fdOf(c), fdOf(u)
			r.mu.Lock()
			r.keep = append(r.keep, c, u)
			r.mu.Unlock()
		} else {
			a, b = steal(c), steal(u)
		}
		if a < 0 || b < 0 {
			return
		}
		r.mu.Lock()
		r.peers[a], r.peers[b] = b, a
		r.mu.Unlock()
		for _, fd := range []int{a, b} {
			ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP, Fd: int32(fd)}
			_ = unix.EpollCtl(r.epfd, unix.EPOLL_CTL_ADD, fd, &ev)
		}
	})
}

// fdOf returns c's descriptor, which stays c's (and in Go's poller).
func fdOf(c net.Conn) int {
	raw, err := c.(syscall.Conn).SyscallConn()
	if err != nil {
		return -1
	}
	fd := -1
	_ = raw.Control(func(d uintptr) { fd = int(d) })
	return fd
}

// steal takes c's socket out of the runtime's poller: a duplicate of its
// descriptor (non-blocking, as the description is) survives c's Close,
// which removes the original from the runtime's epoll set.
func steal(c net.Conn) int {
	raw, err := c.(syscall.Conn).SyscallConn()
	if err != nil {
		c.Close()
		return -1
	}
	nfd := -1
	_ = raw.Control(func(fd uintptr) { nfd, _ = unix.Dup(int(fd)) })
	c.Close()
	return nfd
}

// loop waits for ready sockets in the runtime's poller and relays them.
func (r *epollRelay) loop() {
	events := make([]unix.EpollEvent, 128)
	n := 0
	wait := func(fd uintptr) bool {
		m, _, e := syscall.RawSyscall6(unix.SYS_EPOLL_PWAIT, fd, uintptr(unsafe.Pointer(&events[0])), uintptr(len(events)), 0, 0, 0)
		if e != 0 {
			n = 0
			return e != syscall.EINTR && e != syscall.EAGAIN
		}
		n = int(m)
		return n > 0
	}
	for {
		if err := r.rc.Read(wait); err != nil {
			return
		}
		for i := range n {
			fd := int(events[i].Fd)
			r.mu.Lock()
			peer, ok := r.peers[fd]
			r.mu.Unlock()
			if !ok {
				continue
			}
			m, err := rawRead(uintptr(fd), r.buf)
			if errors.Is(err, syscall.EAGAIN) {
				continue
			}
			if m <= 0 || writeFull(peer, r.buf[:m]) != nil {
				r.mu.Lock()
				delete(r.peers, fd)
				delete(r.peers, peer)
				r.mu.Unlock()
				if r.shared {
					// The connections own the descriptors: closed by close.
					_ = unix.EpollCtl(r.epfd, unix.EPOLL_CTL_DEL, fd, nil)
					_ = unix.EpollCtl(r.epfd, unix.EPOLL_CTL_DEL, peer, nil)
				} else {
					unix.Close(fd)
					unix.Close(peer)
				}
			}
		}
	}
}

// writeFull writes p to a non-blocking fd, waiting in poll(2) when full
// (rare here: pgbench's messages are small).
func writeFull(fd int, p []byte) error {
	for len(p) > 0 {
		m, err := rawWrite(uintptr(fd), p)
		if errors.Is(err, syscall.EAGAIN) {
			_, _ = unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLOUT}}, -1)
			continue
		}
		if err != nil {
			return err
		}
		if m == 0 {
			return io.ErrShortWrite
		}
		p = p[m:]
	}
	return nil
}
