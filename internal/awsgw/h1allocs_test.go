package awsgw

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"testing"
)

// cannedUpstream answers every request on a connection with the same
// fixed 1 KiB answer, allocating nothing per request, so that an
// allocation count of a round trip through it counts the transport's
// alone.
func cannedUpstream(tb testing.TB) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { ln.Close() })
	answer := append([]byte("HTTP/1.1 200 OK\r\nContent-Length: 1024\r\nContent-Type: application/octet-stream\r\n\r\n"), bytes.Repeat([]byte("x"), 1024)...)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				buf := make([]byte, 8<<10)
				n := 0
				for {
					m, err := c.Read(buf[n:])
					if err != nil {
						return
					}
					n += m
					// Requests without bodies, one at a time: each ends
					// the bytes read so far.
					if n >= 4 && bytes.Equal(buf[n-4:n], []byte("\r\n\r\n")) {
						n = 0
						if _, err := c.Write(answer); err != nil {
							return
						}
					} else if n == len(buf) {
						return
					}
				}
			}()
		}
	}()
	return "http://" + ln.Addr().String() + "/b/k"
}

// h1RoundTrip is one GET through tr, req on a context of its own as a
// call's is, its answer read whole (the connection goes back to the pool).
func h1RoundTrip(tb testing.TB, tr *h1Transport, req *http.Request, buf []byte) {
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	resp, err := tr.RoundTrip(req.WithContext(ctx))
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := io.ReadFull(resp.Body, buf); err != nil {
		tb.Fatal(err)
	}
	if n, err := resp.Body.Read(buf); n != 0 || err != io.EOF {
		tb.Fatalf("after the answer: %d, %v", n, err)
	}
	resp.Body.Close()
}

// h1Canned returns a GET 1 KiB through a new h1Transport to
// cannedUpstream (h1RoundTrip), closed when tb ends.
func h1Canned(tb testing.TB) func() {
	url := cannedUpstream(tb)
	tr := newH1Transport(UpstreamTransport())
	tb.Cleanup(tr.CloseIdleConnections)
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		tb.Fatal(err)
	}
	buf := make([]byte, 1024)
	return func() { h1RoundTrip(tb, tr, req, buf) }
}

// h1AllocsMax is what a GET through h1Transport on a kept connection
// allocates, its context and request copy (three) included: net/http's
// answer (the response, its header map and values, the body's reader),
// the cut's registration in the call's context, and the h1Body (with
// the fixedBody in it).
const h1AllocsMax = 18

func TestH1TransportRoundTripAllocs(t *testing.T) {
	if raceOn {
		t.Skip("allocation bounds hold only without the race detector")
	}
	roundTrip := h1Canned(t)
	roundTrip()
	if n := testing.AllocsPerRun(200, roundTrip); n > h1AllocsMax {
		t.Errorf("a GET through h1Transport allocates %v times, want at most %d", n, h1AllocsMax)
	} else {
		t.Logf("%v allocations per GET", n)
	}
}

// BenchmarkH1RoundTrip is a GET 1 KiB through h1Transport on a kept
// connection, its context cancellable, as a call's is.
func BenchmarkH1RoundTrip(b *testing.B) {
	roundTrip := h1Canned(b)
	b.ReportAllocs()
	for b.Loop() {
		roundTrip()
	}
}
