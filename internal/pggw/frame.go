package pggw

import (
	"encoding/binary"
	"fmt"
	"io"
)

// msgReader frames PostgreSQL protocol messages (a type byte, a 4-byte
// length including itself, the body) without decoding them, so that the
// relay can forward most messages as raw bytes and only decode the few it
// records. A message that fits the bufio buffer is returned as a slice of
// it: no copy, no allocation.
type msgReader struct {
	r   *idleReader
	max int    // largest body accepted, in bytes
	big []byte // holds a message larger than r's buffer
}

// errTooLarge reports a message whose declared length exceeds the limit.
type errTooLarge struct {
	typ       byte
	size, max int
}

func (e *errTooLarge) Error() string {
	return fmt.Sprintf("message %q of %d bytes exceeds the limit of %d bytes", e.typ, e.size, e.max)
}

// errBadLength reports a length field smaller than the length field itself.
type errBadLength struct {
	typ  byte
	size int
}

func (e *errBadLength) Error() string {
	return fmt.Sprintf("message %q has an invalid length %d", e.typ, e.size)
}

// next returns the next whole message (type byte, length, body). It is
// valid until the next call. A short read mid-message is
// io.ErrUnexpectedEOF; io.EOF only at a message boundary.
func (m *msgReader) next() ([]byte, error) {
	hdr, err := m.r.Peek(5)
	if err != nil {
		if err == io.EOF && len(hdr) > 0 {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	n := int(int32(binary.BigEndian.Uint32(hdr[1:5])))
	if n < 4 {
		return nil, &errBadLength{hdr[0], n}
	}
	if n-4 > m.max {
		return nil, &errTooLarge{hdr[0], n - 4, m.max}
	}
	total := n + 1
	if total <= m.r.Size() {
		b, err := m.r.Peek(total)
		if err != nil {
			return nil, eofMid(err)
		}
		// Discard only advances the read index: b stays intact until the
		// next Peek or Read refills the buffer.
		_, _ = m.r.Discard(total)
		return b, nil
	}
	if cap(m.big) >= total {
		b := m.big[:total]
		if _, err := io.ReadFull(m.r, b); err != nil {
			return nil, eofMid(err)
		}
		return b, nil
	}
	// The buffer grows with what arrives, not to the declared length at
	// once: a client that declares a message of MaxMessageBytes (64 MiB)
	// and sends nothing more held that much memory per session, a few
	// bytes each, until the gateway ran out.
	b := m.big[:0]
	for len(b) < total {
		if len(b) == cap(b) {
			nb := make([]byte, len(b), min(total, max(2*cap(b), growFrom)))
			copy(nb, b)
			b = nb
		}
		k, err := m.r.Read(b[len(b):min(cap(b), total)])
		b = b[:len(b)+k]
		if err != nil && len(b) < total {
			m.big = b
			return nil, eofMid(err)
		}
	}
	m.big = b
	return b, nil
}

// growFrom is the first size of the buffer of a message larger than the
// reader's own.
const growFrom = 64 << 10

// header peeks at the next message's type and total size (type byte
// included) without consuming it.
func (m *msgReader) header() (byte, int, error) {
	hdr, err := m.r.Peek(5)
	if err != nil {
		if err == io.EOF && len(hdr) > 0 {
			err = io.ErrUnexpectedEOF
		}
		return 0, 0, err
	}
	n := int(int32(binary.BigEndian.Uint32(hdr[1:5])))
	if n < 4 {
		return 0, 0, &errBadLength{hdr[0], n}
	}
	return hdr[0], n + 1, nil
}

// release drops an oversized buffer after a large message so that one big
// statement does not pin memory for the life of an idle connection.
func (m *msgReader) release() {
	if cap(m.big) > 1<<20 {
		m.big = nil
	}
}

func eofMid(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// readStartupPacket reads one untyped startup-phase packet (length, then
// the body starting with the request code). max bounds the body.
func readStartupPacket(r *idleReader, max int) ([]byte, error) {
	hdr, err := r.Peek(4)
	if err != nil {
		if err == io.EOF && len(hdr) > 0 {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	n := int(int32(binary.BigEndian.Uint32(hdr)))
	if n < 8 || n-4 > max {
		return nil, fmt.Errorf("invalid startup packet length %d", n)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, eofMid(err)
	}
	return b[4:], nil
}
