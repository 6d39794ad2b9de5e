package awsgw

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// A grant holder whose client stops reading a download (or never reads
// it) held the call, its goroutine and its upstream connection (an open
// GetObject at versitygw) until the grant ended: the gateway's server has
// no WriteTimeout, since answers stream for as long as they take. Each
// write to the client is now allowed clientIdleTime; one that makes no
// progress for that long ends the call.
func TestStalledReaderIsLetGo(t *testing.T) {
	for _, splice := range []bool{true, false} {
		t.Run(fmt.Sprintf("splice=%v", splice), func(t *testing.T) {
			defer func(d time.Duration, s bool) { clientIdleTime, canSplice = d, s }(clientIdleTime, canSplice)
			clientIdleTime, canSplice = 300*time.Millisecond, splice
			e := newVersityEnv(t)
			g := e.grant("s3:GetObject,s3:PutObject arn:aws:s3:::logs/app/*")
			const size = 32 << 20
			if _, err := e.client(g).PutObject(context.Background(), &s3.PutObjectInput{Bucket: aws.String("logs"), Key: aws.String("app/big.bin"),
				Body: bytes.NewReader(pattern(size, 3))}); err != nil {
				t.Fatalf("PutObject: %v", errCode(err))
			}
			req := e.signed(g, http.MethodGet, "/logs/app/big.bin", nil)
			c, err := net.Dial("tcp", e.srv.Listener.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_ = c.(*net.TCPConn).SetReadBuffer(16 << 10)
			if err := req.Write(c); err != nil {
				t.Fatal(err)
			}
			resp, err := http.ReadResponse(bufio.NewReaderSize(c, 4<<10), req)
			if err != nil || resp.StatusCode != http.StatusOK {
				t.Fatalf("GET: %v %v", resp, err)
			}
			// The client reads nothing more. The call must end on its own.
			res := e.results(g, 2)[1]
			if res.Status != "200" || !strings.Contains(res.Error, "stopped reading") {
				t.Fatalf("result: %+v", res)
			}
			if res.BytesOut >= size {
				t.Fatalf("the result says the whole answer (%d bytes) went out", res.BytesOut)
			}
			// The connection is closed: what the client still reads ends
			// short of the object.
			_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
			n, err := io.Copy(io.Discard, resp.Body)
			if err == nil || n >= size {
				t.Fatalf("read %d more bytes, err %v", n, err)
			}
		})
	}
}

// A grant holder whose client declares an upload and stops sending it
// held the call and its upstream request (versitygw waiting for the rest
// of the body) until the grant ended. Each read of the body is now
// allowed clientIdleTime, as S3 allows an idle upload about 20 seconds:
// the client gets S3's RequestTimeout and the upstream stores nothing.
func TestStalledUploadIsLetGo(t *testing.T) {
	defer func(d time.Duration) { clientIdleTime = d }(clientIdleTime)
	clientIdleTime = 300 * time.Millisecond
	e := newVersityEnv(t)
	g := e.grant("s3:GetObject,s3:PutObject arn:aws:s3:::logs/app/*")
	const size = 1 << 20
	body := pattern(size, 5)
	req := e.signed(g, http.MethodPut, "/logs/app/stalled.bin", body)
	c, err := net.Dial("tcp", e.srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var head strings.Builder
	fmt.Fprintf(&head, "PUT %s HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\n", req.URL.RequestURI(), req.Host, size)
	for k, vs := range req.Header {
		for _, v := range vs {
			fmt.Fprintf(&head, "%s: %s\r\n", k, v)
		}
	}
	head.WriteString("\r\n")
	if _, err := io.WriteString(c, head.String()); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write(body[:64<<10]); err != nil {
		t.Fatal(err)
	}
	// The client sends nothing more, and waits for the answer.
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("no answer to a stalled upload: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusBadRequest || parseErr(t, b).Code != "RequestTimeout" {
		t.Fatalf("status %d: %s", resp.StatusCode, b)
	}
	res := e.results(g, 1)[0]
	if !strings.Contains(res.Error, "RequestTimeout") {
		t.Fatalf("result: %+v", res)
	}
	direct := s3.New(s3.Options{Region: testRegion, BaseEndpoint: aws.String(e.gw.targets[testTarget].base.String()), UsePathStyle: true,
		Credentials: credentials.NewStaticCredentialsProvider(upstreamAK, upstreamSK, "")})
	_, err = direct.HeadObject(context.Background(), &s3.HeadObjectInput{Bucket: aws.String("logs"), Key: aws.String("app/stalled.bin")})
	if err == nil || !strings.Contains(errCode(err), "NotFound") {
		var ae interface{ ErrorCode() string }
		_ = errors.As(err, &ae)
		t.Fatalf("the upstream holds the stalled upload: %v", err)
	}
}

// A client that reads slowly but steadily is not a stalled one: the idle
// bound is on each write, not on the whole answer.
func TestSlowSteadyReaderIsNotCut(t *testing.T) {
	for _, splice := range []bool{true, false} {
		t.Run(fmt.Sprintf("splice=%v", splice), func(t *testing.T) {
			defer func(d time.Duration, s bool) { clientIdleTime, canSplice = d, s }(clientIdleTime, canSplice)
			clientIdleTime, canSplice = time.Second, splice
			e := newVersityEnv(t)
			g := e.grant("s3:GetObject,s3:PutObject arn:aws:s3:::logs/app/*")
			const size = 4 << 20
			want := pattern(size, 7)
			if _, err := e.client(g).PutObject(context.Background(), &s3.PutObjectInput{Bucket: aws.String("logs"), Key: aws.String("app/slow.bin"),
				Body: bytes.NewReader(want)}); err != nil {
				t.Fatalf("PutObject: %v", errCode(err))
			}
			spliced := splicedBytes.Load()
			req := e.signed(g, http.MethodGet, "/logs/app/slow.bin", nil)
			c, err := net.Dial("tcp", e.srv.Listener.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_ = c.(*net.TCPConn).SetReadBuffer(16 << 10)
			if err := req.Write(c); err != nil {
				t.Fatal(err)
			}
			resp, err := http.ReadResponse(bufio.NewReaderSize(c, 4<<10), req)
			if err != nil || resp.StatusCode != http.StatusOK {
				t.Fatalf("GET: %v %v", resp, err)
			}
			// 64 KiB every 40 ms: the whole answer takes well over
			// clientIdleTime, each write well under it. A bound of a
			// second leaves the reader 960 ms of scheduling delay a
			// write on a loaded host (at 500 ms and 20 ms it was cut
			// once with callgrind running beside it).
			start := time.Now()
			var got []byte
			buf := make([]byte, 64<<10)
			_ = c.SetReadDeadline(time.Now().Add(20 * time.Second))
			var rerr error
			for rerr == nil {
				var n int
				n, rerr = io.ReadFull(resp.Body, buf)
				got = append(got, buf[:n]...)
				time.Sleep(40 * time.Millisecond)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("read %d bytes of %d (%v); result %+v", len(got), size, rerr, e.results(g, 2)[1])
			}
			if d := time.Since(start); d < 2*clientIdleTime {
				t.Fatalf("the read took %v only: it does not show the bound is per write", d)
			}
			if res := e.results(g, 2)[1]; res.Error != "" || res.BytesOut != size {
				t.Fatalf("result: %+v", res)
			}
			if splice && splicedBytes.Load() == spliced {
				t.Fatal("nothing was spliced")
			}
		})
	}
}

// The idle bound on an upload's reads ends with its body: net/http then
// reads the connection in the background, and a read deadline left to
// pass there would cancel the call while its upstream is still at work
// (a CompleteMultipartUpload of many parts can take minutes). net/http
// lifts the deadline as it starts that read; this holds it to it.
func TestIdleBoundEndsWithTheBody(t *testing.T) {
	defer func(d time.Duration) { clientIdleTime = d }(clientIdleTime)
	clientIdleTime = 200 * time.Millisecond
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		time.Sleep(4 * clientIdleTime) // an upstream at work after the body
		w.Header().Set("ETag", `"1"`)
	}))
	defer slow.Close()
	e := newEnv(t, func(o *Options) { o.Targets[0].Endpoint = slow.URL })
	g := e.grant("s3:PutObject arn:aws:s3:::logs/app/*")
	if _, err := e.client(g).PutObject(context.Background(), &s3.PutObjectInput{Bucket: aws.String("logs"), Key: aws.String("app/x"),
		Body: bytes.NewReader(pattern(100<<10, 1))}); err != nil {
		t.Fatalf("PutObject: %v", errCode(err))
	}
	if res := e.results(g, 1)[0]; res.Status != "200" || res.Error != "" {
		t.Fatalf("result: %+v", res)
	}
}

