// Package sniff lets one listening port serve both TLS and plaintext:
// it peeks at each connection's first byte, hands TLS handshakes to a
// tls.Server, and lets plaintext through only from clients the policy
// allows (Airlock: loopback peers, unless the configuration allows every
// peer). That keeps `http://127.0.0.1:8701` working for a local agent while
// a remote client's credentials never cross the network in clear.
package sniff

import (
	"bufio"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// handshakeByte is the first byte of every TLS record carrying a handshake.
const handshakeByte = 0x16

// Listener is a net.Listener whose connections are either *tls.Conn or
// plaintext connections from allowed peers.
type Listener struct {
	inner     net.Listener
	tls       *tls.Config
	plaintext func(net.Addr) bool
	timeout   time.Duration
	logger    *slog.Logger

	// The connection caps (see Options.MaxConns): open counts the open
	// connections, bySource those of each source; lastShed throttles the
	// log line about refusing one.
	maxConns, maxPerSource int
	mu                     sync.Mutex
	open                   int
	bySource               map[string]int
	lastShed               atomic.Int64

	conns chan net.Conn
	errc  chan error
	once  sync.Once
	done  chan struct{}
}

// Options configure Wrap.
type Options struct {
	// TLS serves connections that start a TLS handshake; nil refuses them.
	TLS *tls.Config
	// Plaintext reports whether a plaintext connection from addr is
	// allowed; nil means LoopbackOnly.
	Plaintext func(addr net.Addr) bool
	// Timeout bounds how long a client may take to send its first byte.
	Timeout time.Duration
	// MaxConns bounds the connections open at once, from accept to
	// close (idle keep-alive ones included); MaxConnsPerSource those of
	// one source (an IPv4 address, an IPv6 /64). A connection over either
	// is closed as soon as it is accepted, without reading from it. Zero
	// means DefaultMaxConns or DefaultMaxConnsPerSource, a negative value
	// no cap. Without a cap, a client holding connections open could use
	// up the process's file descriptors, and then the store's, the other
	// listeners' and the upstreams' connections would fail too.
	MaxConns, MaxConnsPerSource int
	Logger                      *slog.Logger
}

// The default connection caps. An idle connection costs about 20 KiB
// (plaintext) to 32 KiB (TLS) of memory and a file descriptor: 4096 of
// them about 130 MiB. A client behind one address needs far fewer than
// 256 unless it is a load balancer, whose operator raises
// MaxConnsPerSource (listen.max_connections_per_host).
const (
	DefaultMaxConns          = 4096
	DefaultMaxConnsPerSource = 256
)

// Source is the source a connection counts against for a per-source
// cap: its IPv4 address, or its IPv6 address's /64 (what one host is
// commonly given). "" (not an IP peer) counts against global caps only.
func Source(addr net.Addr) string {
	ta, ok := addr.(*net.TCPAddr)
	if !ok {
		return ""
	}
	ip, ok := netip.AddrFromSlice(ta.IP)
	if !ok {
		return ""
	}
	ip = ip.Unmap()
	if ip.Is6() {
		p, _ := ip.Prefix(64)
		return p.String()
	}
	return ip.String()
}

// LoopbackOnly allows plaintext only from loopback addresses.
func LoopbackOnly(addr net.Addr) bool {
	if ta, ok := addr.(*net.TCPAddr); ok {
		if ip, ok := netip.AddrFromSlice(ta.IP); ok {
			return ip.Unmap().IsLoopback()
		}
		return false
	}
	ap, err := netip.ParseAddrPort(addr.String())
	return err == nil && ap.Addr().Unmap().IsLoopback()
}

// AnyPeer allows plaintext from everyone (configuration: allow_plaintext).
func AnyPeer(net.Addr) bool { return true }

// Wrap starts sniffing ln's connections.
func Wrap(ln net.Listener, o Options) *Listener {
	if o.Plaintext == nil {
		o.Plaintext = LoopbackOnly
	}
	if o.Timeout == 0 {
		o.Timeout = 10 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.MaxConns == 0 {
		o.MaxConns = DefaultMaxConns
	}
	if o.MaxConnsPerSource == 0 {
		o.MaxConnsPerSource = DefaultMaxConnsPerSource
	}
	l := &Listener{inner: ln, tls: o.TLS, plaintext: o.Plaintext, timeout: o.Timeout, logger: o.Logger,
		maxConns: o.MaxConns, maxPerSource: o.MaxConnsPerSource, bySource: map[string]int{},
		conns: make(chan net.Conn), errc: make(chan error, 1), done: make(chan struct{})}
	go l.acceptLoop()
	return l
}

// acceptLoop hands each accepted connection to classify. An accept error
// other than the listener being closed (EMFILE when the process is out of
// file descriptors, ECONNABORTED, a timeout) is waited out, backing off
// from 5ms to 1s as net/http's Server does, and the loop goes on: one
// failure must not stop the gateway until a restart.
func (l *Listener) acceptLoop() {
	var delay time.Duration
	for {
		c, err := l.inner.Accept()
		if err != nil {
			if l.isClosed() {
				l.errc <- net.ErrClosed
				return
			}
			if errors.Is(err, net.ErrClosed) {
				l.errc <- err
				return
			}
			delay = min(max(2*delay, minBackoff), maxBackoff)
			l.logger.Warn("accept failed; retrying", "err", err, "retry_in", delay)
			t := time.NewTimer(delay)
			select {
			case <-t.C:
			case <-l.done:
				t.Stop()
				l.errc <- net.ErrClosed
				return
			}
			continue
		}
		delay = 0
		release, refused := l.acquire(c.RemoteAddr())
		if refused != "" {
			l.shed(c, refused)
			continue
		}
		go l.classify(&peekedConn{Conn: c, release: release})
	}
}

// acquire counts a connection from addr against the caps, or says which
// one it is over. release uncounts it, once.
func (l *Listener) acquire(addr net.Addr) (release func(), refused string) {
	src := ""
	if l.maxPerSource > 0 {
		src = Source(addr)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.maxConns > 0 && l.open >= l.maxConns {
		return nil, "too many connections"
	}
	if src != "" && l.bySource[src] >= l.maxPerSource {
		return nil, "too many connections from this source"
	}
	l.open++
	if src != "" {
		l.bySource[src]++
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			l.mu.Lock()
			defer l.mu.Unlock()
			l.open--
			if src != "" {
				if n := l.bySource[src] - 1; n > 0 {
					l.bySource[src] = n
				} else {
					delete(l.bySource, src)
				}
			}
		})
	}, ""
}

// shed closes a connection over a cap at once. A flood would log a line
// per connection: one a minute says it is going on.
func (l *Listener) shed(c net.Conn, reason string) {
	c.Close()
	now := time.Now().UnixNano()
	if last := l.lastShed.Load(); now-last >= int64(time.Minute) && l.lastShed.CompareAndSwap(last, now) {
		l.logger.Warn("connection refused: "+reason+" (logged at most once a minute)", "client", c.RemoteAddr().String())
	}
}

// The accept back-off's bounds.
const (
	minBackoff = 5 * time.Millisecond
	maxBackoff = time.Second
)

func (l *Listener) isClosed() bool {
	select {
	case <-l.done:
		return true
	default:
		return false
	}
}

// classify hands pc on as TLS or plaintext, or closes it. pc.Close
// releases its slot, whoever calls it.
func (l *Listener) classify(pc *peekedConn) {
	c := net.Conn(pc)
	_ = c.SetReadDeadline(time.Now().Add(l.timeout))
	br := bufio.NewReaderSize(pc.Conn, 512)
	first, err := br.Peek(1)
	if err != nil {
		c.Close()
		return
	}
	_ = c.SetReadDeadline(time.Time{})
	pc.r = br
	var out net.Conn
	switch {
	case first[0] == handshakeByte && l.tls != nil:
		out = tls.Server(pc, l.tls)
	case first[0] == handshakeByte:
		l.logger.Warn("TLS connection refused: no certificate configured", "client", c.RemoteAddr().String())
		c.Close()
		return
	case l.plaintext(c.RemoteAddr()):
		out = pc
	default:
		l.logger.Warn("plaintext connection from a non-loopback client refused; use TLS (or set tls.allow_plaintext)", "client", c.RemoteAddr().String())
		_, _ = c.Write([]byte("HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Type: text/plain\r\n\r\nAirlock: plaintext is accepted only from loopback clients; connect with TLS (https://).\n"))
		c.Close()
		return
	}
	select {
	case l.conns <- out:
	case <-l.done:
		c.Close()
	}
}

// Accept returns the next classified connection.
func (l *Listener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case err := <-l.errc:
		l.errc <- err // every later Accept sees it too
		return nil, err
	case <-l.done:
		return nil, net.ErrClosed
	}
}

