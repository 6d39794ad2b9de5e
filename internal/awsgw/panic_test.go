package awsgw

import (
	"context"
	"io"
	"log"
	"net/http"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/ssm"

	"github.com/airlock-dev/airlock/internal/gateway"
)

// TestResultPanicKeepsProcess: recording the result of an answer that
// was not delivered (cut off here, the grant revoked mid-download) runs on
// a goroutine of its own, which net/http does not recover: a panic in the
// recorder there ended the whole process. It is now logged, and the
// session still ends.
func TestResultPanicKeepsProcess(t *testing.T) {
	e := newEnv(t)
	g := e.grant(walkScope)
	e.auth.PanicOnResults(true)
	body := e.slowDownload(t, g)
	defer body.Close()
	e.auth.End(g, "revoked")
	_, _ = io.Copy(io.Discard, body)
	eventually(t, "the panic to be logged", func() bool {
		return strings.Contains(e.logText(), "panic recording a call's result")
	})
	eventually(t, "the session to end", func() bool { return e.auth.Sessions()[0].Ended() })
}

// panicTransport panics in every RoundTrip, standing for a bug in the
// exchange with the upstream (the gateway's own HTTP/1 client parses the
// upstream's answers).
type panicTransport struct{}

func (panicTransport) RoundTrip(*http.Request) (*http.Response, error) {
	panic("a bug in the upstream exchange")
}

// TestExchangePanicRecordsResult: a panic in a call's exchange, after its
// request was recorded, is recovered by net/http, which aborts the
// connection: the process goes on, and the call's result now says it
// failed. The log held a request with no result.
func TestExchangePanicRecordsResult(t *testing.T) {
	quiet := func(o *Options) { o.Transport = panicTransport{} }
	for _, tc := range []struct {
		name string
		call func(e *svcEnv, g *gateway.Grant) error
	}{
		{"s3 read", func(e *svcEnv, g *gateway.Grant) error {
			_, err := e.client(g).GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String("logs"), Key: aws.String("app/a.txt")})
			return err
		}},
		{"s3 write", func(e *svcEnv, g *gateway.Grant) error {
			_, err := e.client(g).PutObject(context.Background(), &s3.PutObjectInput{Bucket: aws.String("logs"), Key: aws.String("app/a.txt"), Body: strings.NewReader("a")})
			return err
		}},
		{"service read", func(e *svcEnv, g *gateway.Grant) error {
			_, err := ssm.NewFromConfig(e.cfg(g)).GetParameter(context.Background(), &ssm.GetParameterInput{Name: aws.String("/app/db/url")})
			return err
		}},
		{"service write", func(e *svcEnv, g *gateway.Grant) error {
			_, err := lambda.NewFromConfig(e.cfg(g)).Invoke(context.Background(), &lambda.InvokeInput{FunctionName: aws.String("long-query")})
			return err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newSvcEnv(t, quiet)
			e.srv.Config.ErrorLog = log.New(io.Discard, "", 0) // net/http's own line for the panic
			g := e.grant(walkScope, "ssm:GetParameter arn:aws:ssm:us-east-1:111122223333:parameter/app/db/*",
				"lambda:InvokeFunction arn:aws:lambda:us-east-1:111122223333:function:long-query")
			if err := tc.call(e, g); err == nil {
				t.Fatal("the call succeeded through a panicking exchange")
			}
			res := e.results(g, 1)
			if len(res) != 1 || res[0].Error != "internal error: the gateway ended this call" {
				t.Fatalf("results %+v, want one saying the gateway ended the call", res)
			}
			if n := len(e.requests(g)); n != 1 {
				t.Fatalf("%d requests recorded, want 1", n)
			}
			e.auth.End(g, "revoked")
			eventually(t, "the session to end", func() bool { return e.auth.Sessions()[0].Ended() })
		})
	}
}
