package awsgw

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// countingServer is an httptest server that counts the connections it
// accepted.
func countingServer(t *testing.T, h http.Handler) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var conns atomic.Int64
	srv := httptest.NewUnstartedServer(h)
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	return srv, &conns
}

func h1Get(t *testing.T, tr http.RoundTripper, ctx context.Context, url string) (*http.Response, error) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	return tr.RoundTrip(req)
}

// waitingServer is a countingServer that answers /ok at once, sends /body's
// first two bytes of four, and then (or at once, for any other path)
// waits until release is closed or the request ends, counting those
// that end in cancelled.
func waitingServer(t *testing.T, release chan struct{}, cancelled *atomic.Int64) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	return countingServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/ok":
			w.Write([]byte("ok"))
			return
		case "/body":
			w.Header().Set("Content-Length", "4")
			w.Write([]byte("ab"))
			w.(http.Flusher).Flush()
		}
		select {
		case <-release:
		case <-r.Context().Done():
			cancelled.Add(1)
		}
	}))
}

// h1GetAll GETs url through tr and reads the answer whole: status and body.
func h1GetAll(t *testing.T, tr http.RoundTripper, url string) (int, string) {
	t.Helper()
	resp, err := h1Get(t, tr, context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

func TestH1TransportReusesAConnectionReadWhole(t *testing.T) {
	srv, conns := countingServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("chunked") != "" {
			w.Write([]byte("ab"))
			w.(http.Flusher).Flush()
			w.Write([]byte("cd"))
			return
		}
		w.Header().Set("Content-Length", "4")
		w.Write([]byte("abcd"))
	}))
	tr := newH1Transport(UpstreamTransport())
	defer tr.CloseIdleConnections()
	for i, q := range []string{"", "?chunked=1", "", "?chunked=1", ""} {
		if status, b := h1GetAll(t, tr, srv.URL+"/x"+q); status != 200 || b != "abcd" {
			t.Fatalf("call %d: %d %q", i, status, b)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Fatalf("%d connections for 5 calls read whole one after another, want 1", n)
	}
}

// fixedAnswer is a counting server that answers body with its length, and
// an h1Transport to it.
func fixedAnswer(t *testing.T, body string) (*httptest.Server, *atomic.Int64, *h1Transport) {
	srv, conns := countingServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.Write([]byte(body))
	}))
	tr := newH1Transport(UpstreamTransport())
	t.Cleanup(tr.CloseIdleConnections)
	return srv, conns, tr
}

func TestH1TransportClosesAConnectionClosedEarly(t *testing.T) {
	srv, conns, tr := fixedAnswer(t, "abcd")
	resp, err := h1Get(t, tr, context.Background(), srv.URL+"/x")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := resp.Body.Read(make([]byte, 1)); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close() // 3 bytes unread: the connection cannot carry the next answer
	if _, b := h1GetAll(t, tr, srv.URL+"/x"); b != "abcd" {
		t.Fatalf("second answer %q, want abcd (read from where the first left off?)", b)
	}
	if n := conns.Load(); n != 2 {
		t.Fatalf("%d connections, want 2: one closed early is not reused", n)
	}
}

// A connection the upstream closed while idle: the next call goes out
// again on a new one, and succeeds.
func TestH1TransportRetriesOnAConnectionClosedWhileIdle(t *testing.T) {
	srv, conns, tr := fixedAnswer(t, "ok")
	for i := range 2 {
		if _, b := h1GetAll(t, tr, srv.URL+"/x"); b != "ok" {
			t.Fatalf("call %d: %q", i, b)
		}
		srv.CloseClientConnections() // the upstream drops its idle connections
	}
	if n := conns.Load(); n != 2 {
		t.Fatalf("%d connections, want 2", n)
	}
}

// Cancelling the request's context (a cut) fails a read waiting for the
// answer's header or body at once.
func TestH1TransportCancelFailsAWaitingRead(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	srv, _ := waitingServer(t, release, new(atomic.Int64))
	tr := newH1Transport(UpstreamTransport())
	defer tr.CloseIdleConnections()
	cause := errors.New("the session ended")

	ctx, cancel := context.WithCancelCause(context.Background())
	time.AfterFunc(50*time.Millisecond, func() { cancel(cause) })
	if _, err := h1Get(t, tr, ctx, srv.URL+"/header"); !errors.Is(err, cause) {
		t.Fatalf("waiting for the header: %v, want the cut's cause", err)
	}

	ctx, cancel = context.WithCancelCause(context.Background())
	resp, err := h1Get(t, tr, ctx, srv.URL+"/body")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	buf := make([]byte, 4)
	n, _ := io.ReadFull(resp.Body, buf[:2])
	time.AfterFunc(50*time.Millisecond, func() { cancel(cause) })
	if _, err := resp.Body.Read(buf[n:]); err == nil {
		t.Fatal("a read of a body whose call was cut succeeded")
	}
}

// The upstream's header section is bounded, as net/http's Transport
// bounds it.
func TestH1TransportBoundsTheHeaderSection(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		_, _ = http.ReadRequest(bufio.NewReader(c))
		w := bufio.NewWriter(c)
		w.WriteString("HTTP/1.1 200 OK\r\n")
		for range 1000 { // far over the bound, and never ending
			w.WriteString("X-Filler: " + strings.Repeat("x", 100) + "\r\n")
		}
		w.Flush()
	})
	next := UpstreamTransport()
	next.MaxResponseHeaderBytes = 16 << 10
	tr := newH1Transport(next)
	defer tr.CloseIdleConnections()
	if _, err := h1Get(t, tr, context.Background(), "http://"+ln.Addr().String()+"/x"); err == nil {
		t.Fatal("an answer with a header section over the bound was accepted")
	}
}

