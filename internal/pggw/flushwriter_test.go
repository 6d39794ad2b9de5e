package pggw

import (
	"bytes"
	"errors"
	"io"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

// countingWriter records each Write it gets, and fails once failAfter
// writes have succeeded (never if failAfter is negative).
type countingWriter struct {
	bytes.Buffer
	writes    []int
	failAfter int
}

var errWrite = errors.New("write failed")

func (w *countingWriter) Write(p []byte) (int, error) {
	if w.failAfter >= 0 && len(w.writes) >= w.failAfter {
		return 0, errWrite
	}
	w.writes = append(w.writes, len(p))
	return w.Buffer.Write(p)
}

func TestFlushWriter(t *testing.T) {
	big := bytes.Repeat([]byte("b"), ioBufSize+1)
	for _, tc := range []struct {
		name   string
		ops    func(f *flushWriter)
		want   string
		writes []int
	}{
		{"small writes coalesce into one", func(f *flushWriter) {
			f.Write([]byte("ab"))
			f.Write([]byte("cd"))
			f.Flush()
		}, "abcd", []int{4}},
		{"nothing reaches the writer before Flush", func(f *flushWriter) {
			f.Write([]byte("ab"))
		}, "", nil},
		{"an empty Flush writes nothing", func(f *flushWriter) {
			f.Flush()
			f.Flush()
		}, "", nil},
		{"a write that does not fit flushes what is buffered first", func(f *flushWriter) {
			f.Write(bytes.Repeat([]byte("a"), ioBufSize-1))
			f.Write([]byte("zz"))
			f.Flush()
		}, strings.Repeat("a", ioBufSize-1) + "zz", []int{ioBufSize - 1, 2}},
		{"a large write goes straight through after what is buffered", func(f *flushWriter) {
			f.Write([]byte("x"))
			f.Write(big)
			f.Flush()
		}, "x" + string(big), []int{1, len(big)}},
		{"ReadFrom flushes, then copies", func(f *flushWriter) {
			f.Write([]byte("x"))
			f.ReadFrom(io.LimitReader(bytes.NewReader(big), 3*ioBufSize))
		}, "x" + string(big), []int{1, ioBufSize, 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := &countingWriter{failAfter: -1}
			f := newFlushWriter(w)
			tc.ops(f)
			if w.String() != tc.want {
				t.Errorf("wrote %d bytes %.20q…, want %d bytes %.20q…", w.Len(), w.String(), len(tc.want), tc.want)
			}
			if !slices.Equal(w.writes, tc.writes) {
				t.Errorf("underlying writes %v, want %v", w.writes, tc.writes)
			}
		})
	}
}

func TestFlushWriterReleasesItsBuffer(t *testing.T) {
	f := newFlushWriter(io.Discard)
	if f.buf != nil {
		t.Fatal("a new writer holds a buffer")
	}
	f.Write([]byte("hello"))
	if f.buf == nil || len(*f.buf) != 5 {
		t.Fatal("after a write of 5 bytes the writer does not hold them")
	}
	if err := f.Flush(); err != nil {
		t.Fatal(err)
	}
	if f.buf != nil {
		t.Error("a flushed writer still holds its buffer")
	}
	f.Write([]byte("again"))
	f.Reset(io.Discard)
	if f.buf != nil {
		t.Error("Reset kept the buffer")
	}
}

func TestFlushWriterErrorsStick(t *testing.T) {
	w := &countingWriter{failAfter: 0}
	f := newFlushWriter(w)
	if _, err := f.Write([]byte("a")); err != nil {
		t.Fatalf("a buffered write failed early: %v", err)
	}
	if err := f.Flush(); !errors.Is(err, errWrite) {
		t.Fatalf("Flush = %v, want the write error", err)
	}
	if _, err := f.Write([]byte("b")); !errors.Is(err, errWrite) {
		t.Errorf("Write after a failure = %v, want the same error", err)
	}
	if err := f.Flush(); !errors.Is(err, errWrite) {
		t.Errorf("Flush after a failure = %v, want the same error", err)
	}
	if f.buf != nil {
		t.Error("a failed writer holds a buffer")
	}
	f.Reset(&countingWriter{failAfter: -1})
	if _, err := f.Write([]byte("c")); err != nil || f.Flush() != nil {
		t.Errorf("after Reset the writer still fails")
	}
	// A large direct write that fails sticks too.
	f = newFlushWriter(&countingWriter{failAfter: 0})
	if _, err := f.Write(make([]byte, ioBufSize)); !errors.Is(err, errWrite) {
		t.Fatalf("direct write = %v, want the write error", err)
	}
	if err := f.Flush(); !errors.Is(err, errWrite) {
		t.Errorf("Flush after a failed direct write = %v", err)
	}
}

// On a socket the writer writes with raw system calls (rawsys.go): what
// does not fit in the socket's buffer waits for the reader, and arrives
// whole and in order.
func TestFlushWriterRawSocket(t *testing.T) {
	a, b := tcpPair(t)
	f := newFlushWriter(a)
	if f.raw == nil {
		t.Fatal("a TCP connection is not written to raw")
	}
	want := make([]byte, 8<<20)
	for i := range want {
		want[i] = byte(i * 7)
	}
	got := make(chan []byte, 1)
	go func() {
		all, _ := io.ReadAll(b)
		got <- all
	}()
	if _, err := f.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(want); err != nil {
		t.Fatal(err)
	}
	if _, err := f.ReadFrom(io.LimitReader(bytes.NewReader(want), int64(len(want)))); err != nil {
		t.Fatal(err)
	}
	if err := f.Flush(); err != nil {
		t.Fatal(err)
	}
	a.Close()
	all := <-got
	if len(all) != 1+2*len(want) || all[0] != 'x' || !bytes.Equal(all[1:1+len(want)], want) || !bytes.Equal(all[1+len(want):], want) {
		t.Fatalf("the reader got %d bytes, not what was written (%d)", len(all), 1+2*len(want))
	}
}

// A write blocked on a peer that does not read ends at the connection's
// write deadline (kill relies on it), and a write to a closed connection
// fails.
func TestFlushWriterRawSocketDeadline(t *testing.T) {
	a, _ := tcpPair(t)
	f := newFlushWriter(a)
	if err := a.SetWriteDeadline(time.Now().Add(50 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	_, err := f.Write(make([]byte, 64<<20))
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("write to a peer that does not read = %v, want the deadline", err)
	}
	c, _ := tcpPair(t)
	g := newFlushWriter(c)
	c.Close()
	if _, err := g.Write(make([]byte, ioBufSize)); err == nil {
		t.Fatal("a write to a closed connection succeeded")
	}
}

// A flushed write through a socket allocates nothing: the raw write's
// callback is made once per writer, not per write.
func TestFlushWriterRawWriteAllocs(t *testing.T) {
	a, b := tcpPair(t)
	f := newFlushWriter(a)
	msg := []byte("Z\x00\x00\x00\x05I")
	got := make([]byte, len(msg))
	allocs := testing.AllocsPerRun(200, func() {
		if _, err := f.Write(msg); err != nil {
			t.Fatal(err)
		}
		if err := f.Flush(); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(b, got); err != nil || !bytes.Equal(got, msg) {
			t.Fatalf("read %q, %v", got, err)
		}
	})
	if allocs != 0 {
		t.Errorf("%.1f allocations per write and flush, want 0", allocs)
	}
}
