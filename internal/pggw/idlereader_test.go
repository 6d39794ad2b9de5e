package pggw

import (
	"bytes"
	"encoding/binary"
	"io"
	"math/rand/v2"
	"net"
	"testing"
	"testing/iotest"
	"time"

	"github.com/airlock-dev/airlock/internal/testenv"
)

// frames returns n protocol messages of random sizes (some larger than
// the buffer) and their concatenation.
func frames(rng *rand.Rand, n int) ([][]byte, []byte) {
	var msgs [][]byte
	var all []byte
	for range n {
		size := rng.IntN(200)
		if rng.IntN(10) == 0 {
			size = ioBufSize + rng.IntN(3*ioBufSize)
		}
		m := make([]byte, 5+size)
		m[0] = 'a' + byte(rng.IntN(26))
		m[1], m[2], m[3], m[4] = byte((size+4)>>24), byte((size+4)>>16), byte((size+4)>>8), byte(size+4)
		for i := 5; i < len(m); i++ {
			m[i] = byte(rng.Uint32())
		}
		msgs = append(msgs, m)
		all = append(all, m...)
	}
	return msgs, all
}

func readFrames(t *testing.T, r *idleReader, want [][]byte) {
	t.Helper()
	mr := msgReader{r: r, max: 1 << 20}
	for i, w := range want {
		got, err := mr.next()
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		if !bytes.Equal(got, w) {
			t.Fatalf("message %d: %d bytes differ from the %d sent", i, len(got), len(w))
		}
		mr.release()
	}
	if _, err := mr.next(); err != io.EOF {
		t.Fatalf("after the last message: %v, want EOF", err)
	}
	if r.buf != nil {
		t.Fatal("the reader holds a buffer at the end of its input")
	}
}

// TestIdleReaderFrames: messages framed through idleReader come out
// whole and in order, whatever the reads return (whole, halves, single
// bytes) and on a real socket (the raw read path), and the reader holds
// no buffer once everything is read.
func TestIdleReaderFrames(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	msgs, all := frames(rng, 300)
	for name, rd := range map[string]io.Reader{
		"whole":    bytes.NewReader(all),
		"halves":   iotest.HalfReader(bytes.NewReader(all)),
		"one byte": iotest.OneByteReader(bytes.NewReader(all)),
	} {
		t.Run(name, func(t *testing.T) { readFrames(t, newIdleReader(rd), msgs) })
	}
	t.Run("tcp", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		go func() {
			c, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				return
			}
			defer c.Close()
			// In uneven pieces with pauses, so that the reader blocks
			// between them.
			for rest := all; len(rest) > 0; {
				n := min(len(rest), 1+rng.IntN(3000))
				if _, err := c.Write(rest[:n]); err != nil {
					return
				}
				rest = rest[n:]
				if rng.IntN(20) == 0 {
					time.Sleep(time.Millisecond)
				}
			}
		}()
		c, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		r := newIdleReader(c)
		if r.raw == nil {
			t.Fatal("a TCP connection is not read raw")
		}
		readFrames(t, r, msgs)
	})
}

// tcpPair returns both ends of a loopback TCP connection.
func tcpPair(t *testing.T) (server, client net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", testenv.FreeAddr(t))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server, err = ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close(); server.Close() })
	return server, client
}

// The parking deadline fires only at rest, at a message boundary; in the
// middle of a message (a header in two parts, a large message streaming
// slowly) the read goes on without it, and the message arrives whole.
func TestIdleReaderParkingDeadline(t *testing.T) {
	const after = 20 * time.Millisecond
	rng := rand.New(rand.NewPCG(7, 7))
	msgs, all := frames(rng, 1)
	big := make([]byte, 5+3*ioBufSize)
	big[0], big[3], big[4] = 'd', byte((len(big)-1)>>8), byte(len(big)-1)
	msgs = append(msgs, big)
	all = append(all, big...)

	server, client := tcpPair(t)
	b := newIdleReader(server)
	// At rest with nothing sent: the deadline fires, for the loop to park.
	b.rest(time.Now, after)
	if _, err := b.Peek(5); !b.parkTimeout(err) {
		t.Fatalf("at rest: %v, want the parking deadline", err)
	}
	b.disarm()
	go func() {
		// The first bytes arrive at once, each next part after the
		// deadline would have fired.
		for i, part := range [][]byte{all[:3], all[3 : len(all)-ioBufSize], all[len(all)-ioBufSize:]} {
			if i > 0 {
				time.Sleep(3 * after)
			}
			if _, err := client.Write(part); err != nil {
				return
			}
		}
		client.Close()
	}()
	b.rest(time.Now, after)
	readFrames(t, b, msgs)
	if b.atRest {
		t.Fatal("still at rest after reading")
	}
}

// TestIdleReaderRestReadsClockAtRest: a relay loop calls rest before
// every message, and rest reads the clock only when the reader is at rest
// (nothing buffered), not for the messages that arrived with the one
// before: a statement's Bind, Execute and Sync read it once, not three
// times.
func TestIdleReaderRestReadsClockAtRest(t *testing.T) {
	const after = time.Minute
	server, client := tcpPair(t)
	b := newIdleReader(server)
	reads := 0
	now := func() time.Time { reads++; return time.Now() }
	msgs, _ := frames(rand.New(rand.NewPCG(8, 8)), 3)
	for i := range msgs {
		msgs[i] = msgs[i][:min(len(msgs[i]), 64)] // all three in one read
		msgs[i][1], msgs[i][2], msgs[i][3], msgs[i][4] = 0, 0, 0, byte(len(msgs[i])-1)
	}
	if _, err := client.Write(bytes.Join(msgs, nil)); err != nil {
		t.Fatal(err)
	}
	mr := msgReader{r: b, max: 1 << 20}
	for i := range msgs {
		b.rest(now, after)
		if _, err := mr.next(); err != nil {
			t.Fatal(err)
		}
		mr.release()
		if want := 1; reads != want {
			t.Fatalf("after message %d the clock was read %d times, want %d (at rest before the first only)", i, reads, want)
		}
	}
	b.rest(now, after) // nothing buffered: at rest again
	if reads != 2 || !b.atRest {
		t.Fatalf("at rest after the messages: %d clock reads, atRest %v; want 2, true", reads, b.atRest)
	}
}

