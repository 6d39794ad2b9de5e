package awsgw

import (
	"bufio"
	"io"
	"net"
	"sync/atomic"
)

// A large answer's body is moved from the upstream's socket to the
// client's by the kernel (splice(2), through a pipe, which Go's
// (*net.TCPConn).ReadFrom does on Linux) rather than read into the
// gateway and written out again: for a 1 MiB GetObject that spares two
// copies of every byte and most of the system calls. Only the middle of
// a plain answer goes so, and only when both sides are plain TCP and the
// client speaks HTTP/1 (TLS must pass through the gateway's own memory):
//
//   - what the upstream reader had buffered with the answer's header is
//     copied first, as before;
//   - the last spliceTail bytes are copied as before too, so that the
//     flush sending the answer's last byte is still the one that disarms
//     the client's cut (clientCut.completing): the kernel never
//     completes an answer by itself;
//   - the bytes go through the ResponseWriter's ReadFrom, so net/http
//     counts them against the declared Content-Length as written.
//
// The answer is then exactly what the copy would have sent, and the
// result counts every byte that went out. A failure mid-splice cannot
// tell by itself which side failed; upstreamAlive asks the upstream's
// socket, so that the record says "client went away" or "upstream
// response broken" as it would after a copy.

const (
	// spliceTail is how much of an answer's end is left to the copy.
	spliceTail = 64 << 10
	// spliceMin is the least the kernel is asked to move: below it the
	// pipe's two extra system calls cost more than the copy they spare.
	spliceMin = 64 << 10
)

// splicedBytes counts the answer bytes spliced, for tests.
var splicedBytes atomic.Int64

// splicer is a body whose bytes the kernel can move to a connection.
type splicer interface {
	// spliceTo moves part of the body to dst, a ResponseWriter whose
	// connection takes splices, and reports what it moved and which side
	// failed, if one did. It moves nothing (0, nil, nil) when the body
	// cannot be spliced now: the caller then reads it as usual.
	spliceTo(dst io.ReaderFrom) (n int64, rerr, werr error)
}

// fixedBody is an h1 answer's body of declared length, read from the
// connection's reader; unlike net/http's own, it knows where it stands,
// so that its middle can be spliced past the reader.
type fixedBody struct {
	br   *bufio.Reader
	conn *net.TCPConn // the socket under br, nil if it is not plain TCP
	n    int64        // bytes left
}

// Read returns io.EOF with the body's last bytes, as net/http's body
// does, and io.ErrUnexpectedEOF if the connection ends before them.
func (b *fixedBody) Read(p []byte) (int, error) {
	if b.n <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > b.n {
		p = p[:b.n]
	}
	n, err := b.br.Read(p)
	b.n -= int64(n)
	switch {
	case b.n == 0:
		return n, io.EOF
	case err == io.EOF:
		return n, io.ErrUnexpectedEOF
	}
	return n, err
}

func (b *fixedBody) Close() error { return nil }

// spliceTo moves the body's middle: once the reader's buffer is empty,
// everything but the last spliceTail bytes.
func (b *fixedBody) spliceTo(dst io.ReaderFrom) (int64, error, error) {
	want := b.n - spliceTail
	if b.conn == nil || b.br.Buffered() > 0 || want < spliceMin || !canSplice {
		return 0, nil, nil
	}
	n, err := dst.ReadFrom(&io.LimitedReader{R: b.conn, N: want})
	b.n -= n
	splicedBytes.Add(n)
	switch {
	case err != nil && upstreamAlive(b.conn):
		return n, nil, err
	case err != nil:
		return n, err, nil
	case n < want: // the upstream ended the answer early
		return n, io.ErrUnexpectedEOF, nil
	}
	return n, nil, nil
}
