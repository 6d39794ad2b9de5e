package netpark

import (
	"errors"
	"net"
	"runtime/debug"
	"sync"
	"syscall"
	"time"
)

// ErrClosed is returned by Park when the connection or the poller is
// closed.
var ErrClosed = errors.New("netpark: closed")

// Conn is a connection that can be parked, and once parked for a while
// shed (see Shed): it keeps its socket as a bare descriptor and rebuilds
// the net.Conn at its next use. Its methods are the wrapped net.Conn's;
// Close first wakes it if it is parked.
type Conn struct {
	p *Poller

	mu sync.Mutex
	// nc and raw (nc's) are nil while the connection is shed: fd is then
	// its socket. Every use of nc goes through use, which rebuilds it.
	nc  net.Conn
	raw syscall.RawConn
	tok uint64 // the registration's token while parked, 0 otherwise
	// wake is the parked connection's callback (nil unless parked).
	wake Waker
	// fd is the bare descriptor while shed, -1 otherwise.
	fd int32
	// busy counts the calls using nc now (reads, writes, raw calls,
	// deadlines): nc is not shed under them. 16 bits, with the flags and
	// age beside it, keep Conn at 80 bytes (a size class; 96 with a
	// 32-bit count and three bools): a parked session holds two Conns.
	// A call past maxBusy concurrent ones fails (errBusy).
	busy uint16
	// flags: closed (Close was called; a shed connection's fd is then
	// closed), rdl and wdl (nc has a read or write deadline, which
	// shedding would lose; such a connection is not shed).
	flags uint8
	// age counts the poller's sweeps while parked (Poller.ShedAfter).
	age uint8
}

// Conn's flags.
const (
	flClosed uint8 = 1 << iota
	flRdl
	flWdl
)

func (c *Conn) closed() bool { return c.flags&flClosed != 0 }

// setFlag sets or clears f; c.mu held.
func (c *Conn) setFlag(f uint8, on bool) {
	if on {
		c.flags |= f
	} else {
		c.flags &^= f
	}
}

// maxBusy bounds the calls in progress on one Conn (busy's range).
const maxBusy = 1<<16 - 1

// errBusy: a call beyond maxBusy concurrent ones on one Conn.
var errBusy = errors.New("netpark: too many calls in progress on one connection")

// Waker is what a parked connection wakes: ParkWaker's argument.
type Waker interface{ Wake() }

// funcWaker is Park's func as a Waker (a func value is pointer-shaped, so
// the conversion allocates nothing).
type funcWaker func()

func (f funcWaker) Wake() { f() }

// use returns nc and raw for a call, rebuilding them if c is shed; the
// caller calls done after.
func (c *Conn) use() (net.Conn, syscall.RawConn, error) {
	c.mu.Lock()
	if c.nc == nil {
		c.mu.Unlock()
		return c.useRebuilt()
	}
	if c.busy == maxBusy {
		c.mu.Unlock()
		return nil, nil, errBusy
	}
	c.busy++
	nc, raw := c.nc, c.raw
	c.mu.Unlock()
	return nc, raw, nil
}

// useRebuilt is use for a shed connection: the lock's release deferred,
// so that a panic in the rebuild cannot leave c locked, and c's wake-up
// run after it if the rebuild had to unpark c.
func (c *Conn) useRebuilt() (_ net.Conn, _ syscall.RawConn, err error) {
	var wake Waker
	defer func() { c.p.run(wake) }()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.nc == nil {
		if wake, err = c.restoreLocked(); err != nil {
			return nil, nil, err
		}
	}
	if c.busy == maxBusy {
		return nil, nil, errBusy
	}
	c.busy++
	return c.nc, c.raw, nil
}

// done ends a call that use began.
func (c *Conn) done() {
	c.mu.Lock()
	c.busy--
	c.mu.Unlock()
}

func (c *Conn) Read(b []byte) (int, error) {
	nc, _, err := c.use()
	if err != nil {
		return 0, err
	}
	defer c.done()
	return nc.Read(b)
}

