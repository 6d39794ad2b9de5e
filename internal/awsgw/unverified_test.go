package awsgw

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

// TestUnverifiedBodiesBounded: the body of a call to a service other than
// S3 is read whole before its signature can be checked (the SDKs sign its
// digest without sending it). Anyone who knows a live credential id,
// which is no secret, could open many connections that each declare a
// large body and send it slowly, and the process held each one's buffer:
// up to 6 MB per connection, about 24 GB at the listener's 4,096. What
// such bodies may hold at once is now bounded across the process: past
// it a call is refused at once (503, retryable) instead of read, and the
// bytes come back when a read ends.
func TestUnverifiedBodiesBounded(t *testing.T) {
	old := unverifiedBodies
	unverifiedBodies = &byteBudget{left: 768 << 10}
	t.Cleanup(func() { unverifiedBodies = old })

	e := newSvcEnv(t)
	g := e.grant("dynamodb:GetItem arn:aws:dynamodb:" + testRegion + ":" + testAccount + ":table/orders")
	creds := aws.Credentials{AccessKeyID: g.CredentialID, SecretAccessKey: g.Secret, SessionToken: g.SessionToken}
	sign := func(req *http.Request, body []byte) {
		req.Header.Set("Content-Type", "application/x-amz-json-1.0")
		req.Header.Set("X-Amz-Target", "DynamoDB_20120810.GetItem")
		sum := sha256.Sum256(body)
		if err := v4.NewSigner().SignHTTP(context.Background(), creds, req, hex.EncodeToString(sum[:]), "dynamodb", testRegion, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	big := 512 << 10

	// A slow upload: 512 KiB declared, a few bytes sent, then nothing.
	pr, pw := io.Pipe()
	slowReq, _ := http.NewRequest("POST", e.srv.URL+"/", pr)
	slowReq.ContentLength = int64(big)
	sign(slowReq, make([]byte, big))
	ctx, cancel := context.WithCancel(context.Background())
	slowDone := make(chan struct{})
	go func() {
		defer close(slowDone)
		resp, err := http.DefaultClient.Do(slowReq.WithContext(ctx))
		if err == nil {
			resp.Body.Close()
		}
	}()
	if _, err := pw.Write([]byte(`{"TableName":"orders",`)); err != nil {
		t.Fatal(err)
	}
	// The bytes left the client before the server's handler took the
	// budget for them: the next call must come after it did (it came
	// first once in CI and was served).
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		unverifiedBodies.mu.Lock()
		left := unverifiedBodies.left
		unverifiedBodies.mu.Unlock()
		if left < 768<<10 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the slow upload never took its part of the budget")
		}
	}

	// Another large body finds the budget taken, and is refused unread.
	body := append(append([]byte(`{"TableName":"orders","Key":{"id":{"S":"1"}},"Pad":"`), bytes.Repeat([]byte("x"), big)...), '"', '}')
	send := func() (int, string) {
		req, _ := http.NewRequest("POST", e.srv.URL+"/", bytes.NewReader(body))
		sign(req, body)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if status, b := send(); status != http.StatusServiceUnavailable {
		t.Fatalf("a second large unverified body while the first is read: %d %s", status, b)
	}
	// A small call still fits.
	small := []byte(`{"TableName":"orders","Key":{"id":{"S":"1"}}}`)
	req, _ := http.NewRequest("POST", e.srv.URL+"/", bytes.NewReader(small))
	sign(req, small)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("a small call beside the slow upload: %d", resp.StatusCode)
	}

	// The slow upload gives up: its bytes come back.
	cancel()
	pw.CloseWithError(io.ErrUnexpectedEOF)
	<-slowDone
	deadline := time.Now().Add(10 * time.Second)
	for {
		status, b := send()
		if status != http.StatusServiceUnavailable {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the budget never came back after the slow upload ended: %d %s", status, b)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
