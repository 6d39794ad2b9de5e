package awsgw

import "io"

// holdLast passes a verified-while-streaming body through but withholds
// its last byte until the reader underneath has returned io.EOF, that is,
// until the digest, final chunk signature and trailing checksum have all
// been checked. A body that fails its check therefore never reaches the
// upstream complete, and the upstream discards it (the transport aborts a
// request whose body errors) instead of storing it.
type holdLast struct {
	r    io.Reader
	b    [1]byte
	have bool
	eof  bool
}

func (h *holdLast) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if h.eof {
		if h.have {
			p[0], h.have = h.b[0], false
			return 1, nil
		}
		return 0, io.EOF
	}
	n := 0
	if h.have {
		p[0], h.have = h.b[0], false
		n = 1
	}
	if n == len(p) {
		// No room but for the held byte: look ahead one byte, so that the
		// one handed out is not the last.
		for {
			m, err := h.r.Read(h.b[:])
			if m == 1 {
				h.have = true
				return 1, nil
			}
			if err == io.EOF {
				h.eof = true
				return 1, nil
			}
			if err != nil {
				return 0, err
			}
		}
	}
	m, err := h.r.Read(p[n:])
	n += m
	if err == io.EOF {
		h.eof = true
		return n, nil
	}
	if err != nil {
		return 0, err
	}
	if n > 0 {
		h.b[0], h.have = p[n-1], true
		n--
	}
	return n, nil
}
