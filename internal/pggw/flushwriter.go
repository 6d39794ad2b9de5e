package pggw

import (
	"io"
	"sync"
	"syscall"
)

// flushWriter buffers writes like a bufio.Writer of ioBufSize, but holds
// its buffer only between the first Write and the next Flush: the buffer
// comes from a pool and goes back to it once flushed. A session spends
// most of its life idle, between a flushed answer and the next message,
// so its two writers (to the client and to the upstream) cost nothing
// then; with bufio.Writer they held 16 KiB per idle session.
//
// As with bufio.Writer, the first write error is kept and returned by
// every later Write and Flush. It is not safe for concurrent use.
type flushWriter struct {
	w   io.Writer
	buf *[]byte // nil while nothing is buffered
	err error
	// raw is w's raw connection when it has a file descriptor (plain
	// TCP): writes then go out as raw system calls (rawsys.go), through
	// writeFn, which is writeFD made once rather than a closure per write.
	raw     syscall.RawConn
	writeFn func(fd uintptr) bool
	// wp, wn and werr are writeFD's argument and results.
	wp   []byte
	wn   int
	werr error
}

var writeBufs = sync.Pool{New: func() any { b := make([]byte, 0, ioBufSize); return &b }}

func newFlushWriter(w io.Writer) *flushWriter {
	f := &flushWriter{}
	f.Reset(w)
	return f
}

// flushWriters holds the writers of parked relay loops (park.go): an idle
// session holds none, and a loop that wakes takes one back, with its
// writeFn already made.
var flushWriters = sync.Pool{New: func() any { return new(flushWriter) }}

// getFlushWriter is newFlushWriter from the pool.
func getFlushWriter(w io.Writer) *flushWriter {
	f := flushWriters.Get().(*flushWriter)
	f.Reset(w)
	return f
}

// putFlushWriter gives f back to the pool; f must be idle, and not used
// again by its owner.
func putFlushWriter(f *flushWriter) {
	f.Reset(nil) // holds no connection while pooled
	flushWriters.Put(f)
}

// idle reports whether f holds nothing: no buffered bytes, no error.
func (f *flushWriter) idle() bool { return f.buf == nil && f.err == nil }

// Reset discards anything buffered and any error, and writes to w from now
// on (after a TLS upgrade, the TLS connection).
func (f *flushWriter) Reset(w io.Writer) {
	f.release()
	f.w, f.err, f.raw = w, nil, nil
	if sc, ok := w.(syscall.Conn); ok {
		if raw, err := sc.SyscallConn(); err == nil {
			f.raw = raw
			if f.writeFn == nil {
				f.writeFn = f.writeFD
			}
		}
	}
}

// write writes all of p to the underlying writer: on a descriptor, with
// raw system calls, waiting in the runtime's poller while the socket's
// buffer is full (a write deadline, set to cut a client that does not
// read, still applies).
func (f *flushWriter) write(p []byte) (int, error) {
	if f.raw == nil {
		return f.w.Write(p)
	}
	f.wp, f.wn, f.werr = p, 0, nil
	err := f.raw.Write(f.writeFn)
	n := f.wn
	if err == nil {
		err = f.werr
	}
	f.wp, f.werr = nil, nil
	return n, err
}

// writeFD is write's callback: false to wait until the socket is
// writable.
func (f *flushWriter) writeFD(fd uintptr) bool {
	for f.wn < len(f.wp) {
		n, err := rawWrite(fd, f.wp[f.wn:])
		if err == syscall.EAGAIN {
			return false
		}
		if err != nil {
			f.werr = err
			return true
		}
		f.wn += n
	}
	return true
}

// Write buffers p, writing out what is buffered first when p does not fit.
// A p of at least the buffer's size goes straight to the underlying writer
// once the buffer is empty.
func (f *flushWriter) Write(p []byte) (int, error) {
	if f.err != nil {
		return 0, f.err
	}
	if f.buf != nil && len(*f.buf)+len(p) > cap(*f.buf) {
		if err := f.Flush(); err != nil {
			return 0, err
		}
	}
	if f.buf == nil {
		if len(p) >= ioBufSize {
			n, err := f.write(p)
			if err == nil && n < len(p) {
				err = io.ErrShortWrite
			}
			f.err = err
			return n, err
		}
		f.buf = writeBufs.Get().(*[]byte)
	}
	*f.buf = append(*f.buf, p...)
	return len(p), nil
}

// Flush writes out what is buffered and returns the buffer to the pool.
func (f *flushWriter) Flush() error {
	if f.err != nil {
		return f.err
	}
	if f.buf == nil {
		return nil
	}
	// The buffer goes back to the pool only after the write: another
	// session may take it at once.
	b := *f.buf
	var err error
	if len(b) > 0 {
		var n int
		n, err = f.write(b)
		if err == nil && n < len(b) {
			err = io.ErrShortWrite
		}
	}
	f.release()
	f.err = err
	return err
}

func (f *flushWriter) release() {
	if f.buf != nil {
		*f.buf = (*f.buf)[:0]
		writeBufs.Put(f.buf)
		f.buf = nil
	}
}

// ReadFrom copies r to the underlying writer through a pooled buffer, so
// that io.Copy and io.CopyN (a large row streaming through) neither
// allocate a buffer of their own nor hold one afterwards. It flushes what
// was buffered first.
func (f *flushWriter) ReadFrom(r io.Reader) (int64, error) {
	if err := f.Flush(); err != nil {
		return 0, err
	}
	bp := writeBufs.Get().(*[]byte)
	defer writeBufs.Put(bp)
	buf := (*bp)[:cap(*bp)]
	var total int64
	for {
		n, rerr := r.Read(buf)
		if n > 0 {
			m, werr := f.write(buf[:n])
			total += int64(m)
			if werr == nil && m < n {
				werr = io.ErrShortWrite
			}
			if werr != nil {
				f.err = werr
				return total, werr
			}
		}
		if rerr == io.EOF {
			return total, nil
		}
		if rerr != nil {
			return total, rerr
		}
	}
}
