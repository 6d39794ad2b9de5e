package awsgw

import (
	"bufio"
	"io"
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

// A call to a service other than S3 naming a live access key id and its
// session token (both in any presigned URL of the grant), signed
// over a body digest it does not send (no x-amz-content-sha256), makes the
// verifier read the body before it can check the signature: a client that
// declares a body and trickles none is let go within a bound, not held for
// as long as it likes.
func TestServiceBodyBeforeSignatureIsBounded(t *testing.T) {
	defer func(d, l time.Duration) { preAuthBodyTime, leftoverBodyTime = d, l }(preAuthBodyTime, leftoverBodyTime)
	preAuthBodyTime, leftoverBodyTime = 200*time.Millisecond, 200*time.Millisecond
	e := newEnv(t)
	g := e.grant("dynamodb:GetItem arn:aws:dynamodb:us-east-1:111122223333:table/orders")
	addr := strings.TrimPrefix(e.srv.URL, "http://")
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	date := time.Now().UTC().Format("20060102T150405Z")
	req := "POST / HTTP/1.1\r\nHost: dynamodb.us-east-1.amazonaws.com\r\nX-Amz-Date: " + date + "\r\n" +
		"X-Amz-Target: DynamoDB_20120810.GetItem\r\nContent-Type: application/x-amz-json-1.0\r\n" +
		"X-Amz-Security-Token: " + g.SessionToken + "\r\n" + // a presigned URL shows it as well as the key id
		"Authorization: AWS4-HMAC-SHA256 Credential=" + g.CredentialID + "/" + date[:8] + "/us-east-1/dynamodb/aws4_request, " +
		"SignedHeaders=host;x-amz-date;x-amz-security-token;x-amz-target, Signature=" + strings.Repeat("0", 64) + "\r\n" +
		"Content-Length: 1000\r\n\r\n"
	if _, err := c.Write([]byte(req)); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("a service call that never sent its body was not answered within 5 s: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	t.Logf("status %d: %s", resp.StatusCode, b)
	if resp.StatusCode < 400 {
		t.Fatalf("status %d", resp.StatusCode)
	}
}
