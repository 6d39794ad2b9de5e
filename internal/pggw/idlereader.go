package pggw

import (
	"errors"
	"io"
	"syscall"
	"time"
)

// idleReader reads like a bufio.Reader of ioBufSize, but holds a buffer
// only while it has unread bytes: the buffer comes from the same pool as
// flushWriter's and goes back before the reader blocks for more. A session
// spends most of its life blocked reading its client (waiting for the next
// statement) and its upstream (waiting for nothing), and bufio.Readers
// held 16 KiB per idle session through those reads.
//
// On a connection with a file descriptor (plain TCP), the blocking read is
// a raw one: the buffer is taken from the pool inside the read callback,
// used for one read(2), and put back if the read would block, so waiting
// costs no buffer and no extra system call. Over TLS the TLS connection
// keeps its own record buffers anyway, and the reader blocks holding its
// buffer as bufio does.
//
// Like bufio.Reader, a slice returned by Peek stays valid until the next
// Peek, Read or Discard that needs more bytes: the buffer is given back
// only when the reader next needs to read and has nothing buffered.
type idleReader struct {
	rd   io.Reader
	raw  syscall.RawConn
	buf  *[]byte // nil while nothing is buffered
	r, w int
	err  error
	// armed: rd has a read deadline for parking (park.go), removed when
	// the next byte arrives.
	armed bool
}

// deadliner is the part of net.Conn that arm uses.
type deadliner interface{ SetReadDeadline(time.Time) error }

// canArm reports whether the reader could take a parking deadline now: it
// reads a socket directly, has nothing buffered and no deadline yet.
func (b *idleReader) canArm() bool {
	return b.raw != nil && !b.armed && b.r == b.w && b.err == nil
}

// arm sets a read deadline at t for the next wait (see park.go).
func (b *idleReader) arm(t time.Time) {
	if d, ok := b.rd.(deadliner); ok && d.SetReadDeadline(t) == nil {
		b.armed = true
	}
}

// disarm removes the parking deadline.
func (b *idleReader) disarm() {
	if b.armed {
		b.armed = false
		_ = b.rd.(deadliner).SetReadDeadline(time.Time{})
	}
}

func newIdleReader(rd io.Reader) *idleReader {
	b := &idleReader{}
	b.Reset(rd)
	return b
}

// Reset discards anything buffered and reads from rd from now on.
func (b *idleReader) Reset(rd io.Reader) {
	b.release()
	b.rd, b.raw, b.err, b.armed = rd, nil, nil, false
	if sc, ok := rd.(syscall.Conn); ok {
		if raw, err := sc.SyscallConn(); err == nil {
			b.raw = raw
		}
	}
}

// Size is the buffer's size: the largest Peek.
func (b *idleReader) Size() int { return ioBufSize }

// Buffered is the number of bytes that can be read without blocking.
func (b *idleReader) Buffered() int { return b.w - b.r }

func (b *idleReader) release() {
	if b.buf != nil {
		writeBufs.Put(b.buf)
		b.buf = nil
	}
	b.r, b.w = 0, 0
}

// fill reads once more into the buffer.
func (b *idleReader) fill() {
	if b.r == b.w {
		// Nothing unread: no buffer while waiting.
		b.release()
	} else if b.r > 0 {
		n := copy((*b.buf)[:cap(*b.buf)], (*b.buf)[b.r:b.w])
		b.r, b.w = 0, n
	}
	if b.buf == nil && b.raw != nil {
		b.rawFill()
		return
	}
	if b.buf == nil {
		b.buf = writeBufs.Get().(*[]byte)
	}
	buf := (*b.buf)[:cap(*b.buf)]
	for range 100 {
		n, err := b.rd.Read(buf[b.w:])
		b.w += n
		if err != nil {
			b.err = err
			if b.r == b.w {
				b.release() // the end: nothing to keep a buffer for
			}
			return
		}
		if n > 0 {
			return
		}
	}
	b.err = io.ErrNoProgress
}

// rawFill waits for the connection to be readable without a buffer, then
// reads into one from the pool.
func (b *idleReader) rawFill() {
	var n int
	var rerr error
	err := b.raw.Read(func(fd uintptr) bool {
		bp := writeBufs.Get().(*[]byte)
		buf := (*bp)[:cap(*bp)]
		for {
			n, rerr = syscall.Read(int(fd), buf)
			if rerr != syscall.EINTR {
				break
			}
		}
		if rerr == syscall.EAGAIN {
			writeBufs.Put(bp)
			return false // wait for readability, holding nothing
		}
		b.buf = bp
		return true
	})
	switch {
	case err != nil:
		b.err = err
	case rerr != nil:
		b.err = rerr
	case n == 0:
		b.err = io.EOF
	case n < 0:
		b.err = errors.New("pggw: negative read")
	default:
		b.w = n
	}
	if b.buf != nil && b.w == 0 {
		b.release()
	}
	if b.armed && err == nil {
		// Bytes (or the end) arrived: the rest of the message, and
		// anything after it, is read without the parking deadline, so
		// that it can only fire at a message boundary.
		b.disarm()
	}
}

// Peek returns the next n bytes without consuming them (n ≤ Size).
func (b *idleReader) Peek(n int) ([]byte, error) {
	if n > ioBufSize {
		return nil, errors.New("pggw: peek beyond the buffer")
	}
	for b.w-b.r < n && b.err == nil {
		b.fill()
	}
	if b.w-b.r < n {
		var p []byte
		if b.buf != nil {
			p = (*b.buf)[b.r:b.w]
		}
		return p, b.readErr()
	}
	return (*b.buf)[b.r : b.r+n], nil
}

func (b *idleReader) readErr() error {
	err := b.err
	b.err = nil
	return err
}

// Discard skips the next n buffered bytes (n ≤ Buffered).
func (b *idleReader) Discard(n int) (int, error) {
	n = min(n, b.w-b.r)
	b.r += n
	return n, nil
}

// Read reads into p: buffered bytes first, then at most one read.
func (b *idleReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if b.r == b.w {
		if b.err != nil {
			return 0, b.readErr()
		}
		if len(p) >= ioBufSize {
			// Large reads go straight to the caller's buffer.
			b.release()
			return b.rd.Read(p)
		}
		b.fill()
		if b.r == b.w {
			return 0, b.readErr()
		}
	}
	n := copy(p, (*b.buf)[b.r:b.w])
	b.r += n
	return n, nil
}
