package netpark

import (
	"errors"
	"log/slog"
	"net"
	"os"
	"runtime/debug"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Poller is one epoll instance and the goroutine that waits on it.
type Poller struct {
	log  *slog.Logger
	epfd int
	evfd int // an eventfd that stops the poller's loop
	done chan struct{}
	once sync.Once

	mu     sync.Mutex
	closed bool
	// The parked connections, by the slot their token names: a token is
	// a registration's sequence number (high 32 bits, never 0) and its
	// slot in parked (low 32 bits), and a slot freed is reused (free). A
	// stale event, one whose connection was unparked before the loop took
	// it, finds another registration's token in the slot's connection (or
	// none) and is dropped (Conn.fired), as the map this replaced dropped
	// a token it no longer held. A slot is 8 bytes per parked socket, and
	// a free one 4 more; the map cost 19-39 per socket (its groups of 8
	// entries of 16 bytes, 7/8 full at most), and a parked session has two
	// (TestParkedRegistryBytes; bench/HISTORY.md, "An idle session's
	// recorder in one object").
	seq     uint32
	parked  []*Conn
	free    []uint32
	nParked int

	shedOnce sync.Once
	sweepMu  sync.Mutex
	sweepBuf []*Conn // sweep's candidates, kept between sweeps
	young    int     // the last sweep's parked connections left unshed (sweepMu)
	// onSweep, if set, is called by the sweeping goroutine after each
	// sweep, with the number of connections it shed (OnSweep).
	onSweep func(shed int)

	// crowd, if positive, is ShedWhenCrowded's count: so many parks
	// since the last sweep (fresh, under mu) kick the sweeping goroutine
	// (kick) to sweep early, at most once per crowdGap.
	crowd    int
	fresh    int
	kick     chan struct{}
	crowdGap time.Duration
}

// stopToken is the eventfd's token; a connection's token is never 0 and
// never reaches it (its slot is below maxSlots).
const stopToken = ^uint64(0)

// maxSlots bounds the connections parked at once in one poller, far above
// any process's descriptors; a Park past it fails (errTooMany).
const maxSlots = 1<<31 - 1

var errTooMany = errors.New("netpark: too many parked connections")

// New starts a poller. log receives contained panics (slog.Default if nil).
func New(log *slog.Logger) (*Poller, error) {
	if log == nil {
		log = slog.Default()
	}
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	evfd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		unix.Close(epfd)
		return nil, err
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN}
	setToken(&ev, stopToken)
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, evfd, &ev); err != nil {
		unix.Close(epfd)
		unix.Close(evfd)
		return nil, err
	}
	p := &Poller{log: log, epfd: epfd, evfd: evfd, done: make(chan struct{}),
		kick: make(chan struct{}, 1), crowdGap: crowdGap}
	go p.loop()
	return p, nil
}

// Wrap returns nc as a *Conn if it has a file descriptor, nc itself
// otherwise (a TLS connection, net.Pipe).
func (p *Poller) Wrap(nc net.Conn) net.Conn {
	raw := p.rawOf(nc)
	if raw == nil {
		return nc
	}
	return &Conn{nc: nc, p: p, raw: raw, fd: -1}
}

// WrapInto is Wrap with the caller's storage: it makes *c the Conn for nc
// and returns c, so that a caller that keeps one per connection (pggw's
// client socket) holds it inside its own object rather than as an
// allocation of its own (bench/HISTORY.md, "An idle session in fewer
// objects"). c must be a zero Conn that is never copied; nc is returned
// unchanged, and c left as it was, where Wrap would return nc.
func (p *Poller) WrapInto(c *Conn, nc net.Conn) net.Conn {
	raw := p.rawOf(nc)
	if raw == nil {
		return nc
	}
	c.nc, c.p, c.raw, c.fd = nc, p, raw, -1
	return c
}

// rawOf returns nc's raw connection, or nil where it is not to be
// wrapped (no poller, no file descriptor).
func (p *Poller) rawOf(nc net.Conn) syscall.RawConn {
	if p == nil {
		return nil
	}
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return nil
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	return raw
}