// Informational answers before the real one are skipped, and calls with a
// body go through net/http's Transport.
func TestH1TransportSkipsEarlyHintsAndPassesBodies(t *testing.T) {
	srv, _ := countingServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut {
			b, _ := io.ReadAll(r.Body)
			w.Write(append([]byte("put "), b...))
			return
		}
		w.Header().Set("Link", "</s.css>; rel=preload")
		w.WriteHeader(http.StatusEarlyHints)
		w.Header().Set("Content-Length", "2")
		w.Write([]byte("ok"))
	}))
	tr := newH1Transport(UpstreamTransport())
	defer tr.CloseIdleConnections()
	if status, b := h1GetAll(t, tr, srv.URL+"/x"); status != 200 || b != "ok" {
		t.Fatalf("%d %q, want 200 ok", status, b)
	}
	req, _ := http.NewRequest(http.MethodPut, srv.URL+"/x", strings.NewReader("body"))
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "put body" {
		t.Fatalf("%q, want put body", b)
	}
}

// twoIdle is a server answering "ok" and an h1Transport with two idle
// connections to it: two calls open at once, then both read whole.
func twoIdle(t *testing.T) (*httptest.Server, *h1Transport) {
	srv, _, tr := fixedAnswer(t, "ok")
	var resps []*http.Response
	for range 2 {
		r, err := h1Get(t, tr, context.Background(), srv.URL+"/x")
		if err != nil {
			t.Fatal(err)
		}
		resps = append(resps, r)
	}
	for _, r := range resps {
		io.ReadAll(r.Body)
	}
	return srv, tr
}

// Connections idle for longer than the idle timeout are closed by the
// pool's sweep, the ones still fresh kept, whether or not calls follow.
func TestH1TransportSweepsIdleConnections(t *testing.T) {
	srv, tr := twoIdle(t)
	tr.mu.Lock()
	l := slices.Clone(tr.idle[srv.Listener.Addr().String()])
	tr.mu.Unlock()
	if len(l) != 2 {
		t.Fatalf("%d idle connections, want 2", len(l))
	}
	l[0].idleAt = l[1].idleAt.Add(-time.Minute) // the older one idle a minute longer
	tr.sweep(l[1].idleAt.Add(tr.idleTimeout - time.Second))
	tr.mu.Lock()
	left := slices.Clone(tr.idle[srv.Listener.Addr().String()])
	tr.mu.Unlock()
	if len(left) != 1 || left[0] != l[1] {
		t.Fatalf("left %d idle connections, want the fresher one alone", len(left))
	}
	if _, err := l[0].conn.Read(make([]byte, 1)); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("reading the swept connection: %v, want it closed", err)
	}
	tr.sweep(l[1].idleAt.Add(tr.idleTimeout + time.Second))
	tr.mu.Lock()
	n := len(tr.idle)
	tr.mu.Unlock()
	if n != 0 {
		t.Fatalf("%d hosts with idle connections left, want none", n)
	}
}

// With several idle connections all closed by the upstream, the call is
// sent again on a new connection, not on the next stale one.
func TestH1TransportRetriesOnANewConnection(t *testing.T) {
	srv, tr := twoIdle(t)
	srv.CloseClientConnections()
	if _, b := h1GetAll(t, tr, srv.URL+"/x"); b != "ok" {
		t.Fatalf("%q, want ok", b)
	}
}

// An upstream that sends more than the answer (a body for a HEAD or a
// 204, a second answer behind the first): those bytes answer no call,
// and the connection is not reused, so the next call, another agent's
// perhaps, is answered by the upstream, not by them. Without the check
// in h1Body.finish the second call read "forged".
func TestH1TransportClosesAConnectionWithBytesPastTheAnswer(t *testing.T) {
	const forged = "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nforged"
	for _, c := range []struct {
		name, method, answer string
	}{
		{"two answers", http.MethodGet, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok" + forged},
		{"a body for a HEAD", http.MethodHead, "HTTP/1.1 200 OK\r\nContent-Length: 49\r\n\r\n" + forged},
		{"a body for a 204", http.MethodGet, "HTTP/1.1 204 No Content\r\n\r\n" + forged},
	} {
		t.Run(c.name, func(t *testing.T) {
			var wg sync.WaitGroup
			defer wg.Wait()
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			var mu sync.Mutex
			var open []net.Conn
			var calls atomic.Int64
			defer func() { // the server's end of every connection
				mu.Lock()
				defer mu.Unlock()
				for _, nc := range open {
					nc.Close()
				}
			}()
			wg.Go(func() {
				for {
					nc, err := ln.Accept()
					if err != nil {
						return
					}
					mu.Lock()
					open = append(open, nc)
					mu.Unlock()
					wg.Go(func() {
						defer nc.Close()
						br := bufio.NewReader(nc)
						for {
							if _, err := http.ReadRequest(br); err != nil {
								return
							}
							answer := "HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nupstream"
							if calls.Add(1) == 1 {
								answer = c.answer // in one write: all of it arrives at once
							}
							if _, err := nc.Write([]byte(answer)); err != nil {
								return
							}
						}
					})
				}
			})
			tr := newH1Transport(UpstreamTransport())
			defer tr.CloseIdleConnections()
			req, _ := http.NewRequest(c.method, "http://"+ln.Addr().String()+"/first", nil)
			resp, err := tr.RoundTrip(req)
			if err != nil {
				t.Fatal(err)
			}
			io.ReadAll(resp.Body)
			resp.Body.Close()
			if status, b := h1GetAll(t, tr, "http://"+ln.Addr().String()+"/second"); status != 200 || b != "upstream" {
				t.Fatalf("the second call was answered %d %q, want 200 upstream", status, b)
			}
		})
	}
}
