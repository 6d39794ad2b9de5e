package sniff

import (
	"bufio"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// dialFrom connects to addr from the loopback address src (127.0.0.x).
func dialFrom(t *testing.T, src, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// roundTrip sends one keep-alive request on c and reads the answer's
// status line: "" when the connection was closed without an answer.
func roundTrip(t *testing.T, c net.Conn) string {
	t.Helper()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	defer c.SetDeadline(time.Time{})
	if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		return ""
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("no answer and no close: %v", err)
		}
		return ""
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.Status
}

// Idle keep-alive connections from one source fill only that source's
// share: its next connection is closed unanswered, another source's is
// served, and a closed connection's slot is given back.
func TestConnectionsPerSourceCapped(t *testing.T) {
	addr, _ := serve(t, Options{MaxConnsPerSource: 2, MaxConns: -1})
	a := dialFrom(t, "127.0.0.1", addr)
	b := dialFrom(t, "127.0.0.1", addr)
	for _, c := range []net.Conn{a, b} {
		if st := roundTrip(t, c); !strings.HasPrefix(st, "200") {
			t.Fatalf("within the cap: %q", st)
		}
	}
	if st := roundTrip(t, dialFrom(t, "127.0.0.1", addr)); st != "" {
		t.Fatalf("a third connection from one source was answered %q; want it closed", st)
	}
	if st := roundTrip(t, dialFrom(t, "127.0.0.2", addr)); !strings.HasPrefix(st, "200") {
		t.Fatalf("another source: %q", st)
	}
	a.Close()
	// The server sees the close when its read returns: bounded retries.
	for i := 0; ; i++ {
		if st := roundTrip(t, dialFrom(t, "127.0.0.1", addr)); strings.HasPrefix(st, "200") {
			break
		}
		if i == 50 {
			t.Fatal("a closed connection's slot was never given back")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// The overall cap holds whatever the sources.
func TestConnectionsCapped(t *testing.T) {
	addr, _ := serve(t, Options{MaxConns: 2, MaxConnsPerSource: -1})
	for _, src := range []string{"127.0.0.1", "127.0.0.2"} {
		if st := roundTrip(t, dialFrom(t, src, addr)); !strings.HasPrefix(st, "200") {
			t.Fatalf("within the cap: %q", st)
		}
	}
	if st := roundTrip(t, dialFrom(t, "127.0.0.3", addr)); st != "" {
		t.Fatalf("a connection over the cap was answered %q; want it closed", st)
	}
}

// Every way a connection ends gives its slot back: closed by the client
// before its first byte, refused plaintext, TLS closed by the server.
func TestConnectionSlotsGivenBack(t *testing.T) {
	addr, pool := serve(t, Options{MaxConns: 1, MaxConnsPerSource: -1, Plaintext: func(a net.Addr) bool {
		return a.(*net.TCPAddr).IP.Equal(net.ParseIP("127.0.0.1"))
	}})
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Timeout: 5 * time.Second, Transport: tr}
	// Each step needs the one slot; the server may see the previous
	// connection's end a moment after the client: bounded retries.
	step := func(name string, try func() bool) {
		t.Helper()
		for i := 0; !try(); i++ {
			if i == 50 {
				t.Fatalf("%s: the slot was never free", name)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	for range 3 {
		step("silent client", func() bool { dialFrom(t, "127.0.0.1", addr).Close(); return true })
		step("refused plaintext", func() bool {
			return strings.HasPrefix(roundTrip(t, dialFrom(t, "127.0.0.2", addr)), "400")
		})
		step("tls", func() bool {
			body, err := get(t, hc, "https://"+addr+"/")
			return err == nil && body == "tls"
		})
	}
}
