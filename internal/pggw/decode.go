package pggw

import (
	"bytes"
	"encoding/binary"
)

// The relay decodes a Bind and an Execute for every extended-protocol
// statement. pgproto3's decoders copy the names and allocate the slices;
// these read them in place, valid as long as the message is, and accept
// exactly what pgproto3 accepts.

// bindMsg is a Bind read in place. Its slices are reused from one Bind to
// the next.
type bindMsg struct {
	portal, stmt []byte
	formats      []int16
	params       [][]byte // nil for NULL; a zero-length value is non-nil
}

// parse reads a Bind body into m, reporting whether it is well formed.
func (m *bindMsg) parse(src []byte) bool {
	m.formats, m.params = m.formats[:0], m.params[:0]
	var ok bool
	if m.portal, src, ok = cstring(src); !ok {
		return false
	}
	if m.stmt, src, ok = cstring(src); !ok {
		return false
	}
	var n int
	if n, src, ok = uint16n(src); !ok || len(src) < 2*n {
		return false
	}
	for i := 0; i < n; i++ {
		m.formats = append(m.formats, int16(binary.BigEndian.Uint16(src[2*i:])))
	}
	src = src[2*n:]
	if n, src, ok = uint16n(src); !ok {
		return false
	}
	for i := 0; i < n; i++ {
		if len(src) < 4 {
			return false
		}
		size := int(int32(binary.BigEndian.Uint32(src)))
		src = src[4:]
		if size == -1 {
			m.params = append(m.params, nil)
			continue
		}
		if size < 0 || len(src) < size {
			return false
		}
		m.params = append(m.params, src[:size:size])
		src = src[size:]
	}
	// Result format codes: only checked.
	if n, src, ok = uint16n(src); !ok || len(src) < 2*n {
		return false
	}
	return true
}

// parseExecute returns an Execute's portal name, in place.
func parseExecute(src []byte) ([]byte, bool) {
	name, rest, ok := cstring(src)
	return name, ok && len(rest) >= 4
}

// cstring splits a NUL-terminated string off src.
func cstring(src []byte) (s, rest []byte, ok bool) {
	i := bytes.IndexByte(src, 0)
	if i < 0 {
		return nil, nil, false
	}
	return src[:i], src[i+1:], true
}

func uint16n(src []byte) (int, []byte, bool) {
	if len(src) < 2 {
		return 0, nil, false
	}
	return int(binary.BigEndian.Uint16(src)), src[2:], true
}
