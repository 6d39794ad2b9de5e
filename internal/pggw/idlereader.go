package pggw

import (
	"errors"
	"io"
	"os"
	"sync"
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
	// The parking deadline (park.go): armed while rd has a read deadline,
	// at until. atRest while the reader waits at a message boundary with
	// nothing read since: only there does the deadline mean "idle, park";
	// anywhere else (in the middle of a message) the read is retried
	// without it. So a busy session keeps its deadline from one message
	// to the next, renewed now and then, instead of setting and removing
	// it around every wait.
	armed  bool
	atRest bool
	until  time.Time
	// readFn is readFD as a func value, made once (at Reset) rather than a
	// closure per read: a closure passed to RawConn.Read escapes, with the
	// variables it sets, which cost three allocations per read.
	readFn func(fd uintptr) bool
	// rn and rerr are readFD's results.
	rn   int
	rerr error
	// lastTag is the upstream loop's last command tag (tagString).
	lastTag string
}

// deadliner is the part of net.Conn that arm uses.
type deadliner interface{ SetReadDeadline(time.Time) error }

// rest prepares a wait for the next message: if the reader reads a
// socket directly and has nothing buffered, it is at rest, and its
// deadline is renewed to now()+after unless it is at least after/2 away.
// The clock is read only then: a relay loop calls rest before every
// message, and most messages arrive with others (a statement's Bind,
// Execute and Sync; its answer's four), buffered, not at rest.
func (b *idleReader) rest(now func() time.Time, after time.Duration) {
	b.atRest = b.raw != nil && b.r == b.w && b.err == nil
	if !b.atRest {
		return
	}
	if t := now(); !b.armed || b.until.Sub(t) < after/2 {
		b.arm(t.Add(after))
	}
}

// arm sets a read deadline at t (see park.go).
func (b *idleReader) arm(t time.Time) {
	if d, ok := b.rd.(deadliner); ok && d.SetReadDeadline(t) == nil {
		b.armed, b.until = true, t
	}
}

// disarm removes the parking deadline.
func (b *idleReader) disarm() {
	if b.armed {
		b.armed = false
		_ = b.rd.(deadliner).SetReadDeadline(time.Time{})
	}
}

// parkTimeout reports whether err is the parking deadline at rest: the
// relay loop decides whether to park.
func (b *idleReader) parkTimeout(err error) bool {
	return b.armed && b.atRest && errors.Is(err, os.ErrDeadlineExceeded)
}

// midMessage reports whether err is the parking deadline firing in the
// middle of a message, and if so removes it: the caller reads again.
func (b *idleReader) midMessage(err error) bool {
	if b.armed && !b.atRest && errors.Is(err, os.ErrDeadlineExceeded) {
		b.disarm()
		return true
	}
	return false
}

func newIdleReader(rd io.Reader) *idleReader {
	b := &idleReader{}
	b.Reset(rd)
	return b
}

// idleReaders holds the readers of parked relay loops (park.go): an idle
// session holds none, and a loop that wakes takes one back, with its
// readFn already made.
var idleReaders = sync.Pool{New: func() any { return new(idleReader) }}

// getIdleReader is newIdleReader from the pool.
func getIdleReader(rd io.Reader) *idleReader {
	b := idleReaders.Get().(*idleReader)
	b.Reset(rd)
	return b
}

// putIdleReader gives b back to the pool; b must have nothing buffered,
// and not be used again by its owner.
func putIdleReader(b *idleReader) {
	b.Reset(nil) // holds no connection while pooled
	idleReaders.Put(b)
}

// Reset discards anything buffered and reads from rd from now on.
func (b *idleReader) Reset(rd io.Reader) {
	b.release()
	b.rd, b.raw, b.err, b.armed, b.atRest, b.until = rd, nil, nil, false, false, time.Time{}
	if sc, ok := rd.(syscall.Conn); ok {
		if raw, err := sc.SyscallConn(); err == nil {
			b.raw = raw
			if b.readFn == nil {
				b.readFn = b.readFD
			}
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
		if n > 0 {
			b.atRest = false
		}
		if err != nil && n == 0 && b.midMessage(err) {
			continue
		}
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
	b.rn, b.rerr = 0, nil
	err := b.raw.Read(b.readFn)
	for err != nil && b.midMessage(err) {
		err = b.raw.Read(b.readFn)
	}
	if err == nil {
		b.atRest = false // bytes, or the end, arrived
	}
	n, rerr := b.rn, b.rerr
	b.rerr = nil
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
}

// readFD is rawFill's read callback: one read(2) into a pooled buffer,
// given back if the read would block.
func (b *idleReader) readFD(fd uintptr) bool {
	bp := writeBufs.Get().(*[]byte)
	buf := (*bp)[:cap(*bp)]
	b.rn, b.rerr = rawRead(fd, buf)
	if b.rerr == syscall.EAGAIN {
		writeBufs.Put(bp)
		return false // wait for readability, holding nothing
	}
	b.buf = bp
	return true
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
			for {
				n, err := b.rd.Read(p)
				if n > 0 {
					b.atRest = false
				}
				if err == nil || n > 0 || !b.midMessage(err) {
					return n, err
				}
			}
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
