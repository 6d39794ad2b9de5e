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

	"github.com/airlock-dev/airlock/internal/clock"
	"github.com/airlock-dev/airlock/internal/gateway"
)

func TestCutOffDownloadInFlight(t *testing.T) {
	e := newEnv(t)
	g := e.grant(walkScope)
	body := e.slowDownload(t, g)
	defer body.Close()
	e.auth.End(g, "revoked")
	n, err := io.Copy(io.Discard, body)
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

// slowDownload starts a GetObject of the upstream's slow big object under
// g and returns its body once the first MiB has arrived.
func (e *env) slowDownload(t *testing.T, g *gateway.Grant) io.ReadCloser {
	t.Helper()
	out, err := e.client(g).GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String("logs"), Key: aws.String("app/slow/big")})
	if err != nil {
		t.Fatalf("GetObject: %v", errCode(err))
	}
	<-e.up.slowStarted
	if _, err := io.ReadFull(out.Body, make([]byte, 1<<20)); err != nil {
		out.Body.Close()
		t.Fatalf("first MiB: %v", err)
	}
	return out.Body
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

// uploadResult is how a request in flight ended, for the client.
type uploadResult struct {
	status int
	body   string
	err    error
}

// startSlowUpload sends a 64 MiB PUT under g whose body trickles in, and
// returns once the gateway has taken 1 MiB of it; done yields the answer.
func startSlowUpload(t *testing.T, e *env, g *gateway.Grant) (size int64, done <-chan uploadResult) {
	t.Helper()
	size = 64 << 20
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
	ch := make(chan uploadResult, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			ch <- uploadResult{err: err}
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		ch <- uploadResult{status: resp.StatusCode, body: string(b)}
	}()
	for sent := int64(0); sent < 1<<20; {
		select {
		case sent = <-body.sent:
		case <-time.After(5 * time.Second):
			t.Fatal("the upload did not start")
		}
	}
	return size, ch
}

// checkCutAtExpiry checks that the upload was refused as expired, stored
// nothing upstream, and that its result records the cut.
func checkCutAtExpiry(t *testing.T, e *env, g *gateway.Grant, size int64, done <-chan uploadResult) {
	t.Helper()
	var r uploadResult
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

func TestCutOffUploadInFlight(t *testing.T) {
	e := newEnv(t)
	g := e.grant(walkScope)
	size, done := startSlowUpload(t, e, g)
	e.auth.End(g, "expired")
	checkCutAtExpiry(t, e, g, size, done)
}

// TestCutOffAtExpiryOnTheGatewaysClock: the grant's expiry passes on the
// gateway's clock while the control plane has not ended it (its own timer
// late or its replica gone): the gateway's own timer, on the injected
// clock, cuts the call in flight and ends the session, with no test
// waiting for real time to pass.
func TestCutOffAtExpiryOnTheGatewaysClock(t *testing.T) {
	fake := clock.NewFake(time.Now())
	e := newEnv(t, func(o *Options) { o.Clock = fake })
	g := e.grant(walkScope)
	size, done := startSlowUpload(t, e, g)
	eventually(t, "the session's expiry timer", func() bool { return fake.Pending() > 0 })
	fake.Set(g.ExpiresAt)
	checkCutAtExpiry(t, e, g, size, done)
	eventually(t, "the session to end", func() bool { return e.auth.Sessions()[0].Ended() })
	if g.EndReason() != "" {
		t.Fatalf("the control plane ended the grant (%q): the test no longer shows the gateway's own timer", g.EndReason())
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