// parkEvents are what a parked connection waits for, once.
const parkEvents = unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLONESHOT

// setToken stores tok in the event's user data (Fd and Pad: 8 bytes).
func setToken(ev *unix.EpollEvent, tok uint64) {
	ev.Fd, ev.Pad = int32(uint32(tok)), int32(uint32(tok>>32))
}

func token(ev *unix.EpollEvent) uint64 {
	return uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32
}

// register adds c's descriptor to the epoll set, one-shot; c.mu held.
func (p *Poller) register(c *Conn) (uint64, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return 0, ErrClosed
	}
	if p.seq++; p.seq == 0 {
		p.seq = 1 // a token is never 0 (Conn.tok's "not parked")
	}
	var slot uint32
	if n := len(p.free); n > 0 {
		slot = p.free[n-1]
	} else if len(p.parked) < maxSlots {
		slot = uint32(len(p.parked))
	} else {
		return 0, errTooMany
	}
	tok := uint64(p.seq)<<32 | uint64(slot)
	ev := unix.EpollEvent{Events: parkEvents}
	setToken(&ev, tok)
	var cerr error
	if c.nc == nil {
		// Shed, and woken but not used since: its bare descriptor,
		// open while c.mu is held.
		if c.fd < 0 {
			return 0, ErrClosed
		}
		cerr = unix.EpollCtl(p.epfd, unix.EPOLL_CTL_ADD, int(c.fd), &ev)
	} else {
		// Inside Control the descriptor cannot be closed under us.
		err := c.raw.Control(func(fd uintptr) {
			cerr = unix.EpollCtl(p.epfd, unix.EPOLL_CTL_ADD, int(fd), &ev)
		})
		if err != nil {
			return 0, ErrClosed
		}
	}
	if cerr != nil {
		return 0, cerr
	}
	if n := len(p.free); n > 0 {
		p.free = p.free[:n-1]
		p.parked[slot] = c
	} else {
		p.parked = append(p.parked, c)
	}
	p.nParked++
	if p.fresh++; p.crowd > 0 && p.fresh >= p.crowd {
		select {
		case p.kick <- struct{}{}:
		default:
		}
	}
	return tok, nil
}

// unregister removes c's registration tok; c.mu held. If c's descriptor
// is already closed (not through Conn.Close), the kernel has removed the
// registration with it, and Control fails without touching a descriptor
// number that may now be another connection's.
func (p *Poller) unregister(c *Conn, tok uint64) {
	p.mu.Lock()
	if slot := uint32(tok); int(slot) < len(p.parked) && p.parked[slot] == c {
		p.parked[slot] = nil
		p.free = append(p.free, slot)
		p.nParked--
	}
	p.mu.Unlock()
	if c.nc == nil {
		if c.fd >= 0 {
			_ = unix.EpollCtl(p.epfd, unix.EPOLL_CTL_DEL, int(c.fd), nil)
		}
		return
	}
	_ = c.raw.Control(func(fd uintptr) {
		_ = unix.EpollCtl(p.epfd, unix.EPOLL_CTL_DEL, int(fd), nil)
	})
}

// loop waits for events until Close.
func (p *Poller) loop() {
	defer close(p.done)
	events := make([]unix.EpollEvent, 128)
	for {
		n, err := unix.EpollWait(p.epfd, events, -1)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			p.log.Error("netpark: epoll_wait failed; parked connections are woken", "err", err)
			p.closeParked()
			return
		}
		for i := range n {
			tok := token(&events[i])
			if tok == stopToken {
				return
			}
			var c *Conn
			p.mu.Lock()
			if slot := uint32(tok); int(slot) < len(p.parked) {
				c = p.parked[slot]
			}
			p.mu.Unlock()
			if c != nil {
				c.fired(tok)
			}
		}
	}
}

// Len is the number of parked connections.
func (p *Poller) Len() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.nParked
}

