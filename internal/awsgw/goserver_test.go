package awsgw

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestGoServerOwnAnswers pins what the README says of requests Go's HTTP
// server answers itself, before the gateway sees them: a malformed
// header gets 400 and a header section over MaxHeaderBytes 431, both in
// Go's plain text (http.Server has no hook for them in Go 1.26), while a
// header section between S3's 8 KiB and that limit is the gateway's own
// RequestHeaderSectionTooLarge. If a Go release adds a hook, the first two
// cases show where to use it.
func TestGoServerOwnAnswers(t *testing.T) {
	e := newEnv(t)
	addr := strings.TrimPrefix(e.srv.URL, "http://")
	for _, tc := range []struct {
		name, header string
		status       int
		ctype, body  string
	}{
		{"malformed header", "Bad Header: x\r\n", http.StatusBadRequest, "text/plain", "400 Bad Request"},
		{"header section over 1 MiB", "X-Pad: " + strings.Repeat("a", http.DefaultMaxHeaderBytes+8192) + "\r\n", http.StatusRequestHeaderFieldsTooLarge, "text/plain", "431 Request Header Fields Too Large"},
		{"header section over 8 KiB", "X-Pad: " + strings.Repeat("a", 9<<10) + "\r\n", http.StatusBadRequest, "application/xml", "<Code>RequestHeaderSectionTooLarge</Code>"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(30 * time.Second))
			go func() {
				_, _ = io.WriteString(c, "GET /logs/app/a HTTP/1.1\r\nHost: "+addr+"\r\n"+tc.header+"\r\n")
			}()
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.status || !strings.HasPrefix(resp.Header.Get("Content-Type"), tc.ctype) || !strings.Contains(string(body), tc.body) {
				t.Errorf("%d %q: %.300s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
			}
		})
	}
}
