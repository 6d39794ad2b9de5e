package awsgw

import (
	"context"
	"errors"
	"io"
	"net/http"
	"time"

	"github.com/airlock-dev/airlock/internal/s3err"
)

// A refused upload is answered with S3's error, and the client must be
// able to read it. Many clients send their whole body before they read
// anything; if the gateway stopped reading in the middle and closed, the
// client's writes would meet a reset and its answer would be lost. So
// after a body fails its check, the rest of it is read and discarded, up
// to drainMax bytes and for at most drainTime (and never past the
// session's end), before the error is written. Nothing of it goes
// upstream.
const (
	drainMax  = 64 << 20
	drainTime = 10 * time.Second
)

// drainBody discards what is left of the client's body, within bounds.
func (c *call) drainBody(ctx context.Context) {
	if c.r.ContentLength > drainMax {
		return // too much to be worth it: the connection is closed instead
	}
	rc := http.NewResponseController(c.w)
	if err := rc.SetReadDeadline(time.Now().Add(drainTime)); err != nil && !errors.Is(err, http.ErrNotSupported) {
		return
	}
	// The connection closes after the answer (Connection: close), so the
	// deadline is left as it is.
	stop := context.AfterFunc(ctx, func() { _ = rc.SetReadDeadline(aLongTimeAgo) })
	defer stop()
	_, _ = io.CopyN(io.Discard, c.r.Body, drainMax)
}

// clientBodyError is the answer when the client's body could not be read
// (it went away, or ended before its declared length): the client may
// still be there to read it.
func clientBodyError(err error) *s3err.Error {
	var e *s3err.Error
	if errors.As(err, &e) {
		return e
	}
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return s3err.New(s3err.IncompleteBody, "You did not provide the number of bytes specified by the Content-Length HTTP header: the body ended early")
	}
	return s3err.New(s3err.IncompleteBody, "You did not provide the number of bytes specified by the Content-Length HTTP header: reading the body failed")
}
