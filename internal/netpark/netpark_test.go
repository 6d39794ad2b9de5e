//go:build linux

package netpark

import (
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"runtime"
	"sync/atomic"
	"testing"
	"time"
)

func newPoller(t *testing.T) *Poller {
	t.Helper()
	p, err := New(slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// pair returns a parkable server side and the client side of a loopback
// TCP connection.
func pair(t *testing.T, p *Poller, ln net.Listener) (*Conn, net.Conn) {
	t.Helper()
	sv, cl := dialAccept(t, ln)
	pc, ok := p.Wrap(sv).(*Conn)
	if !ok {
		t.Fatal("a TCP connection was not wrapped")
	}
	t.Cleanup(func() { cl.Close(); pc.Close() })
	return pc, cl
}

// dialAccept returns the server and client sides of a new loopback TCP
// connection, unwrapped.
func dialAccept(t *testing.T, ln net.Listener) (sv, cl net.Conn) {
	t.Helper()
	cl, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	sv, err = ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	return sv, cl
}

func listen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

// woken returns a wake callback and a channel it closes.
func woken() (func(), chan struct{}) {
	ch := make(chan struct{})
	return func() { close(ch) }, ch
}

// park parks c and returns the channel its wake-up closes.
func park(t *testing.T, c *Conn) chan struct{} {
	t.Helper()
	wake, ch := woken()
	if err := c.Park(wake); err != nil {
		t.Fatal(err)
	}
	return ch
}

func waitFor(t *testing.T, ch chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
		t.Fatalf("not woken: %s", what)
	}
}

func notYet(t *testing.T, ch chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
		t.Fatalf("woken too early: %s", what)
	case <-time.After(50 * time.Millisecond):
	}
}

func TestWakeOnData(t *testing.T) {
	p := newPoller(t)
	pc, cl := pair(t, p, listen(t))
	ch := park(t, pc)
	if !pc.Parked() || p.Len() != 1 {
		t.Fatal("not parked")
	}
	notYet(t, ch, "nothing was sent")
	if _, err := cl.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ch, "data sent")
	if pc.Parked() || p.Len() != 0 {
		t.Fatal("still registered after its wake-up")
	}
	// The connection reads as usual after the wake-up, and parks again.
	b := make([]byte, 5)
	if _, err := io.ReadFull(pc, b); err != nil || string(b) != "hello" {
		t.Fatalf("read %q, %v", b, err)
	}
	ch = park(t, pc)
	cl.Write([]byte("again"))
	waitFor(t, ch, "data sent after a second park")
}

func TestWakeOnPeerClose(t *testing.T) {
	p := newPoller(t)
	pc, cl := pair(t, p, listen(t))
	ch := park(t, pc)
	cl.Close()
	waitFor(t, ch, "peer closed")
	if _, err := pc.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("read after the peer's close: %v, want EOF", err)
	}
}

func TestCloseWhileParked(t *testing.T) {
	p := newPoller(t)
	ln := listen(t)
	pc, _ := pair(t, p, ln)
	ch := park(t, pc)
	if err := pc.Close(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ch, "closed while parked")
	if p.Len() != 0 {
		t.Fatal("a closed connection is still registered")
	}
	if err := pc.Park(func() {}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Park after Close: %v, want ErrClosed", err)
	}
	// The descriptor number is likely reused by the next connection: its
	// parking must work, and only its own events wake it.
	pc2, cl2 := pair(t, p, ln)
	ch2 := park(t, pc2)
	notYet(t, ch2, "new connection on a reused descriptor")
	cl2.Write([]byte("x"))
	waitFor(t, ch2, "data on the new connection")
}

// A descriptor closed behind the wrapper's back (not through Conn.Close)
// cannot be woken by the poller; Close still does not touch the number.
func TestCloseUnderlyingThenWrapper(t *testing.T) {
	p := newPoller(t)
	pc, _ := pair(t, p, listen(t))
	ch := park(t, pc)
	pc.nc.Close()
	pc.Close()
	waitFor(t, ch, "wrapper closed after the connection")
}

func TestPollerClose(t *testing.T) {
	p, err := New(nil)
	if err != nil {
		t.Fatal(err)
	}
	pc, _ := pair(t, p, listen(t))
	ch := park(t, pc)
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ch, "poller closed")
	if err := pc.Park(func() {}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Park on a closed poller: %v, want ErrClosed", err)
	}
	if err := p.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func TestPanicInWake(t *testing.T) {
	p := newPoller(t)
	ln := listen(t)
	pc, cl := pair(t, p, ln)
	if err := pc.Park(func() { panic("boom") }); err != nil {
		t.Fatal(err)
	}
	cl.Write([]byte("x"))
	// The poller survives the panic and serves the next connection.
	pc2, cl2 := pair(t, p, ln)
	ch := park(t, pc2)
	cl2.Write([]byte("y"))
	waitFor(t, ch, "after another connection's wake-up panicked")
}

