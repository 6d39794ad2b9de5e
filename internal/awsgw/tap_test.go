package awsgw

import (
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// tap is a TCP relay between the gateway and its upstream that reports how
// the gateway ended each connection it opened: with a FIN, which an
// upstream may take as the clean end of a body and store what it got, or
// with a reset. A FIN is passed on as a FIN, a reset as a reset, so the
// upstream sees what it would see without the tap.
type tap struct {
	t      *testing.T
	ln     net.Listener
	target string
	// fwd counts the bytes relayed from the gateway to the upstream.
	fwd atomic.Int64

	mu    sync.Mutex
	conns []*tapConn
}

// tapConn is one relayed connection.
type tapConn struct {
	done chan struct{} // closed when both directions have ended
	mu   sync.Mutex
	// how the gateway ended its sending side: "fin", "reset" or another
	// read error.
	how string
}

func (c *tapConn) ended() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.how
}

func newTap(t *testing.T, target string) *tap {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tp := &tap{t: t, ln: ln, target: target}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			tc := &tapConn{done: make(chan struct{})}
			tp.mu.Lock()
			tp.conns = append(tp.conns, tc)
			tp.mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				tp.relay(c.(*net.TCPConn), tc)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		tp.mu.Lock()
		for _, c := range tp.conns {
			select {
			case <-c.done:
			default:
				t.Logf("tap: a connection was still open at the end of the test")
			}
		}
		tp.mu.Unlock()
	})
	return tp
}

func (tp *tap) addr() string { return tp.ln.Addr().String() }

func (tp *tap) relay(down *net.TCPConn, tc *tapConn) {
	defer close(tc.done)
	defer down.Close()
	uc, err := net.Dial("tcp", tp.target)
	if err != nil {
		tc.how = "dial: " + err.Error()
		return
	}
	up := uc.(*net.TCPConn)
	defer up.Close()
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { // gateway → upstream
		defer wg.Done()
		buf := make([]byte, 32<<10)
		for {
			n, err := down.Read(buf)
			if n > 0 {
				if _, werr := up.Write(buf[:n]); werr != nil {
					break
				}
				tp.fwd.Add(int64(n))
			}
			if err == nil {
				continue
			}
			tc.mu.Lock()
			switch {
			case err == io.EOF:
				tc.how = "fin"
			case errors.Is(err, syscall.ECONNRESET):
				tc.how = "reset"
			default:
				tc.how = err.Error()
			}
			tc.mu.Unlock()
			if err == io.EOF {
				_ = up.CloseWrite()
			} else {
				_ = up.SetLinger(0)
				_ = up.Close()
			}
			return
		}
	}()
	go func() { // upstream → gateway
		defer wg.Done()
		_, _ = io.Copy(struct{ io.Writer }{down}, up)
		_ = down.CloseWrite()
	}()
	wg.Wait()
}

// settle waits (bounded) until at least atLeast connections were
// accepted (the gateway may have connected before the tap got to accept)
// and every relayed connection has ended, that is, until the upstream has
// finished with every request sent through the tap, and returns how the
// gateway ended each one.
func (tp *tap) settle(t *testing.T, atLeast int) []string {
	t.Helper()
	eventually(t, "the gateway's upstream connection", func() bool {
		tp.mu.Lock()
		defer tp.mu.Unlock()
		return len(tp.conns) >= atLeast
	})
	tp.mu.Lock()
	conns := append([]*tapConn(nil), tp.conns...)
	tp.conns = nil
	tp.mu.Unlock()
	var hows []string
	deadline := time.After(10 * time.Second)
	for _, c := range conns {
		select {
		case <-c.done:
		case <-deadline:
			t.Fatalf("an upstream connection did not end")
		}
		hows = append(hows, c.ended())
	}
	return hows
}

// waitForwarded waits (bounded) until at least n bytes reached the upstream.
func (tp *tap) waitForwarded(t *testing.T, n int64) {
	t.Helper()
	eventually(t, "bytes to reach the upstream", func() bool { return tp.fwd.Load() >= n })
}
