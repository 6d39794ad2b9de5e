package awsgw

import (
	"context"
	"io"
	"net/http"
	"net/http/httptrace"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/airlock-dev/airlock/internal/gateway"
)

// A grant that ends once a call's whole answer has been delivered, while
// the handler still settles the call, does not reset the connection: the
// client may already have sent its next call, of another grant, on it.
// (TestUploadIDAcrossGrants failed so under load: every grant's client
// there shares one transport.)
func TestGrantEndAfterDeliveryKeepsConnection(t *testing.T) {
	grantEndKeepsConnection(t, func(gw *Gateway, hook func(*exchange)) { gw.afterCopy = hook })
}

// The narrower window: the grant ends right after the flush that sends an
// answer's last bytes, before the handler has gone on at all. The client
// has the whole answer by then and may have sent its next call; the cut
// must already be disarmed (TestUploadIDAcrossGrants still failed so in a
// fresh-clone CI run while the cut was disarmed only after the copy).
func TestGrantEndAtLastFlushKeepsConnection(t *testing.T) {
	grantEndKeepsConnection(t, func(gw *Gateway, hook func(*exchange)) { gw.afterLastFlush = hook })
}

// grantEndKeepsConnection makes a GET under one grant, and ends that grant
// from the hook install sets (which runs inside the GET's handler) once the
// client has sent its next call, a PUT under another grant, on the same
// connection; the PUT must succeed.
func grantEndKeepsConnection(t *testing.T, install func(*Gateway, func(*exchange))) {
	e := newEnv(t)
	e.up.put("logs/app/a", []byte("hello"))
	g1, g2 := e.grant(walkScope), e.grant(walkScope)
	wrote := make(chan struct{}) // g2's request is on the wire
	var once sync.Once
	install(e.gw, func(x *exchange) {
		once.Do(func() {
			e.endWhenSent(g1, wrote, func() bool {
				x.ccMu.Lock()
				defer x.ccMu.Unlock()
				return x.cutNow
			})
		})
	})
	// One connection for both grants' clients, as an SDK's shared pool.
	tr := &http.Transport{MaxConnsPerHost: 1, MaxIdleConnsPerHost: 1}
	defer tr.CloseIdleConnections()
	client := func(ak, sk, tok string) *s3.Client {
		return s3.New(s3.Options{Region: testRegion, BaseEndpoint: aws.String(e.srv.URL), UsePathStyle: true, RetryMaxAttempts: 1,
			Credentials: credentials.NewStaticCredentialsProvider(ak, sk, tok), HTTPClient: &http.Client{Transport: tr}})
	}
	out, err := client(g1.CredentialID, g1.Secret, g1.SessionToken).GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String("logs"), Key: aws.String("app/a")})
	if err != nil {
		t.Fatalf("the call delivered before its grant ended: %v", errCode(err))
	}
	_, err = io.ReadAll(out.Body) // to the end: the connection goes back to the pool
	out.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	var wroteOnce sync.Once
	ctx := httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{
		WroteRequest: func(httptrace.WroteRequestInfo) { wroteOnce.Do(func() { close(wrote) }) },
	})
	// A PUT: net/http would resend a GET on another connection by itself.
	_, err = client(g2.CredentialID, g2.Secret, g2.SessionToken).PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("logs"), Key: aws.String("app/b"), Body: strings.NewReader("next")})
	if err != nil {
		t.Fatalf("the next call on the same connection, under another grant: %v", errCode(err))
	}
}

// endWhenSent runs in the handler of a call of g whose answer is out: once
// the client has sent its next call on the same connection (wrote is
// closed), g ends, and endWhenSent returns when cut reports that the
// session's end reached the call, and the cut has had time to act.
func (e *env) endWhenSent(g *gateway.Grant, wrote <-chan struct{}, cut func() bool) {
	select {
	case <-wrote:
	case <-time.After(5 * time.Second):
		e.t.Error("the second call was not sent while the first was settled")
	}
	e.auth.End(g, "revoked")
	for deadline := time.Now().Add(5 * time.Second); !cut() && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond) // let the cut finish what it does
}