func TestParkTwice(t *testing.T) {
	p := newPoller(t)
	pc, _ := pair(t, p, listen(t))
	if err := pc.Park(func() {}); err != nil {
		t.Fatal(err)
	}
	if err := pc.Park(func() {}); err == nil {
		t.Fatal("a parked connection parked again")
	}
	if err := pc.Park(nil); err == nil {
		t.Fatal("nil wake accepted")
	}
}

// Parked connections hold no goroutine: a thousand of them, woken in turn.
func TestManyParked(t *testing.T) {
	const n = 1000
	p := newPoller(t)
	ln := listen(t)
	conns := make([]*Conn, n)
	clients := make([]net.Conn, n)
	var woke atomic.Int64
	done := make(chan struct{}, n)
	before := runtime.NumGoroutine()
	for i := range n {
		conns[i], clients[i] = pair(t, p, ln)
		if err := conns[i].Park(func() { woke.Add(1); done <- struct{}{} }); err != nil {
			t.Fatalf("park %d: %v", i, err)
		}
	}
	if got := runtime.NumGoroutine() - before; got > 10 {
		t.Fatalf("%d parked connections hold %d goroutines", n, got)
	}
	if p.Len() != n {
		t.Fatalf("%d parked, want %d", p.Len(), n)
	}
	for i := range n {
		if i%2 == 0 {
			clients[i].Write([]byte("x"))
		} else {
			clients[i].Close()
		}
	}
	for i := range n {
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			t.Fatalf("only %d of %d woken", i, n)
		}
	}
	if woke.Load() != n || p.Len() != 0 {
		t.Fatalf("woken %d, still parked %d", woke.Load(), p.Len())
	}
}

func TestWrapLeavesTLSAndPipes(t *testing.T) {
	p := newPoller(t)
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if _, ok := p.Wrap(a).(*Conn); ok {
		t.Fatal("a pipe was wrapped")
	}
	tc := tls.Client(a, &tls.Config{})
	if _, ok := p.Wrap(tc).(*Conn); ok {
		t.Fatal("a TLS connection was wrapped: it may hold decrypted bytes the socket will not signal")
	}
	var nilPoller *Poller
	if got := nilPoller.Wrap(a); got != a {
		t.Fatal("a nil poller wrapped a connection")
	}
}

// WrapInto makes the caller's Conn the wrapper, one that parks, sheds and
// wakes as Wrap's does; what Wrap leaves unwrapped it leaves too, and the
// caller's Conn untouched.
func TestWrapInto(t *testing.T) {
	p := newPoller(t)
	sv, cl := dialAccept(t, listen(t))
	defer cl.Close()
	var own struct {
		before [3]uint64
		pc     Conn
	}
	got := p.WrapInto(&own.pc, sv)
	if got != net.Conn(&own.pc) {
		t.Fatalf("WrapInto returned %T %p, want the caller's Conn %p", got, got, &own.pc)
	}
	defer own.pc.Close()
	ch := park(t, &own.pc)
	if !own.pc.Shed() {
		t.Fatal("a Conn wrapped in place was not shed")
	}
	cl.Write([]byte("hi"))
	waitFor(t, ch, "data sent to a shed Conn wrapped in place")
	b := make([]byte, 2)
	if _, err := io.ReadFull(&own.pc, b); err != nil || string(b) != "hi" {
		t.Fatalf("read %q, %v", b, err)
	}

	a, pb := net.Pipe()
	defer a.Close()
	defer pb.Close()
	var c Conn
	if got := p.WrapInto(&c, a); got != a || c.p != nil || c.nc != nil {
		t.Fatal("a pipe was wrapped in place")
	}
	var nilPoller *Poller
	if got := nilPoller.WrapInto(&c, sv); got != sv || c.p != nil {
		t.Fatal("a nil poller wrapped a connection in place")
	}
}

// A call beyond maxBusy concurrent ones fails instead of wrapping the
// count (which would let the connection be shed under calls in progress);
// the count is left as it was. (Here rather than in size_test.go: the
// poller it needs is Linux's.)
func TestBusyBound(t *testing.T) {
	p := newPoller(t)
	pc, _ := pair(t, p, listen(t))
	pc.mu.Lock()
	pc.busy = maxBusy
	pc.mu.Unlock()
	if _, err := pc.Write([]byte("x")); !errors.Is(err, errBusy) {
		t.Fatalf("a write past maxBusy calls: %v, want errBusy", err)
	}
	pc.mu.Lock()
	busy := pc.busy
	pc.busy = 0
	pc.mu.Unlock()
	if busy != maxBusy {
		t.Fatalf("busy is %d after the refused call, want %d", busy, maxBusy)
	}
	if _, err := pc.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
}
