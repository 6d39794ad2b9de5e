package pggw

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"testing"
)

// chunkReader returns data in reads of the sizes sizes gives in turn
// (cycling), then err: the reads a socket or a TLS connection hands the
// reader, cut anywhere.
type chunkReader struct {
	data  []byte
	sizes []byte
	i     int
	err   error
}

func (c *chunkReader) Read(p []byte) (int, error) {
	if len(c.data) == 0 {
		return 0, c.err
	}
	n := len(c.data)
	if len(c.sizes) > 0 {
		// 1..128 bytes, or 1..128 KiB: short reads and reads past the
		// reader's buffer.
		s := int(c.sizes[c.i%len(c.sizes)])
		c.i++
		if s < 128 {
			n = min(n, s+1)
		} else {
			n = min(n, (s-127)<<10)
		}
	}
	n = copy(p, c.data[:n])
	c.data = c.data[n:]
	return n, nil
}

// refFrame is the reference reading of a PostgreSQL message stream: the
// messages, in order, and how it ends (nil: at a message boundary).
type refFrame struct {
	msg []byte
	err error // errBadLength, errTooLarge or io.ErrUnexpectedEOF: the stream's end
}

func refFrames(stream []byte, max int) []refFrame {
	var out []refFrame
	for len(stream) > 0 {
		if len(stream) < 5 {
			return append(out, refFrame{err: io.ErrUnexpectedEOF})
		}
		n := int(int32(binary.BigEndian.Uint32(stream[1:5])))
		switch {
		case n < 4:
			return append(out, refFrame{err: &errBadLength{stream[0], n}})
		case n-4 > max:
			return append(out, refFrame{err: &errTooLarge{stream[0], n - 4, max}})
		case len(stream) < n+1:
			return append(out, refFrame{err: io.ErrUnexpectedEOF})
		}
		out = append(out, refFrame{msg: stream[:n+1]})
		stream = stream[n+1:]
	}
	return out
}

