package awsgw

import (
	"bufio"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// A client without any credential that declares a body and never sends
// it is answered and let go within a bound: net/http reads the declared
// body before it writes the refusal, and the gateway's server has no
// ReadTimeout, so each such connection was held, with its goroutine, for
// as long as the client liked.
func TestRefusedCallWithUnsentBodyIsLetGo(t *testing.T) {
	defer func(d time.Duration) { leftoverBodyTime = d }(leftoverBodyTime)
	leftoverBodyTime = 200 * time.Millisecond
	e := newEnv(t)
	addr := strings.TrimPrefix(e.srv.URL, "http://")
	const n = 200
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.DialTimeout("tcp", addr, 5*time.Second)
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(5 * time.Second))
			if _, err := c.Write([]byte("PUT /bucket/key HTTP/1.1\r\nHost: s3.gw.test\r\nContent-Length: 1000\r\n\r\n")); err != nil {
				errs <- err
				return
			}
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				errs <- err // never answered: the connection is held
				return
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusForbidden && resp.StatusCode != http.StatusBadRequest {
				t.Errorf("status %d", resp.StatusCode)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("a refused call that declared a body it did not send: %v", err)
	}
}