// Close stops the poller: every parked connection is woken (its callback
// started), later Parks fail with ErrClosed. It does not wait for the
// callbacks: they are the caller's goroutines.
func (p *Poller) Close() error {
	var err error
	p.once.Do(func() {
		// The eventfd counter is a native-endian uint64; any non-zero
		// value makes it readable.
		one := [8]byte{1, 1, 1, 1, 1, 1, 1, 1}
		_, _ = unix.Write(p.evfd, one[:])
		<-p.done
		p.closeParked()
		unix.Close(p.evfd)
		err = unix.Close(p.epfd)
	})
	return err
}

// closeParked marks p closed and wakes every parked connection.
func (p *Poller) closeParked() {
	p.mu.Lock()
	p.closed = true
	conns := make([]*Conn, 0, p.nParked)
	for _, c := range p.parked {
		if c != nil {
			conns = append(conns, c)
		}
	}
	p.mu.Unlock()
	for _, c := range conns {
		c.mu.Lock()
		wake := c.unparkLocked()
		c.mu.Unlock()
		p.run(wake)
	}
}

// Shedding.
//
// A parked connection still holds its net.Conn: Go's netFD with its
// addresses (about 300 bytes of heap per TCP socket) and the runtime's
// poll descriptor (512 bytes outside the heap, kept for reuse by the next
// socket the process opens). Shed keeps only a duplicate of the socket's
// descriptor and closes the net.Conn; the next use of the Conn (a read
// after the wake-up, a write, a deadline, a raw call) rebuilds one with
// net.FileConn. Rebuilding costs about a dozen system calls and 1 KB of
// allocations, so only connections parked for a while are shed.

// Shed sheds c now if it is parked, TCP, unused and without a deadline:
// it reports whether c is shed. Poller.ShedAfter sheds connections parked
// long enough; Shed is for callers (tests) that cannot wait.
func (c *Conn) Shed() bool { return c.shed(0) }

// shedAge is how many sweeps a connection must stay parked through to be
// shed: parked for at least ShedAfter (sweeps are ShedAfter/2 apart).
const shedAge = 3

func (c *Conn) shed(minAge uint8) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed() || c.tok == 0 || c.nc == nil || c.busy != 0 || c.flags&(flRdl|flWdl) != 0 || c.age < minAge {
		return false
	}
	if _, ok := c.nc.(*net.TCPConn); !ok {
		return false
	}
	ev := unix.EpollEvent{Events: parkEvents}
	setToken(&ev, c.tok)
	nfd := -1
	err := c.raw.Control(func(fd uintptr) {
		d, err := unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 0)
		if err != nil {
			return
		}
		// The registration moves to the duplicate before the original
		// closes: epoll keys it by descriptor and file, so left on the
		// original it would outlive its number (the file stays open
		// through the duplicate) and could never be removed.
		if unix.EpollCtl(c.p.epfd, unix.EPOLL_CTL_ADD, d, &ev) != nil {
			unix.Close(d)
			return
		}
		_ = unix.EpollCtl(c.p.epfd, unix.EPOLL_CTL_DEL, int(fd), nil)
		nfd = d
	})
	if err != nil || nfd < 0 {
		return false
	}
	// An event of the original registration already taken by the loop
	// carries the same token: it wakes c as the duplicate's would.
	_ = c.nc.Close()
	c.nc, c.raw, c.fd = nil, nil, int32(nfd)
	return true
}