// A body the gateway reads whole after the signature and before it
// forwards the call (DeleteObjects' key list, a service call's
// parameters) had no bound either once the signature was checked: a
// grant holder that declared one and sent part of it held the call for
// as long as it liked. Each read may now wait clientIdleTime.
func TestStalledCheckedBodyIsLetGo(t *testing.T) {
	defer func(d time.Duration) { clientIdleTime = d }(clientIdleTime)
	clientIdleTime = 300 * time.Millisecond
	e := newVersityEnv(t)
	g := e.grant("s3:DeleteObject arn:aws:s3:::logs/app/*", "dynamodb:GetItem arn:aws:dynamodb:us-east-1:111122223333:table/orders")

	stalled := func(t *testing.T, req *http.Request, body []byte) (int, []byte) {
		t.Helper()
		c, err := net.Dial("tcp", e.srv.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		var head strings.Builder
		fmt.Fprintf(&head, "%s %s HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\n", req.Method, req.URL.RequestURI(), req.Host, len(body))
		for k, vs := range req.Header {
			for _, v := range vs {
				fmt.Fprintf(&head, "%s: %s\r\n", k, v)
			}
		}
		head.WriteString("\r\n")
		if _, err := io.WriteString(c, head.String()+string(body[:len(body)/2])); err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("no answer to a call whose body stalled: %v", err)
		}
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}

	t.Run("DeleteObjects", func(t *testing.T) {
		body := []byte(`<Delete><Object><Key>app/a</Key></Object><Object><Key>app/b</Key></Object></Delete>`)
		req := e.signed(g, http.MethodPost, "/logs?delete", body)
		st, b := stalled(t, req, body)
		if st != http.StatusBadRequest || parseErr(t, b).Code != "RequestTimeout" {
			t.Fatalf("status %d: %s", st, b)
		}
	})
	t.Run("dynamodb", func(t *testing.T) {
		body := []byte(`{"TableName":"orders","Key":{"id":{"S":"1"}}}`)
		req, err := http.NewRequest(http.MethodPost, e.srv.URL+"/", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("X-Amz-Target", "DynamoDB_20120810.GetItem")
		req.Header.Set("Content-Type", "application/x-amz-json-1.0")
		sum := sha256.Sum256(body)
		hash := hex.EncodeToString(sum[:])
		req.Header.Set("X-Amz-Content-Sha256", hash) // signed: the gateway need not read the body to check the signature
		creds := aws.Credentials{AccessKeyID: g.CredentialID, SecretAccessKey: g.Secret, SessionToken: g.SessionToken}
		if err := v4.NewSigner().SignHTTP(context.Background(), creds, req, hash, "dynamodb", testRegion, time.Now()); err != nil {
			t.Fatal(err)
		}
		st, b := stalled(t, req, body)
		if st != http.StatusBadRequest {
			t.Fatalf("status %d: %s", st, b)
		}
		t.Logf("%s", b)
	})
}
