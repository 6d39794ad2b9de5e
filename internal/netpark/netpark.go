package netpark

import (
	"errors"
	"net"
	"runtime/debug"
	"sync"
	"syscall"
)

// ErrClosed is returned by Park when the connection or the poller is
// closed.
var ErrClosed = errors.New("netpark: closed")

// Conn is a connection that can be parked. It is the wrapped net.Conn in
// every respect but Close, which first wakes it if it is parked.
type Conn struct {
	net.Conn
	p   *Poller
	raw syscall.RawConn

	mu     sync.Mutex
	closed bool
	tok    uint64 // the registration's token while parked, 0 otherwise
	wake   Waker
}

// Waker is what a parked connection wakes: ParkWaker's argument.
type Waker interface{ Wake() }

// funcWaker is Park's func as a Waker (a func value is pointer-shaped, so
// the conversion allocates nothing).
type funcWaker func()

func (f funcWaker) Wake() { f() }

// SyscallConn returns the wrapped connection's raw connection, so that a
// reader can wait for readability without a buffer as it would on the
// connection itself.
func (c *Conn) SyscallConn() (syscall.RawConn, error) { return c.raw, nil }

// Close wakes the connection if it is parked, then closes it. The
// registration is removed before the descriptor is closed: the number may
// be reused at once by another connection.
func (c *Conn) Close() error {
	c.mu.Lock()
	c.closed = true
	wake := c.unparkLocked()
	c.mu.Unlock()
	c.p.run(wake)
	return c.Conn.Close()
}

// Park registers c with its poller and returns at once; wake runs on a new
// goroutine once c is readable or hung up, or when c or the poller is
// closed, whichever comes first, and exactly once. The caller must have
// nothing buffered from c. Park fails with ErrClosed when c or the poller is
// closed, and with another error if the registration failed; either way wake
// is not called and the caller keeps the connection.
func (c *Conn) Park(wake func()) error {
	if wake == nil {
		return errors.New("netpark: nil wake")
	}
	return c.ParkWaker(funcWaker(wake))
}

// ParkWaker is Park with w.Wake as the callback. A caller that parks
// often can pass a pointer it already has as w (a named pointer type with
// a Wake method), where Park's method value would be a new closure held
// for as long as c is parked.
func (c *Conn) ParkWaker(wake Waker) error {
	if wake == nil {
		return errors.New("netpark: nil wake")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return ErrClosed
	}
	if c.tok != 0 {
		return errors.New("netpark: already parked")
	}
	tok, err := c.p.register(c)
	if err != nil {
		return err
	}
	c.tok, c.wake = tok, wake
	return nil
}

// Parked reports whether c waits in its poller.
func (c *Conn) Parked() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.tok != 0
}

// unparkLocked removes c's registration, if any, and returns its wake
// callback (nil if c was not parked); c.mu held.
func (c *Conn) unparkLocked() Waker {
	if c.tok == 0 {
		return nil
	}
	c.p.unregister(c, c.tok)
	wake := c.wake
	c.tok, c.wake = 0, nil
	return wake
}

// fired is the poller's event for token tok.
func (c *Conn) fired(tok uint64) {
	c.mu.Lock()
	var wake Waker
	if c.tok == tok {
		wake = c.unparkLocked()
	}
	c.mu.Unlock()
	c.p.run(wake)
}

// run starts wake on a goroutine of its own, a panic in it contained.
func (p *Poller) run(wake Waker) {
	if wake == nil {
		return
	}
	go func() {
		defer func() {
			if v := recover(); v != nil {
				p.log.Error("panic in a parked connection's wake-up; the process keeps running",
					"panic", v, "stack", string(debug.Stack()))
			}
		}()
		wake.Wake()
	}()
}
