package sniff

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/tlscert"
)

func serve(t *testing.T, o Options) (addr string, pool *x509.CertPool) {
	t.Helper()
	dir := t.TempDir()
	cfg, caPath, err := tlscert.Ensure(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	pem, _ := os.ReadFile(caPath)
	pool = x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	o.TLS = cfg
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sl := Wrap(ln, o)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS != nil {
			io.WriteString(w, "tls")
		} else {
			io.WriteString(w, "plain")
		}
	})}
	go srv.Serve(sl)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String(), pool
}

func get(t *testing.T, c *http.Client, url string) (string, error) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

func TestBothOnOnePort(t *testing.T) {
	addr, pool := serve(t, Options{})
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	if body, err := get(t, c, "https://"+addr+"/"); err != nil || body != "tls" {
		t.Fatalf("https: %q %v", body, err)
	}
	if body, err := get(t, c, "http://"+addr+"/"); err != nil || body != "plain" {
		t.Fatalf("http from loopback: %q %v", body, err)
	}
}

func TestPlaintextRefusedWhenNotAllowed(t *testing.T) {
	addr, _ := serve(t, Options{Plaintext: func(net.Addr) bool { return false }})
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + addr + "/")
	if err != nil {
		t.Fatalf("want a 400 explaining TLS, got %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 400 || !strings.Contains(string(b), "TLS") {
		t.Fatalf("status %d body %q", resp.StatusCode, b)
	}
}

func TestLoopbackOnly(t *testing.T) {
	for addr, want := range map[string]bool{"127.0.0.1:1": true, "[::1]:1": true, "127.9.9.9:5": true, "192.0.2.1:1": false, "[::ffff:127.0.0.1]:1": true, "[2001:db8::1]:1": false} {
		ta, err := net.ResolveTCPAddr("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		if got := LoopbackOnly(ta); got != want {
			t.Errorf("LoopbackOnly(%s) = %v, want %v", addr, got, want)
		}
	}
}

func TestSilentClientTimesOut(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sl := Wrap(ln, Options{Timeout: 100 * time.Millisecond})
	defer sl.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("a client that sends nothing should be closed, got %v", err)
	}
}

// A plaintext connection passes ReadFrom on to the socket, so that net/http
// can have the kernel move a body from another socket (splice) into it,
// and still reads the peeked bytes first.
func TestPlaintextConnTakesReadFrom(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sl := Wrap(ln, Options{})
	defer sl.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	if _, err := io.WriteString(client, "GET / HTTP/1.1\r\n"); err != nil {
		t.Fatal(err)
	}
	c, err := sl.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	rf, ok := c.(io.ReaderFrom)
	if !ok {
		t.Fatalf("%T is not an io.ReaderFrom", c)
	}
	// The source is another socket, as an upstream's answer is.
	srcLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer srcLn.Close()
	go func() {
		s, err := net.Dial("tcp", srcLn.Addr().String())
		if err == nil {
			io.WriteString(s, strings.Repeat("x", 100<<10)+"tail")
			s.Close()
		}
	}()
	src, err := srcLn.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	got := make(chan string, 1)
	go func() {
		_ = client.SetReadDeadline(time.Now().Add(5 * time.Second))
		b, _ := io.ReadAll(io.LimitReader(client, 100<<10))
		got <- string(b)
	}()
	n, err := rf.ReadFrom(&io.LimitedReader{R: src, N: 100 << 10})
	if err != nil || n != 100<<10 {
		t.Fatalf("ReadFrom: %d, %v", n, err)
	}
	if b := <-got; b != strings.Repeat("x", 100<<10) {
		t.Fatalf("the client got %d bytes, not the source's first %d", len(b), 100<<10)
	}
	line := make([]byte, 16)
	if _, err := io.ReadFull(c, line); err != nil || string(line) != "GET / HTTP/1.1\r\n" {
		t.Fatalf("read %q, %v: the peeked byte must come first", line, err)
	}
}
