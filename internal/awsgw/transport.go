package awsgw

import (
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"sync"
	"time"
)

// UpstreamTransport is the transport the gateway uses upstream unless
// Options.Transport says otherwise. It is tuned for a proxy: many
// concurrent streams to one or a few upstream hosts, kept alive, and bodies
// passed through untouched (no transparent gzip, which would change lengths
// and checksums). bench/s3bench gives its plain Go proxy the same one, so
// that the two differ only in the gateway's own work. The gateway itself
// (Options.Transport nil) sends bodiless GET and HEAD calls to a plain-HTTP
// upstream with h1Transport (h1.go), which takes this one's dialer and
// bounds, and everything else through it.
func UpstreamTransport() *http.Transport {
	d := &net.Dialer{
		Timeout:   10 * time.Second,
		KeepAlive: 30 * time.Second,
	}
	return &http.Transport{
		Proxy: nil, // the upstream is configured explicitly; never via an env proxy
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := d.DialContext(ctx, network, addr)
			if tc, ok := c.(*net.TCPConn); ok && err == nil {
				return &upConn{TCPConn: tc}, nil
			}
			return c, err
		},
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          512,
		MaxIdleConnsPerHost:   256,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
		DisableCompression:    true,
		WriteBufferSize:       64 << 10,
		ReadBufferSize:        64 << 10,
	}
}

// upConn is a plain-TCP upstream connection whose ReadFrom copies a
// request body through a large pooled buffer. The transport sends a body
// of declared length with io.Copy(conn, io.LimitReader(body, n)); a
// *net.TCPConn can splice only from another socket, so it falls back to
// io.Copy's own 32 KiB buffer, allocated per request: a 1 MiB upload then
// takes 32 or more reads from the client and as many writes upstream, each
// waking the upstream. With copyBufSize, a read takes whatever the client
// has delivered, up to 256 KiB, and the write passes it on in one call.
type upConn struct {
	*net.TCPConn
}

// ReadFrom copies r to the connection through a pooled copy buffer.
func (c *upConn) ReadFrom(r io.Reader) (int64, error) {
	src := r
	if lr, ok := r.(*io.LimitedReader); ok {
		src = lr.R
	}
	switch src.(type) {
	case *os.File, *net.TCPConn, *net.UnixConn:
		// What the kernel can move itself (sendfile, splice) is left to it.
		return c.TCPConn.ReadFrom(r)
	}
	bp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bp)
	// writerOnly hides c's ReadFrom, and r's WriteTo does not exist for the
	// transport's LimitedReader, so io.CopyBuffer uses bp.
	return io.CopyBuffer(writerOnly{c.TCPConn}, r, *bp)
}

// NetConn is the TCP connection underneath, for rawConn (a reset needs
// its SetLinger).
func (c *upConn) NetConn() net.Conn { return c.TCPConn }

// writerOnly hides every method of an io.Writer but Write.
type writerOnly struct{ io.Writer }

// copyBufs are the buffers bodies stream through: large, so that a big
// transfer takes few read and write calls (the transport's own read buffer
// is bypassed for reads at least its size).
var copyBufs = sync.Pool{New: func() any { b := make([]byte, copyBufSize); return &b }}

const copyBufSize = 256 << 10