// FuzzMsgReaderFrames checks the framing of the PostgreSQL protocol, on
// both sides of the gateway (a client's messages and an upstream's), as
// the relay reads it: msgReader over idleReader, whatever the reads
// return, must find exactly the messages a plain reading of the whole
// stream finds (type byte, length, body), and end where it does: at a
// message boundary with the reader's error, mid-message with
// io.ErrUnexpectedEOF, at a bad or oversized length with that. A message
// cut in the wrong place is a statement the gateway records differently
// from the one the server runs. Messages larger than the reader's
// buffer are read whole (the held path) or streamed through Peek and
// Discard as upstreamLoop streams large rows, as mode says; mode also
// says whether the header is peeked at first (upstreamLoop) or not (the
// client loop), and whether the stream ends in EOF or in an error.
func FuzzMsgReaderFrames(f *testing.F) {
	msg := func(typ byte, body string) []byte {
		b := []byte{typ, 0, 0, 0, 0}
		binary.BigEndian.PutUint32(b[1:], uint32(4+len(body)))
		return append(b, body...)
	}
	cat := func(ms ...[]byte) []byte { return bytes.Join(ms, nil) }
	big := string(bytes.Repeat([]byte("x"), ioBufSize+100))
	f.Add(cat(msg('Q', "select 1\x00"), msg('S', "")), []byte{}, uint32(1<<20), byte(0))
	f.Add(cat(msg('Q', "select 1\x00"), msg('S', "")), []byte{0, 3, 200}, uint32(1<<20), byte(5))
	f.Add(cat(msg('D', big), msg('C', "SELECT 1\x00"), msg('Z', "I")), []byte{200, 5}, uint32(1<<20), byte(0))
	f.Add(cat(msg('D', big), msg('d', big+big), msg('Z', "I")), []byte{130, 7}, uint32(1<<20), byte(1))
	f.Add(cat(msg('Q', big), msg('Q', big)), []byte{255}, uint32(ioBufSize), byte(0))
	f.Add(cat(msg('Q', "x"), []byte{'Q', 0, 0}), []byte{1}, uint32(64), byte(0))
	f.Add(cat(msg('Q', "x"), []byte{'Q', 0, 0, 0, 3}), []byte{}, uint32(64), byte(0))
	f.Add(cat(msg('Q', "x"), []byte{'Q', 0, 0, 0, 3}), []byte{}, uint32(64), byte(4))
	f.Add(cat(msg('Q', big), msg('X', "")), []byte{9}, uint32(1<<20), byte(4))
	f.Add(cat(msg('Q', "x"), []byte{'Q', 0xff, 0xff, 0xff, 0xff}), []byte{}, uint32(64), byte(0))
	f.Add(cat(msg('Q', "x"), []byte{'Q', 0x7f, 0xff, 0xff, 0xff}), []byte{}, uint32(64), byte(0))
	f.Add(cat(msg('Q', "x"), msg('Q', "0123456789")[:9]), []byte{2}, uint32(64), byte(6))
	f.Add(cat(msg('Q', "0123456789"), msg('Q', "0123456789")), []byte{}, uint32(9), byte(4))
	f.Fuzz(func(t *testing.T, stream, sizes []byte, maxBody uint32, mode byte) {
		max := int(maxBody % (1 << 21))
		var endErr error = io.EOF
		if mode&2 != 0 {
			endErr = errors.New("connection reset") // the peer gone, not ended
		}
		r := newIdleReader(&chunkReader{data: stream, sizes: sizes, err: endErr})
		mr := msgReader{r: r, max: max}
		want := refFrames(stream, max)
		for i := 0; ; i++ {
			var w refFrame
			if i < len(want) {
				w = want[i]
			}
			// The client loop calls next alone; upstreamLoop peeks at the
			// header first.
			var typ byte
			var total int
			var err error
			if mode&4 == 0 {
				typ, total, err = mr.header()
			} else if w.msg != nil {
				typ, total = w.msg[0], len(w.msg)
			}
			if err == nil && total > r.Size() && mode&1 != 0 && w.err == nil && w.msg != nil {
				// upstreamLoop's streaming of a large row.
				var got []byte
				for left := total; left > 0; {
					if r.Buffered() == 0 {
						if _, err := r.Peek(1); err != nil {
							t.Fatalf("message %d: streaming after %d of %d bytes: %v", i, len(got), total, err)
						}
					}
					b, _ := r.Peek(min(left, r.Buffered()))
					got = append(got, b...)
					_, _ = r.Discard(len(b))
					left -= len(b)
				}
				if typ != w.msg[0] || !bytes.Equal(got, w.msg) {
					t.Fatalf("message %d: streamed %d bytes (type %q), want %d (type %q)", i, len(got), typ, len(w.msg), w.msg[0])
				}
				continue
			}
			var got []byte
			if err == nil {
				got, err = mr.next()
			}
			switch {
			case i == len(want):
				if err != endErr {
					t.Fatalf("after the last of %d messages: %v, want %v", len(want), err, endErr)
				}
				if r.buf != nil {
					t.Fatal("the reader holds a buffer at the end of its input")
				}
				return
			case w.err != nil:
				if !sameFrameErr(err, w.err, endErr) {
					t.Fatalf("message %d: %v, want %v", i, err, w.err)
				}
				return
			case err != nil:
				t.Fatalf("message %d of %d bytes: %v", i, len(w.msg), err)
			case !bytes.Equal(got, w.msg):
				t.Fatalf("message %d: %d bytes %q, want %d %q", i, len(got), frameHead(got), len(w.msg), frameHead(w.msg))
			case typ != w.msg[0] || total != len(w.msg):
				t.Fatalf("message %d: header %q %d, want %q %d", i, typ, total, w.msg[0], len(w.msg))
			}
			mr.release()
		}
	})
}

// sameFrameErr reports whether got is the error want stands for: the
// same bad or oversized length, or a cut mid-message, which a reader
// ending in an error other than EOF reports as that error.
func sameFrameErr(got, want, endErr error) bool {
	var gb, wb *errBadLength
	var gt, wt *errTooLarge
	switch {
	case errors.As(want, &wb):
		return errors.As(got, &gb) && *gb == *wb
	case errors.As(want, &wt):
		return errors.As(got, &gt) && *gt == *wt
	case endErr == io.EOF:
		return got == io.ErrUnexpectedEOF
	}
	return got == endErr
}

func frameHead(b []byte) []byte { return b[:min(len(b), 32)] }
