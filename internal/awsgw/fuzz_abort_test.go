package awsgw

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"
	"testing/iotest"
)

// failingSource yields data[:n], then ends as kind says: 0 clean EOF,
// 1 an error (a client gone), 2 EOF with a verification error (a bad
// digest found at the end, as sigv4's readers report it), 3 more bytes
// than declared.
type failingSource struct {
	data []byte
	n    int
	kind uint8
	off  int
}

var errVerify = errors.New("verification failed")

func (s *failingSource) Read(p []byte) (int, error) {
	if s.off < s.n {
		k := copy(p, s.data[s.off:s.n])
		s.off += k
		return k, nil
	}
	switch s.kind {
	case 1:
		return 0, io.ErrUnexpectedEOF
	case 2:
		return 0, errVerify
	case 3:
		if len(p) == 0 {
			return 0, nil
		}
		p[0] = 'x'
		s.kind = 0
		return 1, nil
	}
	return 0, io.EOF
}

// FuzzFailedBodyNeverEnds: the upstream body (holdLast under the
// aborting guard, as the gateway chains them) ends with io.EOF only when
// the whole declared body passed and verified; any failure, short or long
// body ends it with an error, after the guard aborted the request, and
// never with the last byte handed out.
func FuzzFailedBodyNeverEnds(f *testing.F) {
	f.Add([]byte("hello"), uint16(5), uint8(0), uint8(0))
	f.Add([]byte("hello"), uint16(5), uint8(2), uint8(1))
	f.Add([]byte("hello"), uint16(2), uint8(1), uint8(2))
	f.Add([]byte("hello"), uint16(3), uint8(0), uint8(4))
	f.Add([]byte("hello"), uint16(5), uint8(3), uint8(5))
	f.Add([]byte{}, uint16(0), uint8(2), uint8(0))
	f.Add(bytes.Repeat([]byte{7}, 3000), uint16(2999), uint8(1), uint8(6))
	f.Fuzz(func(t *testing.T, data []byte, n uint16, kind, mode uint8) {
		cut := min(int(n), len(data))
		kind %= 4
		src := &failingSource{data: data, n: cut, kind: kind}
		var r io.Reader = src
		switch mode % 3 {
		case 1:
			r = iotest.OneByteReader(r)
		case 2:
			r = iotest.HalfReader(r)
		}
		g := newUpstreamGuard(context.Background())
		defer g.release()
		var out io.Reader = &abortingBody{r: &holdLast{r: r}, g: g, want: int64(len(data))}
		if mode&4 != 0 {
			out = iotest.OneByteReader(out)
		}
		got, err := io.ReadAll(out)
		stream := data[:cut:cut] // what the source yields
		if kind == 3 {
			stream = append(stream, 'x')
		}
		clean := (kind == 0 || kind == 3) && len(stream) == len(data)
		g.mu.Lock()
		aborted := g.aborted
		g.mu.Unlock()
		if clean {
			if err != nil || !bytes.Equal(got, stream) || aborted {
				t.Fatalf("a clean body: got %d bytes, err %v, aborted %v", len(got), err, aborted)
			}
			return
		}
		if err == nil {
			t.Fatalf("a failed body (%d bytes of %d declared, kind %d) ended cleanly after %d bytes", len(stream), len(data), kind, len(got))
		}
		if !aborted {
			t.Fatalf("a failed body (kind %d) did not abort the upstream request", kind)
		}
		if len(data) > 0 && len(got) >= len(data) {
			t.Fatalf("a failed body handed out all %d bytes", len(got))
		}
	})
}
