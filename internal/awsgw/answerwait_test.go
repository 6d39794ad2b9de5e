package awsgw

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ssm"

	"github.com/airlock-dev/airlock/internal/clock"
	"github.com/airlock-dev/airlock/internal/gateway"
	"github.com/airlock-dev/airlock/internal/gateway/gatewaytest"
)

// silentUpstream accepts connections, reads each request whole and never
// answers; got receives each request's method once read.
func silentUpstream(t *testing.T) (string, <-chan string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	got := make(chan string, 8)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { c.Close() })
			go func() {
				req, err := http.ReadRequest(bufio.NewReader(c))
				if err != nil {
					return
				}
				_, _ = io.Copy(io.Discard, req.Body)
				got <- req.Method
				_, _ = io.Copy(io.Discard, c) // until the gateway gives up
			}()
		}
	}()
	return "http://" + ln.Addr().String(), got
}

// An upstream that takes a call and never answers held it, and the
// client's connection, until the grant ended (measured: a GetObject still
// unanswered after 20 s, answered only by the grant's end). Once the
// upstream has the whole request it now has upstreamAnswerTime (S3) or
// serviceAnswerTime (other services), on the gateway's clock, to start its
// answer; then the client gets 503 ServiceUnavailable and the result
// records why.
func TestSilentUpstreamIsGivenUp(t *testing.T) {
	s3call := func(method string, body []byte) func(*env, *gateway.Grant) string {
		return func(e *env, g *gateway.Grant) string {
			st, b := do(t, e.signed(g, method, "/logs/app/a.txt", body))
			return fmt.Sprintf("%d %s", st, b)
		}
	}
	for _, tc := range []struct {
		name  string
		after time.Duration
		call  func(*env, *gateway.Grant) string
	}{
		{"s3 GET", upstreamAnswerTime, s3call(http.MethodGet, nil)},
		{"s3 PUT", upstreamAnswerTime, s3call(http.MethodPut, bytes.Repeat([]byte("x"), 100<<10))},
		{"ssm", serviceAnswerTime, func(e *env, g *gateway.Grant) string {
			cfg := aws.Config{Region: testRegion, BaseEndpoint: aws.String(e.srv.URL), RetryMaxAttempts: 1, HTTPClient: e.srv.Client(),
				Credentials: credentials.NewStaticCredentialsProvider(g.CredentialID, g.Secret, g.SessionToken)}
			_, err := ssm.NewFromConfig(cfg).GetParameter(context.Background(), &ssm.GetParameterInput{Name: aws.String("/app/db/url")})
			return fmt.Sprint(err)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fake := clock.NewFake(time.Now())
			url, got := silentUpstream(t)
			e := newEnv(t, func(o *Options) {
				o.Clock = fake
				o.Targets[0].Endpoint = url
				o.Targets[0].Endpoints = map[string]string{"ssm": url}
			})
			g := e.auth.Add(gatewaytest.Spec{Identity: "log-triage-bot", Target: testTarget, TargetKind: "aws", Account: testAccount, TTL: time.Hour,
				Scope: []string{"s3:GetObject,s3:PutObject arn:aws:s3:::logs/app/*", "ssm:GetParameter arn:aws:ssm:" + testRegion + ":" + testAccount + ":parameter/app/db/*"}})
			done := make(chan string, 1)
			go func() { done <- tc.call(e, g) }()
			select {
			case <-got:
			case <-time.After(10 * time.Second):
				t.Fatal("the upstream never got the request")
			}
			// The session's expiry timer and the answer's, armed as the
			// request went out whole; not waited for past a few seconds,
			// so that without the bound the test fails on the answer.
			for deadline := time.Now().Add(3 * time.Second); fake.Pending() < 2 && time.Now().Before(deadline); {
				time.Sleep(5 * time.Millisecond)
			}
			fake.Advance(tc.after - time.Second)
			select {
			case a := <-done:
				t.Fatalf("given up before %s: %s", tc.after, a)
			case <-time.After(100 * time.Millisecond):
			}
			fake.Advance(time.Second)
			var a string
			select {
			case a = <-done:
			case <-time.After(10 * time.Second):
				t.Fatalf("still no answer after %s on the gateway's clock", tc.after)
			}
			within := "sent no answer within " + tc.after.String()
			if !strings.Contains(a, "503") || !strings.Contains(a, "ServiceUnavailable") || !strings.Contains(a, within) {
				t.Fatalf("answer %s", a)
			}
			if res := e.results(g, 1)[0]; !strings.Contains(res.Error, within) {
				t.Fatalf("result %+v", res)
			}
		})
	}
}

// A watch's timer is kept for the next call once stopped in time
// (keptTimer): reset for that call, it must cut that call alone when its
// upstream is silent, never the call it served before; and a timer whose
// function has run is never lent again. Named for the pass without the
// race detector (Makefile), which checks the reuse: the timer's
// allocation saved per call.
func TestAnswerWatchKeptTimerAllocs(t *testing.T) {
	clk := clock.NewFake(time.Unix(1_700_000_000, 0))
	timers := &timerPool{clk: clk}
	var causes [3]error
	watch := func(i int) *answerWatch {
		return &answerWatch{after: time.Minute, timers: timers, cancel: cancelFunc(func(err error) { causes[i] = err })}
	}
	first := watch(0)
	first.start()
	kept := first.timer
	first.stop()
	if clk.Pending() != 0 {
		t.Fatalf("%d timers pending after the first call's stop", clk.Pending())
	}

	second := watch(1)
	second.start()
	// The race detector makes sync.Pool drop a share of what is put
	// back (race_on_test.go): the reuse is checked without it, the rest
	// with it too.
	if second.timer != kept && !raceOn {
		t.Fatal("the second call did not reuse the timer the first one stopped in time")
	}
	clk.Advance(59 * time.Second)
	if causes[1] != nil {
		t.Fatalf("the second call was cut before its bound: %v", causes[1])
	}
	clk.Advance(time.Second)
	if causes[1] != errUpstreamSilent || causes[0] != nil {
		t.Fatalf("after the bound: first call's cause %v, second's %v; want nil and %v", causes[0], causes[1], errUpstreamSilent)
	}
	second.stop() // too late: its timer has fired

	third := watch(2)
	third.start()
	if third.timer == kept {
		t.Fatal("a timer whose function ran was lent again")
	}
	third.stop()
	clk.Advance(time.Hour)
	if causes[2] != nil || causes[0] != nil {
		t.Fatalf("stopped calls were cut: %v, %v", causes[0], causes[2])
	}
}
