package awsgw

import (
	"bufio"
	"crypto/tls"
	"net"
	"net/http"
	"testing"
	"time"
)

// TestCutOffSlowReader reads a 20 MiB download a few KiB per tick and ends
// the grant part way: the gateway must close the client's connection at
// once, not when the data it already wrote has trickled out of its
// buffers, and the result must say when the transfer stopped and how much
// the client got.
func TestCutOffSlowReader(t *testing.T) {
	t.Run("http", func(t *testing.T) { testCutOffSlowReader(t, false) })
	// Over TLS the reset must reach the TCP connection under the TLS
	// layer (a TLS close would be a clean end).
	t.Run("https", func(t *testing.T) { testCutOffSlowReader(t, true) })
}

func testCutOffSlowReader(t *testing.T, useTLS bool) {
	e := newEnvTLS(t, useTLS)
	g := e.grant(walkScope)
	const size = 20 << 20
	e.up.put("logs/app/big.bin", pattern(size, 9))
	req := e.signed(g, http.MethodGet, "/logs/app/big.bin", nil)

	c, err := net.Dial("tcp", e.srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	conn := c.(*net.TCPConn)
	// A small receive window, as a slow client over a real network has:
	// what the gateway hands its kernel then piles up on its side.
	const rcvBuf = 32 << 10
	if err := conn.SetReadBuffer(rcvBuf); err != nil {
		t.Fatal(err)
	}
	var rw net.Conn = conn
	// The TLS record overhead in what the gateway's kernel had not sent,
	// for the result's byte count.
	var slack int64
	if useTLS {
		tc := tls.Client(conn, &tls.Config{RootCAs: e.srv.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs, ServerName: "example.com"})
		if err := tc.Handshake(); err != nil {
			t.Fatal(err)
		}
		rw, slack = tc, 16<<10
	}
	start := time.Now()
	if err := req.Write(rw); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReaderSize(rw, 4<<10)
	resp, err := http.ReadResponse(br, req)
	if err != nil {
		t.Fatal(err)
	}
	headAt := time.Now()
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}

	const piece, cutAfter = 4 << 10, 512 << 10
	buf := make([]byte, piece)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	var got, afterCut int64
	var cutAt time.Time
	var rerr error
	for limit := time.Now().Add(20 * time.Second); rerr == nil; {
		<-tick.C
		if time.Now().After(limit) {
			t.Fatalf("still reading %v after the start (%d bytes; %d since the cut)", time.Since(start), got, afterCut)
		}
		_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		var n int
		n, rerr = resp.Body.Read(buf)
		got += int64(n)
		if !cutAt.IsZero() {
			afterCut += int64(n)
		} else if got >= cutAfter {
			e.auth.End(g, "revoked")
			cutAt = time.Now()
		}
	}
	closedAt := time.Now()
	if got >= size {
		t.Fatalf("the whole object arrived (%d bytes) despite the revoke", got)
	}
	// What the client may still read after the cut is what its own
	// kernel had already received (its receive buffer, which Linux sizes
	// at twice the request, and the bufio buffer): nothing the gateway
	// had queued.
	if lag := closedAt.Sub(cutAt); lag > time.Second || afterCut > 2*rcvBuf+8<<10 {
		t.Fatalf("the connection closed %v after the revoke, after %d more bytes", lag, afterCut)
	}
	t.Logf("cut after %d bytes; %d more bytes arrived within %v", got-afterCut, afterCut, closedAt.Sub(cutAt))

	res := e.results(g, 1)[0]
	if res.Error != "cut off: grant "+g.ID+" was revoked" || res.Status != "200" {
		t.Fatalf("result: %+v", res)
	}
	t.Logf("recorded %d bytes out, duration %v; client read %d", res.BytesOut, res.Duration, got)
	// The bytes recorded are those that went out on the wire: at least
	// what the client read, and no more than its buffers could hold.
	if res.BytesOut < got-slack || res.BytesOut > got+2*rcvBuf+8<<10 {
		t.Fatalf("the result says %d bytes out; the client read %d", res.BytesOut, got)
	}
	// The recorded end (the call's start plus its duration) is the cut,
	// give or take the time the request took to arrive.
	if end := headAt.Add(res.Duration); end.Sub(cutAt) > 500*time.Millisecond {
		t.Fatalf("the result's duration %v ends %v after the cut", res.Duration, end.Sub(cutAt))
	}
	if end := start.Add(res.Duration); end.Before(cutAt.Add(-headAt.Sub(start))) {
		t.Fatalf("the result's duration %v ends before the cut", res.Duration)
	}
}
