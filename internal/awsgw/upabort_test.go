package awsgw

import (
	"bytes"
	"context"
	"io"
	"testing"
)

// piecesReader yields data at most piece bytes a read, and io.EOF with
// its last bytes, as net/http's request body does once its declared
// length is read (a socket delivers a large body in pieces).
type piecesReader struct {
	data  []byte
	piece int
	reads int // reads that returned data
}

func (r *piecesReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, io.EOF
	}
	n := copy(p[:min(len(p), r.piece)], r.data)
	r.data = r.data[n:]
	r.reads++
	if len(r.data) == 0 {
		return n, io.EOF
	}
	return n, nil
}

// writeCounter counts the writes made to it and keeps what they wrote.
type writeCounter struct {
	bytes.Buffer
	writes, smallest int
}

func (w *writeCounter) Write(p []byte) (int, error) {
	w.writes++
	if w.smallest == 0 || len(p) < w.smallest {
		w.smallest = len(p)
	}
	return w.Buffer.Write(p)
}

// TestUploadBodyEndsInOneRead: an upload's end is read with the rest of
// its last piece and goes upstream in one write, after the guard has
// confirmed the end. It was read one byte short and then a byte at a
// time (holdLast's and the guard's holds), which cost each 1 MiB PUT a
// read from the client and two writes upstream more, one of them of a
// single byte.
func TestUploadBodyEndsInOneRead(t *testing.T) {
	for _, tc := range []struct {
		name        string
		size, piece int
		reads       int // from the client
	}{
		{"1MiB_in_64KiB_pieces", 1 << 20, 64 << 10, 16},
		// The copy buffer takes 256 KiB a read, less the byte holdLast
		// holds back from the read before.
		{"1MiB_in_one_piece", 1 << 20, 1 << 20, 5},
		{"odd_pieces", 100_003, 7_001, 15},
		{"one_byte", 1, 1, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := bytes.Repeat([]byte("abcdefg"), tc.size/7+1)[:tc.size]
			src := &piecesReader{data: data, piece: tc.piece}
			g := newUpstreamGuard(context.Background())
			defer g.release()
			body := &abortingBody{r: &holdLast{r: src}, g: g, want: int64(tc.size)}
			// As the transport sends a body of declared length, through
			// upConn's copy buffer.
			var w writeCounter
			buf := make([]byte, copyBufSize)
			if _, err := io.CopyBuffer(writerOnly{&w}, io.LimitReader(body, int64(tc.size)), buf); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(w.Bytes(), data) {
				t.Fatalf("the upstream got %d bytes, not the %d sent", w.Len(), tc.size)
			}
			if w.writes != src.reads {
				t.Errorf("%d reads from the client took %d writes upstream (smallest %d bytes), want one each", src.reads, w.writes, w.smallest)
			}
			if src.reads != tc.reads {
				t.Errorf("the client's body took %d reads, want %d", src.reads, tc.reads)
			}
			g.mu.Lock()
			aborted := g.aborted
			g.mu.Unlock()
			if aborted {
				t.Error("a clean body aborted the upstream request")
			}
		})
	}
}
