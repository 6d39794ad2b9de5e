package awsgw

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"reflect"
	"sync"
	"testing"
	"time"
)

// scriptConn is an upstream connection that answers with script once a
// request has been written to it, then ends (EOF). Its reads wait for
// the first write, so that net/http's Transport, whose reader peeks at
// a connection as soon as it is dialled, does not take the answer for
// one nobody asked for.
type scriptConn struct {
	script []byte
	wrote  chan struct{}
	closed chan struct{}
	wOnce  sync.Once
	cOnce  sync.Once
}

func newScriptConn(script []byte) *scriptConn {
	return &scriptConn{script: script, wrote: make(chan struct{}), closed: make(chan struct{})}
}

func (c *scriptConn) Read(p []byte) (int, error) {
	select {
	case <-c.wrote:
	case <-c.closed:
		return 0, net.ErrClosed
	}
	if len(c.script) == 0 {
		return 0, io.EOF
	}
	n := copy(p, c.script)
	c.script = c.script[n:]
	return n, nil
}

func (c *scriptConn) Write(p []byte) (int, error) {
	c.wOnce.Do(func() { close(c.wrote) })
	return len(p), nil
}

func (c *scriptConn) Close() error {
	c.cOnce.Do(func() { close(c.closed) })
	return nil
}

func (c *scriptConn) LocalAddr() net.Addr                    { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1} }
func (c *scriptConn) RemoteAddr() net.Addr                   { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 2} }
func (c *scriptConn) SetDeadline(time.Time) error            { return nil }
func (c *scriptConn) SetReadDeadline(time.Time) error        { return nil }
func (c *scriptConn) SetWriteDeadline(time.Time) error       { return nil }
func (c *scriptConn) SetReadBufferSize(int) error            { return nil }
func (c *scriptConn) SetKeepAlive(bool) error                { return nil }
func (c *scriptConn) SetKeepAlivePeriod(time.Duration) error { return nil }

// scriptedTransport is UpstreamTransport dialling scripts: the i-th
// connection answers with scripts[i] (none left: an empty answer).
func scriptedTransport(scripts ...[]byte) *http.Transport {
	var mu sync.Mutex
	next := UpstreamTransport()
	next.DialContext = func(context.Context, string, string) (net.Conn, error) {
		mu.Lock()
		defer mu.Unlock()
		var s []byte
		if len(scripts) > 0 {
			s, scripts = scripts[0], scripts[1:]
		}
		return newScriptConn(s), nil
	}
	return next
}

// h1Answer is what a caller sees of an answer: status, header, body and
// whether the body ended in an error, and the trailer.
type h1Answer struct {
	Status  int
	Header  http.Header
	Length  int64
	Body    []byte
	BodyErr bool
	Trailer http.Header
}

func h1Fetch(tr http.RoundTripper, method string) (*h1Answer, error) {
	req, err := http.NewRequest(method, "http://upstream.test/bucket/key", nil)
	if err != nil {
		return nil, err
	}
	resp, err := tr.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return &h1Answer{resp.StatusCode, resp.Header, resp.ContentLength, body, err != nil, resp.Trailer}, nil
}

// FuzzH1Transport checks the gateway's own HTTP/1 client (h1Transport),
// which reads the upstream's answers to GET and HEAD, against net/http's
// Transport (UpstreamTransport, which it replaces for those calls): for
// any answer an upstream sends, the caller sees the same status, header,
// body and trailer from both, and an error from one exactly when the
// other gives one. Then a second call: it must be answered by the second
// connection's script or fail, never from bytes the upstream sent on the
// first connection before the second request was written (bytes past the
// end of an answer, a body sent for a HEAD): a connection whose answer
// was followed by more bytes is not one to send the next call on, and
// net/http's Transport closes it ("Unsolicited response received on idle
// HTTP channel").
func FuzzH1Transport(f *testing.F) {
	ok := "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
	f.Add([]byte(ok), []byte(ok), false)
	f.Add([]byte(ok), []byte(ok), true)
	f.Add([]byte("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 403 Forbidden\r\nContent-Length: 1\r\n\r\nx"), []byte(ok), false)
	f.Add([]byte("HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n"), []byte(ok), true)
	f.Add([]byte("HTTP/1.1 204 No Content\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n"), []byte(ok), false)
	f.Add([]byte("HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-T\r\n\r\n2\r\nok\r\n0\r\nX-T: 1\r\n\r\n"), []byte(ok), false)
	f.Add([]byte("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nok"), []byte(ok), false)
	f.Add([]byte("HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end"), []byte(ok), false)
	f.Add([]byte("HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok"), []byte(ok), false)
	f.Add([]byte("HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n"), []byte(ok), false)
	f.Add([]byte("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok"), []byte(ok), false)
	f.Add([]byte("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n"), []byte(ok), false)
	f.Add([]byte("garbage\r\n\r\n"), []byte(ok), false)
	f.Fuzz(func(t *testing.T, first, second []byte, head bool) {
		if len(first) > 16<<10 {
			// Bytes past an answer that arrive after its last read are
			// seen only by the next read, for net/http's Transport too
			// (its reader peeks at an idle connection, in a race with the
			// next call): the scripts are small enough to arrive whole.
			return
		}
		method := http.MethodGet
		if head {
			method = http.MethodHead
		}
		ref := scriptedTransport(first)
		want, wantErr := h1Fetch(ref, method)
		ref.CloseIdleConnections()

		tr := newH1Transport(scriptedTransport(first, second))
		defer tr.CloseIdleConnections()
		got, err := h1Fetch(tr, method)
		if wantErr == nil && want.Status == http.StatusSwitchingProtocols {
			// net/http hands the connection over; h1Transport refuses
			// an upgrade no call asked for.
			wantErr = errors.New("switched protocols")
		}
		if (err != nil) != (wantErr != nil) {
			t.Fatalf("answer %q: h1Transport's error %v, net/http's %v", first, err, wantErr)
		}
		if err == nil && !reflect.DeepEqual(got, want) {
			t.Fatalf("answer %q:\nh1Transport %+v\nnet/http    %+v", first, got, want)
		}

		// The second call: the second script's answer or an error.
		got, err = h1Fetch(tr, http.MethodGet)
		if err != nil {
			return
		}
		want, wantErr = readAnswer(second)
		if wantErr != nil || !reflect.DeepEqual(got, want) {
			t.Fatalf("after %q, the second call was answered %+v, not from its own connection's %q", first, got, second)
		}
	})
}

// readAnswer is an answer to a GET read from script as h1Transport reads
// one (informational answers skipped).
func readAnswer(script []byte) (*h1Answer, error) {
	br := bufio.NewReader(bytes.NewReader(script))
	req, _ := http.NewRequest(http.MethodGet, "http://upstream.test/bucket/key", nil)
	for {
		resp, err := http.ReadResponse(br, req)
		if err != nil {
			return nil, err
		}
		if resp.StatusCode < 200 && resp.StatusCode != http.StatusSwitchingProtocols {
			continue
		}
		if resp.StatusCode == http.StatusSwitchingProtocols {
			return nil, errors.New("switched protocols")
		}
		body, err := io.ReadAll(resp.Body)
		return &h1Answer{resp.StatusCode, resp.Header, resp.ContentLength, body, err != nil, resp.Trailer}, nil
	}
}
