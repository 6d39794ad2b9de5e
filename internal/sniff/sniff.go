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
	Logger  *slog.Logger
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
	l := &Listener{inner: ln, tls: o.TLS, plaintext: o.Plaintext, timeout: o.Timeout, logger: o.Logger,
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
		go l.classify(c)
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

func (l *Listener) classify(c net.Conn) {
	_ = c.SetReadDeadline(time.Now().Add(l.timeout))
	br := bufio.NewReaderSize(c, 512)
	first, err := br.Peek(1)
	if err != nil {
		c.Close()
		return
	}
	_ = c.SetReadDeadline(time.Time{})
	pc := &peekedConn{Conn: c, r: br}
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

// peekedConn reads first from the buffer that holds the peeked byte.
type peekedConn struct {
	net.Conn
	r *bufio.Reader
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