func (c *Conn) Write(b []byte) (int, error) {
	nc, _, err := c.use()
	if err != nil {
		return 0, err
	}
	defer c.done()
	return nc.Write(b)
}

// SetDeadline, SetReadDeadline and SetWriteDeadline set nc's deadlines;
// a connection with a deadline set is not shed.
func (c *Conn) SetDeadline(t time.Time) error { return c.setDeadline(t, true, true) }

func (c *Conn) SetReadDeadline(t time.Time) error { return c.setDeadline(t, true, false) }

func (c *Conn) SetWriteDeadline(t time.Time) error { return c.setDeadline(t, false, true) }

func (c *Conn) setDeadline(t time.Time, rd, wr bool) error {
	nc, _, err := c.use()
	if err != nil {
		return err
	}
	switch {
	case rd && wr:
		err = nc.SetDeadline(t)
	case rd:
		err = nc.SetReadDeadline(t)
	default:
		err = nc.SetWriteDeadline(t)
	}
	c.mu.Lock()
	c.busy--
	if err == nil {
		if rd {
			c.setFlag(flRdl, !t.IsZero())
		}
		if wr {
			c.setFlag(flWdl, !t.IsZero())
		}
	}
	c.mu.Unlock()
	return err
}

// LocalAddr and RemoteAddr are nc's, read from the descriptor while c is
// shed (no net.Conn keeps them then), and nil once a shed connection is
// closed.
func (c *Conn) LocalAddr() net.Addr { return c.addr(false) }

func (c *Conn) RemoteAddr() net.Addr { return c.addr(true) }

func (c *Conn) addr(remote bool) net.Addr {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.nc != nil && remote:
		return c.nc.RemoteAddr()
	case c.nc != nil:
		return c.nc.LocalAddr()
	}
	return c.bareAddrLocked(remote)
}

// SyscallConn returns a raw connection through c: its calls use nc as
// Read and Write do, so that a reader that waits for readability without a
// buffer keeps c from being shed under it, and finds it rebuilt.
func (c *Conn) SyscallConn() (syscall.RawConn, error) { return (*rawConn)(c), nil }

// rawConn is Conn's syscall.RawConn.
type rawConn Conn

func (r *rawConn) Control(f func(fd uintptr)) error {
	c := (*Conn)(r)
	_, raw, err := c.use()
	if err != nil {
		return err
	}
	defer c.done()
	return raw.Control(f)
}

func (r *rawConn) Read(f func(fd uintptr) bool) error {
	c := (*Conn)(r)
	_, raw, err := c.use()
	if err != nil {
		return err
	}
	defer c.done()
	return raw.Read(f)
}

func (r *rawConn) Write(f func(fd uintptr) bool) error {
	c := (*Conn)(r)
	_, raw, err := c.use()
	if err != nil {
		return err
	}
	defer c.done()
	return raw.Write(f)
}

// Close wakes the connection if it is parked, then closes it. The
// registration is removed before the descriptor is closed: the number may
// be reused at once by another connection. A shed connection's bare
// descriptor is closed under c.mu, once: nothing uses its number after.
func (c *Conn) Close() error {
	c.mu.Lock()
	if c.closed() && c.nc == nil {
		c.mu.Unlock()
		return net.ErrClosed
	}
	c.flags |= flClosed
	wake := c.unparkLocked()
	nc := c.nc
	if nc == nil {
		c.closeBareLocked()
	}
	c.mu.Unlock()
	c.p.run(wake)
	if nc == nil {
		return nil
	}
	return nc.Close()
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
	if c.closed() {
		return ErrClosed
	}
	if c.tok != 0 {
		return errors.New("netpark: already parked")
	}
	tok, err := c.p.register(c)
	if err != nil {
		return err
	}
	c.tok, c.wake, c.age = tok, wake, 0
	return nil
}

// Parked reports whether c waits in its poller.
func (c *Conn) Parked() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.tok != 0
}

// Bare reports whether c is shed: its socket held as a bare descriptor,
// without a net.Conn.
func (c *Conn) Bare() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nc == nil && c.fd >= 0
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