// restoreLocked rebuilds a shed connection's net.Conn from its bare
// descriptor, moving its registration to it if it is parked; c.mu held.
// It fails with net.ErrClosed once c is closed. If the rebuild fails
// (descriptors exhausted), c is closed, as a connection whose socket
// failed; if the registration cannot move, c is unparked. Either way the
// wake-up returned (nil if c was not parked) is to be run.
func (c *Conn) restoreLocked() (Waker, error) {
	if c.closed() || c.fd < 0 {
		return nil, net.ErrClosed
	}
	// f owns the bare descriptor from here: f.Close closes it (it must,
	// or f's cleanup would close the number later, whoever has it then).
	f := os.NewFile(uintptr(c.fd), "")
	defer f.Close()
	nc, err := net.FileConn(f)
	var raw syscall.RawConn
	if err == nil {
		// Never a panic under c.mu: use does not defer its unlock.
		if sc, ok := nc.(syscall.Conn); !ok {
			err = errors.New("netpark: rebuilt connection has no descriptor")
		} else {
			raw, err = sc.SyscallConn()
		}
		if err != nil {
			nc.Close()
		}
	}
	if err != nil {
		c.flags |= flClosed
		wake := c.unparkLocked() // from the bare descriptor, still open
		c.fd = -1                // f closes it
		return wake, err
	}
	var wake Waker
	if c.tok != 0 {
		ev := unix.EpollEvent{Events: parkEvents}
		setToken(&ev, c.tok)
		moved := false
		_ = raw.Control(func(fd uintptr) {
			if unix.EpollCtl(c.p.epfd, unix.EPOLL_CTL_ADD, int(fd), &ev) == nil {
				_ = unix.EpollCtl(c.p.epfd, unix.EPOLL_CTL_DEL, int(c.fd), nil)
				moved = true
			}
		})
		if !moved {
			// Unparked (from the bare descriptor, still open) and
			// woken: its owner reads, which is always safe.
			wake = c.unparkLocked()
		}
	}
	c.nc, c.raw, c.fd = nc, raw, -1
	return wake, nil
}

// closeBareLocked closes a shed connection's descriptor; c.mu held, c
// unparked.
func (c *Conn) closeBareLocked() {
	if c.fd >= 0 {
		unix.Close(int(c.fd))
		c.fd = -1
	}
}

// bareAddrLocked reads a shed connection's address from its descriptor;
// nil once closed. c.mu held.
func (c *Conn) bareAddrLocked(remote bool) net.Addr {
	if c.fd < 0 {
		return nil
	}
	var sa unix.Sockaddr
	var err error
	if remote {
		sa, err = unix.Getpeername(int(c.fd))
	} else {
		sa, err = unix.Getsockname(int(c.fd))
	}
	if err != nil {
		return nil
	}
	switch sa := sa.(type) {
	case *unix.SockaddrInet4:
		return &net.TCPAddr{IP: net.IP(sa.Addr[:]).To16(), Port: sa.Port}
	case *unix.SockaddrInet6:
		a := &net.TCPAddr{IP: net.IP(sa.Addr[:]), Port: sa.Port}
		if sa.ZoneId != 0 {
			if ifi, err := net.InterfaceByIndex(int(sa.ZoneId)); err == nil {
				a.Zone = ifi.Name
			}
		}
		return a
	}
	return nil
}

// ShedAfter makes p shed the connections that stay parked for d (up to
// 1.5 d): a goroutine sweeps the parked connections every d/2 until p is
// closed. The first call with d > 0 counts; later ones do nothing.
func (p *Poller) ShedAfter(d time.Duration) {
	if d <= 0 {
		return
	}
	p.shedOnce.Do(func() {
		go func() {
			t := time.NewTicker(d / 2)
			defer t.Stop()
			var (
				last  time.Time        // the last sweep's
				soon  <-chan time.Time // a crowd's sweep put off to last+crowdGap
				young int              // parked, not shed, after the last sweep
			)
			for {
				select {
				case <-p.done:
					return
				case <-t.C:
					young = p.sweepAndReport(shedAge)
				case <-p.kick:
					if wait := p.crowdGap - time.Since(last); wait > 0 {
						if soon == nil {
							soon = time.After(wait)
						}
						continue
					}
					young = p.sweepAndReport(crowdAge)
				case <-soon:
					soon = nil
					young = p.sweepAndReport(crowdAge)
				}
				last = time.Now()
				// A crowd's sockets parked since the previous sweep are
				// shed by the next one, whether or not more park.
				if p.crowd > 0 && young >= p.crowd && soon == nil {
					soon = time.After(p.crowdGap)
				}
			}
		}()
	})
}

