package awsgw

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/airlock-dev/airlock/internal/sigv4"
)

// recorder is a TCP relay between the gateway and its upstream that keeps
// every byte the gateway sent: what the upstream received, as it read it.
type recorder struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	sent   bytes.Buffer
	wg     sync.WaitGroup
}

func newRecorder(t *testing.T, target string) *recorder {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &recorder{ln: ln, target: target}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			r.wg.Add(1)
			go func() {
				defer r.wg.Done()
				defer c.Close()
				up, err := net.Dial("tcp", target)
				if err != nil {
					return
				}
				defer up.Close()
				go func() {
					_, _ = io.Copy(c, up)
					c.Close()
				}()
				_, _ = io.Copy(up, io.TeeReader(c, r))
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		r.wg.Wait()
	})
	return r
}

func (r *recorder) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.sent.Write(p)
}

func (r *recorder) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.sent.String()
}

// clientClaims are headers by which a proxy tells the next hop who the
// client is, and hop-by-hop ones, as an agent may send (and sign) them.
var clientClaims = http.Header{
	"X-Forwarded-For":     {"203.0.113.7"},
	"X-Forwarded-Host":    {"claimed-host.example"},
	"X-Forwarded-Proto":   {"https"},
	"X-Forwarded-Port":    {"8443"},
	"Forwarded":           {"for=203.0.113.8;host=claimed-host.example;proto=https"},
	"X-Real-Ip":           {"203.0.113.9"},
	"True-Client-Ip":      {"203.0.113.10"},
	"X-Client-Ip":         {"203.0.113.11"},
	"X-Cluster-Client-Ip": {"203.0.113.12"},
	"Client-Ip":           {"203.0.113.13"},
	"Via":                 {"1.1 claimed-proxy"},
	"Proxy-Authorization": {"Basic Y2xhaW1lZDpwcm94eQ=="},
}

// TestVersityClientClaimsNotForwarded sends a GetObject with every header
// of clientClaims, signed, through the gateway to versitygw, recording what
// versitygw receives: none of them may reach it (the agent could write
// what the upstream takes as its client's address), while the request
// still succeeds and an ordinary header (Range) still goes through.
func TestVersityClientClaimsNotForwarded(t *testing.T) {
	up := startVersity(t)
	rec := newRecorder(t, strings.TrimPrefix(up, "http://"))
	e := newEnv(t, func(o *Options) { o.Targets[0].Endpoint = "http://" + rec.ln.Addr().String() })
	g := e.grant("s3:GetObject arn:aws:s3:::logs/*")
	h := clientClaims.Clone()
	h.Set("Range", "bytes=0-2")
	status, body := do(t, e.signedHeader(g, "GET", "/logs/secret.txt", nil, h))
	if status != http.StatusPartialContent || string(body) != "top" {
		t.Fatalf("GET through the gateway: %d %q, want 206 \"top\"", status, body)
	}
	sent := rec.String()
	if !strings.Contains(sent, "GET /logs/secret.txt ") || !strings.Contains(strings.ToLower(sent), "\r\nrange: bytes=0-2\r\n") {
		t.Fatalf("the recorder did not see the request with its Range:\n%s", sent)
	}
	head, _, _ := strings.Cut(sent, "\r\n\r\n")
	for k, vs := range clientClaims {
		if strings.Contains(strings.ToLower(head), "\r\n"+strings.ToLower(k)+":") || strings.Contains(head, vs[0]) {
			t.Errorf("versitygw received the agent's %s: %s", k, vs[0])
		}
	}
	if t.Failed() {
		t.Logf("request head versitygw received:\n%s", head)
	}
}

// TestServiceClientClaimsNotForwarded: the other AWS services' path
// (svcforward.go) keeps the same headers back, and those the client's
// Connection header names, which it sent on.
func TestServiceClientClaimsNotForwarded(t *testing.T) {
	tg, err := newTarget(Target{Name: testTarget, Account: testAccount, Region: testRegion, Endpoint: "http://127.0.0.1:1",
		AccessKeyID: upstreamAK, SecretAccessKey: upstreamSK}, http.DefaultTransport)
	if err != nil {
		t.Fatal(err)
	}
	r, err := http.NewRequest("POST", "http://sqs.gw.test/", nil)
	if err != nil {
		t.Fatal(err)
	}
	r.Header = clientClaims.Clone()
	r.Header.Set("Connection", "keep-alive, X-Hop-Nominated")
	r.Header.Set("X-Hop-Nominated", "1")
	r.Header.Set("X-Amz-Target", "AmazonSQS.ListQueues")
	r.Header.Set("Content-Type", "application/x-amz-json-1.0")
	req, err := tg.serviceRequest(t.Context(), r, "sqs", sigv4.Credentials{AccessKeyID: upstreamAK, SecretAccessKey: upstreamSK}, []byte("{}"))
	if err != nil {
		t.Fatal(err)
	}
	for k := range clientClaims {
		if v := req.Header.Get(k); v != "" {
			t.Errorf("the upstream request carries the client's %s: %s", k, v)
		}
	}
	if v := req.Header.Get("X-Hop-Nominated"); v != "" {
		t.Errorf("the upstream request carries X-Hop-Nominated, which the client's Connection names")
	}
	if req.Header.Get("X-Amz-Target") != "AmazonSQS.ListQueues" || req.Header.Get("Content-Type") == "" {
		t.Errorf("the operation's headers did not go up: %v", req.Header)
	}
}
