package awsgw

import (
	"bytes"
	"context"
	"crypto/sha256"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"testing"
)

// readCounter is a body that counts the reads the transport makes of it
// and their sizes.
type readCounter struct {
	r     io.Reader
	reads int
	max   int
}

func (c *readCounter) Read(p []byte) (int, error) {
	c.reads++
	c.max = max(c.max, len(p))
	return c.r.Read(p)
}

// TestUpstreamTransportCopiesBodiesInLargeReads: a body of declared length
// reaches the upstream whole, read through the large copy buffer rather
// than io.Copy's 32 KiB one, and the connection the transport holds still
// unwraps to the TCP connection a reset needs.
func TestUpstreamTransportCopiesBodiesInLargeReads(t *testing.T) {
	body := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
	want := sha256.Sum256(body)
	got := make(chan [32]byte, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := sha256.New()
		_, _ = io.Copy(h, r.Body)
		var s [32]byte
		h.Sum(s[:0])
		got <- s
	}))
	defer srv.Close()
	tr := UpstreamTransport()
	defer tr.CloseIdleConnections()

	var conn net.Conn
	body0 := &readCounter{r: bytes.NewReader(body)}
	req, err := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) { conn = i.Conn }}), http.MethodPut, srv.URL+"/b/k", io.NopCloser(body0))
	if err != nil {
		t.Fatal(err)
	}
	req.ContentLength = int64(len(body))
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if s := <-got; s != want {
		t.Fatal("the upstream received a different body")
	}
	if body0.max < copyBufSize/2 {
		t.Errorf("the transport read the body %d bytes at most at a time (in %d reads); want the copy buffer's %d", body0.max, body0.reads, copyBufSize)
	}
	if _, ok := rawConn(conn).(*net.TCPConn); !ok {
		t.Errorf("rawConn(%T) is %T, not the *net.TCPConn a reset needs", conn, rawConn(conn))
	}
}
