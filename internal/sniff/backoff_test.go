package sniff

import (
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"
)

// flakyListener fails its first n Accepts with EMFILE, as a process out
// of file descriptors does, then accepts normally.
type flakyListener struct {
	net.Listener
	mu       sync.Mutex
	failures int
	failed   int
}

func (f *flakyListener) Accept() (net.Conn, error) {
	f.mu.Lock()
	if f.failed < f.failures {
		f.failed++
		f.mu.Unlock()
		return nil, &net.OpError{Op: "accept", Net: "tcp", Addr: f.Addr(), Err: os.NewSyscallError("accept4", syscall.EMFILE)}
	}
	f.mu.Unlock()
	return f.Listener.Accept()
}

// TestAcceptErrorsAreWaitedOut: after a few EMFILE failures the listener
// still serves (it used to hand the error to every later Accept, which
// left the gateway dead until a restart).
func TestAcceptErrorsAreWaitedOut(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fl := &flakyListener{Listener: inner, failures: 4}
	sl := Wrap(fl, Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }),
		ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(sl)
	defer srv.Close()
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get("http://" + inner.Addr().String() + "/")
	if err != nil {
		t.Fatalf("after %d EMFILE failures the listener does not serve: %v", fl.failures, err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "ok" {
		t.Fatalf("body %q", b)
	}
	fl.mu.Lock()
	defer fl.mu.Unlock()
	if fl.failed != fl.failures {
		t.Errorf("%d of %d failures seen", fl.failed, fl.failures)
	}
}

// TestCloseEndsAccept: closing the listener, also in the middle of a
// back-off, ends Accept with net.ErrClosed.
func TestCloseEndsAccept(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fl := &flakyListener{Listener: inner, failures: 1 << 30}
	sl := Wrap(fl, Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	errc := make(chan error, 1)
	go func() { _, err := sl.Accept(); errc <- err }()
	sl.Close()
	select {
	case err := <-errc:
		if !errors.Is(err, net.ErrClosed) {
			t.Errorf("Accept after Close: %v, want net.ErrClosed", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Accept did not return after Close")
	}
	// The accept loop stops too: a second Accept also returns at once.
	if _, err := sl.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("second Accept: %v", err)
	}
}