// TestIdleReaderRawReadAllocs checks that a raw read (plain TCP) allocates
// nothing of its own: its callback was a closure per read, which with the
// variables it set cost three allocations per read, four reads per
// statement.
func TestIdleReaderRawReadAllocs(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	w, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	rc, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b := newIdleReader(rc)
	if b.raw == nil {
		t.Fatal("a TCP connection should be read raw")
	}
	msg := []byte("Q\x00\x00\x00\x0dselect 1;\x00")
	allocs := testing.AllocsPerRun(200, func() {
		if _, err := w.Write(msg); err != nil {
			t.Fatal(err)
		}
		p, err := b.Peek(len(msg))
		if err != nil || !bytes.Equal(p, msg) {
			t.Fatalf("peek: %q, %v", p, err)
		}
		_, _ = b.Discard(len(msg))
	})
	if allocs >= 1 {
		t.Errorf("%v allocations per message written and read, want none", allocs)
	}
}

// TestDeclaredLengthIsNotAllocated: a message declared at nearly
// MaxMessageBytes of which a few bytes arrive holds a buffer the size of
// what arrived, not of what was declared: each session of a client that
// declared 60 MiB and sent a dozen bytes held 60 MiB (measured: 480 MiB of
// heap for 8 sessions). Messages larger than the first buffer still come
// out whole, however their bytes arrive.
func TestDeclaredLengthIsNotAllocated(t *testing.T) {
	const declared = 60 << 20
	hdr := binary.BigEndian.AppendUint32([]byte{'Q'}, declared+4)
	mr := msgReader{r: newIdleReader(bytes.NewReader(append(hdr, "select 1 -- and nothing more"...))), max: 64 << 20}
	if _, err := mr.next(); err != io.ErrUnexpectedEOF {
		t.Fatalf("a message cut short: %v, want io.ErrUnexpectedEOF", err)
	}
	if c := cap(mr.big); c > growFrom {
		t.Fatalf("a message declared at %d bytes of which 33 arrived holds a %d-byte buffer", declared, c)
	}

	var msgs [][]byte
	var all []byte
	for _, size := range []int{3 * growFrom, growFrom + 1, 10, 5*growFrom + 7, 2 * growFrom} {
		m := make([]byte, 5+size)
		m[0] = 'd'
		m[1], m[2], m[3], m[4] = byte((size+4)>>24), byte((size+4)>>16), byte((size+4)>>8), byte(size+4)
		for i := 5; i < len(m); i++ {
			m[i] = byte(i * 7)
		}
		msgs = append(msgs, m)
		all = append(all, m...)
	}
	for name, rd := range map[string]io.Reader{
		"whole":  bytes.NewReader(all),
		"halves": iotest.HalfReader(bytes.NewReader(all)),
	} {
		t.Run(name, func(t *testing.T) { readFrames(t, newIdleReader(rd), msgs) })
	}
}

// A peer's last message and its end (FIN, or a reset) often arrive
// together, as one readiness of the socket. The reader must return the
// message and then the end, never wait for a readiness that will not
// come. A reader that skips the read after a short one, to save the read
// that returns EAGAIN before each wait, fails here in round 0 or 1; one
// that waits inside one RawConn.Read after a short read hung in 8 to 24
// runs of 50 of a prototype (bench/HISTORY.md, "pgbench -S: a
// CommandComplete's count and a statement's state test by hand"): the
// end's readiness came with the message's. Each round sends a message, waits
// for the reader to have it, then sends another and ends, while the
// reader waits at rest for the next one.
func TestIdleReaderSeesEndWithLastMessage(t *testing.T) {
	msg := []byte{'Q', 0, 0, 0, 8, 'a', 'b', 'c'}
	for _, reset := range []bool{false, true} {
		for round := range 20 {
			server, client := tcpPair(t)
			r := newIdleReader(server)
			got := make(chan error, 1)
			first := make(chan struct{})
			go func() {
				for i := range 2 {
					b, err := r.Peek(len(msg))
					if err != nil || !bytes.Equal(b, msg) {
						t.Errorf("reset %v, round %d: message %d read as %q, %v", reset, round, i, b, err)
						got <- err
						return
					}
					_, _ = r.Discard(len(msg))
					if i == 0 {
						close(first)
					}
				}
				_, err := r.Peek(1)
				got <- err
			}()
			if _, err := client.Write(msg); err != nil {
				t.Fatal(err)
			}
			<-first
			if _, err := client.Write(msg); err != nil {
				t.Fatal(err)
			}
			if reset {
				_ = client.(*net.TCPConn).SetLinger(0)
			}
			client.Close()
			select {
			case err := <-got:
				if err == nil {
					t.Fatalf("reset %v, round %d: a byte read after the peer's end", reset, round)
				}
			case <-time.After(10 * time.Second):
				// Not a wait for expiry: a bound on a hang.
				t.Fatalf("reset %v, round %d: the reader still waits after the peer's end", reset, round)
			}
			server.Close()
		}
	}
}
