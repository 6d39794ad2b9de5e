package awsgw

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
)

// hangingLambda answers Invoke with its headers and a first chunk, then
// holds the rest until the request is cancelled (a long invocation
// streaming its answer), or holds even the headers if early.
func hangingLambda(t *testing.T, early bool) (url string, started, cancelled chan struct{}) {
	started, cancelled = make(chan struct{}), make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !early {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusOK)
			io.WriteString(w, `{"partial":"`+strings.Repeat("x", 64<<10))
			w.(http.Flusher).Flush()
		}
		close(started)
		select {
		case <-r.Context().Done():
			close(cancelled)
		case <-time.After(10 * time.Second):
		}
	}))
	t.Cleanup(srv.Close)
	return srv.URL, started, cancelled
}

// A grant's revocation cuts a Lambda invocation in flight, whether the
// function has begun answering or not, and the upstream request is
// cancelled.
func TestServiceCutInFlight(t *testing.T) {
	for _, early := range []bool{true, false} {
		var started, cancelled chan struct{}
		e := newSvcEnv(t, func(o *Options) {
			var u string
			u, started, cancelled = hangingLambda(t, early)
			o.Targets[0].Endpoints["lambda"] = u
		})
		g := e.grant("lambda:InvokeFunction arn:aws:lambda:us-east-1:111122223333:function:long-query")
		done := make(chan error, 1)
		go func() {
			_, err := lambda.NewFromConfig(e.cfg(g)).Invoke(context.Background(), &lambda.InvokeInput{FunctionName: aws.String("long-query")})
			done <- err
		}()
		<-started
		e.auth.End(g, "revoked")
		select {
		case err := <-done:
			if err == nil {
				t.Fatalf("early=%v: the invocation completed after the grant was revoked", early)
			}
			if early && !strings.Contains(err.Error(), "revoked") {
				t.Fatalf("early: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("early=%v: the call was not cut", early)
		}
		select {
		case <-cancelled:
		case <-time.After(5 * time.Second):
			t.Fatalf("early=%v: the upstream request was not cancelled", early)
		}
		res := e.results(g, 1)
		if !strings.HasPrefix(res[0].Error, "cut off: grant "+g.ID+" was revoked") {
			t.Fatalf("early=%v: result %+v", early, res[0])
		}
	}
}
