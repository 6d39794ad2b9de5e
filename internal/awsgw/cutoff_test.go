package awsgw

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

func TestCutOffDownloadInFlight(t *testing.T) {
	e := newEnv(t)
	g := e.grant(walkScope)
	out, err := e.client(g).GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String("logs"), Key: aws.String("app/slow/big")})
	if err != nil {
		t.Fatalf("GetObject: %v", errCode(err))
	}
	defer out.Body.Close()
	<-e.up.slowStarted
	if _, err := io.ReadFull(out.Body, make([]byte, 1<<20)); err != nil {
		t.Fatalf("first MiB: %v", err)
	}
	e.auth.End(g, "revoked")
	n, err := io.Copy(io.Discard, out.Body)
	if err == nil {
		t.Fatalf("the download completed (%d more bytes) after the grant was revoked", n)
	}
	if n+1<<20 >= e.up.big {
		t.Fatalf("read %d bytes of %d", n+1<<20, e.up.big)
	}
	select {
	case upErr := <-e.up.slowDone:
		if upErr == nil {
			t.Fatal("the upstream finished sending")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the upstream request was not cancelled")
	}
	res := e.results(g, 1)
	if res[0].Error != "cut off: grant "+g.ID+" was revoked" || res[0].Status != "200" || res[0].BytesOut < 1<<20 || res[0].BytesOut >= e.up.big {
		t.Fatalf("result: %+v", res[0])
	}
	eventually(t, "the session to end", func() bool { return e.auth.Sessions()[0].Ended() })
}

// slowBody yields n bytes in pieces, pausing between them, until stopped.
type slowBody struct {
	left  int64
	piece int
	sent  chan int64
	total int64
}

func (s *slowBody) Read(p []byte) (int, error) {
	if s.left == 0 {
		return 0, io.EOF
	}
	time.Sleep(time.Millisecond)
	k := int64(min(len(p), s.piece))
	k = min(k, s.left)
	for i := range p[:k] {
		p[i] = 'u'
	}
	s.left -= k
	s.total += k
	select {
	case s.sent <- s.total:
	default:
	}
	return int(k), nil
}

func TestCutOffUploadInFlight(t *testing.T) {
	e := newEnv(t)
	g := e.grant(walkScope)
	const size = 64 << 20
	body := &slowBody{left: size, piece: 32 << 10, sent: make(chan int64, 1)}
	req, err := http.NewRequest(http.MethodPut, e.srv.URL+"/logs/app/upload.bin", body)
	if err != nil {
		t.Fatal(err)
	}
	req.ContentLength = size
	req.Header.Set("X-Amz-Content-Sha256", "UNSIGNED-PAYLOAD")
	creds := aws.Credentials{AccessKeyID: g.CredentialID, SecretAccessKey: g.Secret, SessionToken: g.SessionToken}
	if err := v4.NewSigner().SignHTTP(context.Background(), creds, req, "UNSIGNED-PAYLOAD", "s3", testRegion, time.Now()); err != nil {
		t.Fatal(err)
	}
	type result struct {
		status int
		body   string
		err    error
	}
	done := make(chan result, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			done <- result{err: err}
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		done <- result{status: resp.StatusCode, body: string(b)}
	}()
	for sent := int64(0); sent < 1<<20; {
		select {
		case sent = <-body.sent:
		case <-time.After(5 * time.Second):
			t.Fatal("the upload did not start")
		}
	}
	e.auth.End(g, "expired")
	var r result
	select {
	case r = <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the upload was not cut")
	}
	if r.err == nil && (r.status < 400 || !strings.Contains(r.body, "ExpiredToken")) {
		t.Fatalf("upload after expiry: %d %s", r.status, r.body)
	}
	if _, ok := e.up.object("logs/app/upload.bin"); ok {
		t.Fatal("the cut upload was stored upstream")
	}
	res := e.results(g, 1)
	if !strings.HasPrefix(res[0].Error, "cut off: The provided token has expired: grant "+g.ID) || res[0].BytesIn >= size {
		t.Fatalf("result: %+v", res[0])
	}
}

func TestCloseEndsSessions(t *testing.T) {
	e := newEnv(t)
	g := e.grant(walkScope)
	e.up.put("logs/app/a.txt", []byte("a"))
	if st, _ := do(t, e.signed(g, http.MethodGet, "/logs/app/a.txt", nil)); st != 200 {
		t.Fatalf("status %d", st)
	}
	if err := e.gw.Close(); err != nil {
		t.Fatal(err)
	}
	if s := e.auth.Sessions(); len(s) != 1 || !s[0].Ended() {
		t.Fatal("Close left the session open")
	}
	st, body := do(t, e.signed(g, http.MethodGet, "/logs/app/a.txt", nil))
	if er := parseErr(t, body); st != 503 || er.Code != "ServiceUnavailable" {
		t.Fatalf("after Close: %d %+v", st, er)
	}
}