// Close stops the listener.
func (l *Listener) Close() error {
	l.once.Do(func() { close(l.done) })
	return l.inner.Close()
}

// Addr is the listening address.
func (l *Listener) Addr() net.Addr { return l.inner.Addr() }

// peekedConn reads first from the buffer that holds the peeked byte, and
// releases the connection's slot under the caps when it is closed.
type peekedConn struct {
	net.Conn
	r       *bufio.Reader
	release func()
}

// Close closes the connection and gives back its slot.
func (p *peekedConn) Close() error {
	err := p.Conn.Close()
	if p.release != nil {
		p.release()
	}
	return err
}

// NetConn is the accepted connection (for a gateway that must reset it).
func (p *peekedConn) NetConn() net.Conn { return p.Conn }

// ReadFrom passes r on to the connection's own ReadFrom, so that what
// the kernel can move by itself (a socket spliced into a *net.TCPConn,
// a file sent with sendfile) still is; it never reads from the peek
// buffer, which holds what the client sent.
func (p *peekedConn) ReadFrom(r io.Reader) (int64, error) {
	if rf, ok := p.Conn.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(struct{ io.Writer }{p.Conn}, r)
}

func (p *peekedConn) Read(b []byte) (int, error) {
	if p.r != nil {
		if p.r.Buffered() > 0 {
			return p.r.Read(b)
		}
		p.r = nil
	}
	return p.Conn.Read(b)
}
