package netpark

import (
	"log/slog"
	"net"
	"sync"
	"syscall"

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
	next   uint64
	parked map[uint64]*Conn
}

// stopToken is the eventfd's token; connection tokens start at 1 and
// never reach it.
const stopToken = ^uint64(0)

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
	p := &Poller{log: log, epfd: epfd, evfd: evfd, done: make(chan struct{}), parked: map[uint64]*Conn{}}
	go p.loop()
	return p, nil
}

// Wrap returns nc as a *Conn if it has a file descriptor, nc itself
// otherwise (a TLS connection, net.Pipe).
func (p *Poller) Wrap(nc net.Conn) net.Conn {
	if p == nil {
		return nc
	}
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return nc
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return nc
	}
	return &Conn{Conn: nc, p: p, raw: raw}
}

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
	p.next++
	tok := p.next
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLONESHOT}
	setToken(&ev, tok)
	var cerr error
	// Inside Control the descriptor cannot be closed under us.
	err := c.raw.Control(func(fd uintptr) {
		cerr = unix.EpollCtl(p.epfd, unix.EPOLL_CTL_ADD, int(fd), &ev)
	})
	if err != nil {
		return 0, ErrClosed
	}
	if cerr != nil {
		return 0, cerr
	}
	p.parked[tok] = c
	return tok, nil
}

// unregister removes c's registration tok; c.mu held. If c's descriptor
// is already closed (not through Conn.Close), the kernel has removed the
// registration with it, and Control fails without touching a descriptor
// number that may now be another connection's.
func (p *Poller) unregister(c *Conn, tok uint64) {
	p.mu.Lock()
	delete(p.parked, tok)
	p.mu.Unlock()
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
			p.mu.Lock()
			c := p.parked[tok]
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
	return len(p.parked)
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
	conns := make([]*Conn, 0, len(p.parked))
	for _, c := range p.parked {
		conns = append(conns, c)
	}
	p.mu.Unlock()
	for _, c := range conns {
		c.mu.Lock()
		wake := c.unparkLocked()
		c.mu.Unlock()
		p.run(wake)
	}
}
