package awsgw

import (
	"io"
	"sync"
	"sync/atomic"
)

// countingReader counts the bytes read and keeps the first error that is
// not io.EOF (a verification failure, the client going away). The
// transport may still be reading a request body after RoundTrip returns
// (an upstream that answered early), so its state is safe to read
// concurrently.
type countingReader struct {
	r io.Reader
	n atomic.Int64
	// atEOF, if set, is called when a read reaches the body's end: the
	// upstream then has the whole request (answerWatch).
	atEOF func()

	mu  sync.Mutex
	err error
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	if err == io.EOF && c.atEOF != nil {
		c.atEOF()
	}
	if err != nil && err != io.EOF {
		c.mu.Lock()
		if c.err == nil {
			c.err = err
		}
		c.mu.Unlock()
	}
	return n, err
}

func (c *countingReader) count() int64 { return c.n.Load() }

func (c *countingReader) firstErr() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}