// Crowds. A burst of logins parks sockets faster than ShedAfter's sweeps
// shed them: every socket parked within ShedAfter of the burst keeps its
// net.Conn and the runtime's poll descriptor, and the runtime never gives
// poll descriptors back (it keeps them for the next sockets), so the
// process keeps 512 bytes per socket of the burst for as long as it runs
// (bench/HISTORY.md, "One more idle connection: the poll descriptors of a
// burst"). ShedWhenCrowded bounds that: once n sockets have parked since
// the last sweep, the sweeping goroutine sweeps again (at most once per
// crowdGap) and sheds the sockets parked through the previous sweep too,
// that is for at least crowdGap. A session whose gaps between statements
// are shorter than crowdGap (a busy one never parks at all) is not shed
// however many others park; one whose gaps are longer pays a shed socket's
// rebuild, about 18 system calls, per gap while the crowd lasts.
const (
	// crowdGap is the least time between a crowd's sweeps, and so the
	// least time a socket is parked before a crowd's sweep sheds it.
	crowdGap = 100 * time.Millisecond
	// crowdAge is the sweeps a socket must stay parked through to be shed
	// by a crowd's sweep: 2, parked before the previous sweep.
	crowdAge = 2
)

// ShedWhenCrowded makes the sweeps of ShedAfter come early, at most once
// per crowdGap, once n connections have parked since the last sweep, and
// shed the connections parked through two sweeps (see Crowds above). Call
// it before ShedAfter; n <= 0 leaves the sweeps to ShedAfter's period.
func (p *Poller) ShedWhenCrowded(n int) {
	p.mu.Lock()
	p.crowd = n
	p.mu.Unlock()
}

// sweepAndReport is one of ShedAfter's sweeps, with its report to
// onSweep; it returns how many parked connections it left unshed.
func (p *Poller) sweepAndReport(minAge uint8) (young int) {
	n := p.sweep(minAge)
	if p.onSweep != nil {
		p.onSweep(n)
	}
	p.sweepMu.Lock() // young is sweep's, written under it
	defer p.sweepMu.Unlock()
	return p.young
}

// OnSweep makes ShedAfter's goroutine call f after each of its sweeps
// (every d/2), with how many connections it shed: a caller can tell when
// its sessions have gone idle. f runs on that goroutine, so the next sweep
// waits for it. Call it before ShedAfter.
func (p *Poller) OnSweep(f func(shed int)) { p.onSweep = f }

// sweep ages every parked connection by one sweep and sheds those parked
// for minAge sweeps; it returns how many it shed. A panic is contained
// (and logged): the sweep ends, the process goes on.
func (p *Poller) sweep(minAge uint8) (n int) {
	p.sweepMu.Lock()
	defer p.sweepMu.Unlock()
	defer func() {
		if v := recover(); v != nil {
			p.log.Error("panic in netpark's sweep; the process keeps running", "panic", v, "stack", string(debug.Stack()))
		}
	}()
	young := 0
	p.mu.Lock()
	p.fresh = 0
	cands := p.sweepBuf[:0]
	for _, c := range p.parked {
		if c == nil {
			continue // a free slot
		}
		// c.mu is taken before p.mu elsewhere (register): only tried
		// here; a connection busy now is aged at the next sweep.
		if !c.mu.TryLock() {
			continue
		}
		if c.tok != 0 && c.age < minAge {
			c.age++
		}
		if c.tok != 0 && c.nc != nil {
			if c.age >= minAge {
				cands = append(cands, c)
			} else {
				young++
			}
		}
		c.mu.Unlock()
	}
	p.mu.Unlock()
	p.young = young
	defer func() {
		clear(cands) // holds no connection between sweeps
		p.sweepBuf = cands[:0]
	}()
	for _, c := range cands {
		if c.shed(minAge) {
			n++
		}
	}
	return n
}
