package awsgw

import (
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/airlock-dev/airlock/internal/sigv4"
)

// A client that sends its checksum in a trailer (STREAMING-*-TRAILER, as
// the AWS SDKs do over TLS) has it verified here, but the checksum must
// also reach the upstream, which stores it with the object and serves it
// to later readers (GetObject with checksum mode). The value is known only
// once the whole body has passed, so the body goes upstream aws-chunked
// too, with the verified value in its own trailer: STREAMING-UNSIGNED-
// PAYLOAD-TRAILER, chunks of trailerChunk bytes.

const (
	trailerChunk          = 64 << 10
	streamingUnsignedTrlr = "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
)

// trailerBody frames a verified body of a known length as aws-chunked,
// ending with the trailer "name:value", where value is read from auth once
// the body is at its end (when the verifier has checked it).
type trailerBody struct {
	r       io.Reader
	auth    *sigv4.Auth
	name    string // lowercase x-amz-checksum-*
	valLen  int    // the value's base64 length
	left    int64  // payload bytes still to come
	buf     []byte // framing and data ready to hand out
	off     int
	done    bool
	scratch []byte
}

// newTrailerBody returns the framed body and its exact encoded length, or
// ok=false when the checksum cannot be forwarded this way (an unknown
// algorithm or length).
func newTrailerBody(r io.Reader, length int64, auth *sigv4.Auth) (*trailerBody, int64, bool) {
	name := strings.ToLower(auth.Checksum)
	size := sigv4.ChecksumSize(name)
	if size == 0 || length < 0 {
		return nil, 0, false
	}
	t := &trailerBody{r: r, auth: auth, name: name, valLen: base64.StdEncoding.EncodedLen(size), left: length}
	return t, t.encodedLength(length), true
}

// encodedLength is the framed size of a body of n bytes.
func (t *trailerBody) encodedLength(n int64) int64 {
	var total int64
	for n > 0 {
		c := min(n, trailerChunk)
		total += int64(len(strconv.FormatInt(c, 16))) + 2 + c + 2
		n -= c
	}
	return total + 3 + int64(len(t.name)+1+t.valLen+2) + 2 // "0\r\n", the trailer line, "\r\n"
}

func (t *trailerBody) Read(p []byte) (int, error) {
	for t.off == len(t.buf) {
		if t.done {
			return 0, io.EOF
		}
		if err := t.fill(); err != nil {
			return 0, err
		}
	}
	n := copy(p, t.buf[t.off:])
	t.off += n
	return n, nil
}

// fill frames the next chunk, or the final one with the trailer.
func (t *trailerBody) fill() error {
	t.buf, t.off = t.buf[:0], 0
	if t.left == 0 {
		// The verifier has seen the whole body only once the reader
		// reports its end; that is also when the trailer is known.
		var one [1]byte
		if n, err := t.r.Read(one[:]); n > 0 || err == nil {
			return errors.New("the upload is longer than its declared length")
		} else if err != io.EOF {
			return err
		}
		v := strings.TrimSpace(t.auth.Trailer.Get(t.name))
		if len(v) != t.valLen {
			return fmt.Errorf("the verified %s trailer %q is not a %d-character value", t.name, v, t.valLen)
		}
		t.buf = append(t.buf, "0\r\n"...)
		t.buf = append(t.buf, t.name...)
		t.buf = append(t.buf, ':')
		t.buf = append(t.buf, v...)
		t.buf = append(t.buf, "\r\n\r\n"...)
		t.done = true
		return nil
	}
	c := min(t.left, trailerChunk)
	if cap(t.scratch) < int(c) {
		t.scratch = make([]byte, trailerChunk)
	}
	data := t.scratch[:c]
	if _, err := io.ReadFull(t.r, data); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return errors.New("the upload is shorter than its declared length")
		}
		return err
	}
	t.left -= c
	t.buf = strconv.AppendInt(t.buf, c, 16)
	t.buf = append(t.buf, "\r\n"...)
	t.buf = append(t.buf, data...)
	t.buf = append(t.buf, "\r\n"...)
	return nil
}
