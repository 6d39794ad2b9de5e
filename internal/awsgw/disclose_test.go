package awsgw

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/gateway"
	"github.com/airlock-dev/airlock/internal/gateway/gatewaytest"
)

// Durable before disclosure (DESIGN.md, "Fail closed"): a read travels
// upstream while its record is written, and no byte of its answer reaches
// the client until the record is durable; a failed record refuses the call
// and discards the answer. A write is not forwarded before its record is
// durable. These run against versitygw, with a recorder that stalls on
// demand (gatewaytest.Stall).

// answeredRT tells when the upstream has answered a request.
type answeredRT struct {
	rt       http.RoundTripper
	answered chan string // "METHOD path" of each request the upstream answered
}

func (a *answeredRT) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := a.rt.RoundTrip(r)
	if err == nil {
		a.answered <- r.Method + " " + r.URL.Path
	}
	return resp, err
}

func newDiscloseEnv(t *testing.T) (*env, *answeredRT) {
	t.Helper()
	url := startVersity(t)
	up := &answeredRT{rt: UpstreamTransport(), answered: make(chan string, 16)}
	e := newEnv(t, func(o *Options) {
		o.Targets[0].Endpoint = url
		o.Transport = up
	})
	return e, up
}

// quiet is how long a client waits to see that no byte arrives: the
// upstream has already answered by then, so a gateway that passed the
// answer on would do so within microseconds.
const quiet = 300 * time.Millisecond

// sendRaw writes req on a new connection to the gateway.
func (e *env) sendRaw(req *http.Request) net.Conn {
	e.t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(e.srv.URL, "http://"))
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { conn.Close() })
	if err := req.Write(conn); err != nil {
		e.t.Fatal(err)
	}
	return conn
}

// nothingYet asserts that not one byte of a response arrives on conn
// within quiet.
func nothingYet(t *testing.T, conn net.Conn, what string) {
	t.Helper()
	_ = conn.SetReadDeadline(time.Now().Add(quiet))
	var b [1]byte
	n, err := conn.Read(b[:])
	var ne net.Error
	if n != 0 || !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("%s: the client read %d byte(s) (%q, err %v) before the record was durable", what, n, b[:n], err)
	}
	_ = conn.SetReadDeadline(time.Time{})
}

func readResponse(t *testing.T, conn net.Conn, req *http.Request) (*http.Response, []byte) {
	t.Helper()
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), req)
	if err != nil {
		t.Fatalf("reading the response: %v", err)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading the body: %v", err)
	}
	return resp, b
}

func waitAnswered(t *testing.T, up *answeredRT, want string) {
	t.Helper()
	select {
	case got := <-up.answered:
		if got != want {
			t.Fatalf("upstream answered %q, want %q", got, want)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("the upstream was not contacted while the record was stalled (%s): the read was not forwarded in parallel", want)
	}
}

func waitHeld(t *testing.T, st *gatewaytest.Stall) gateway.Call {
	t.Helper()
	select {
	case c := <-st.Held():
		return c
	case <-time.After(10 * time.Second):
		t.Fatal("no request record was held")
	}
	return gateway.Call{}
}

// stalledRead sends a read while request records stall, and returns once
// its record is held, the upstream has answered, and the client has seen
// nothing of the answer.
func stalledRead(t *testing.T, e *env, up *answeredRT, g *gateway.Grant, method, path, upPath string) (*gatewaytest.Stall, *http.Request, net.Conn, gateway.Call) {
	t.Helper()
	st := e.auth.Stall()
	t.Cleanup(e.auth.Unstall)
	req := e.signed(g, method, path, nil)
	conn := e.sendRaw(req)
	held := waitHeld(t, st)
	waitAnswered(t, up, method+" "+upPath)
	nothingYet(t, conn, method+" "+path)
	return st, req, conn, held
}

func TestReadHeldUntilDurable(t *testing.T) {
	e, up := newDiscloseEnv(t)
	g := e.grant("s3:GetObject,s3:ListBucket arn:aws:s3:::logs/*")
	for _, tc := range []struct {
		name, method, path, upPath, op, want string
	}{
		{"GetObject", "GET", "/logs/secret.txt", "/logs/secret.txt", "GetObject", "top secret"},
		{"HeadObject", "HEAD", "/logs/secret.txt", "/logs/secret.txt", "HeadObject", ""},
		{"ListObjectsV2", "GET", "/logs?list-type=2&prefix=", "/logs", "ListObjectsV2", "<Key>secret.txt</Key>"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, req, conn, held := stalledRead(t, e, up, g, tc.method, tc.path, tc.upPath)
			if held.Params["operation"] != tc.op {
				t.Fatalf("held record is for %q, want %s", held.Params["operation"], tc.op)
			}
			if n := len(e.requests(g)); n != 0 && e.requests(g)[n-1].Params["request_id"] == held.Params["request_id"] {
				t.Fatal("the held request is already in the log")
			}
			st.Release(nil)
			resp, body := readResponse(t, conn, req)
			if resp.StatusCode != http.StatusOK || !bytes.Contains(body, []byte(tc.want)) {
				t.Fatalf("after the record: %d %q", resp.StatusCode, body)
			}
			if tc.method == "HEAD" && resp.ContentLength != int64(len("top secret")) {
				t.Fatalf("HEAD Content-Length %d", resp.ContentLength)
			}
			reqs := e.requests(g)
			if last := reqs[len(reqs)-1]; last.Params["request_id"] != held.Params["request_id"] || !last.Allowed {
				t.Fatalf("last request record %+v, want the held one", last)
			}
		})
	}
	if n := len(e.results(g, 3)); n != 3 {
		t.Fatalf("%d results", n)
	}
}

func TestReadRefusedWhenRecordFails(t *testing.T) {
	e, up := newDiscloseEnv(t)
	g := e.grant("s3:GetObject,s3:ListBucket arn:aws:s3:::logs/*")
	for _, tc := range []struct{ name, method, path, upPath string }{
		{"GetObject", "GET", "/logs/secret.txt", "/logs/secret.txt"},
		{"HeadObject", "HEAD", "/logs/secret.txt", "/logs/secret.txt"},
		{"ListObjectsV2", "GET", "/logs?list-type=2", "/logs"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, req, conn, held := stalledRead(t, e, up, g, tc.method, tc.path, tc.upPath)
			st.Release(errors.New("journal: disk on fire"))
			resp, body := readResponse(t, conn, req)
			if resp.StatusCode != http.StatusServiceUnavailable {
				t.Fatalf("status %d, want 503 (%q)", resp.StatusCode, body)
			}
			if tc.method == "GET" {
				if e := parseErr(t, body); e.Code != "ServiceUnavailable" || !strings.Contains(e.Message, "could not record") {
					t.Fatalf("error %+v", e)
				}
			}
			if bytes.Contains(body, []byte("top secret")) || bytes.Contains(body, []byte("secret.txt</Key>")) {
				t.Fatalf("the refusal discloses the upstream's answer: %q", body)
			}
			for _, h := range []string{"Etag", "Last-Modified"} {
				if v := resp.Header.Get(h); v != "" {
					t.Fatalf("the refusal carries the upstream's %s: %q", h, v)
				}
			}
			for _, c := range e.auth.Calls(g.ID) {
				if c.Params["request_id"] == held.Params["request_id"] {
					t.Fatalf("the failed call left a record: %+v", c)
				}
			}
		})
	}
	if !strings.Contains(e.logText(), "withheld its answer") {
		t.Errorf("the failure was not logged: %s", e.logText())
	}
}

func TestWriteNotForwardedBeforeDurable(t *testing.T) {
	e, up := newDiscloseEnv(t)
	g := e.grant("s3:PutObject arn:aws:s3:::logs/*")
	st := e.auth.Stall()
	req := e.signed(g, "PUT", "/logs/new.txt", []byte("hello"))
	conn := e.sendRaw(req)
	waitHeld(t, st)
	select {
	case got := <-up.answered:
		t.Fatalf("a write reached the upstream (%s) before its record was durable", got)
	case <-time.After(quiet):
	}
	nothingYet(t, conn, "PutObject")
	st.Release(nil)
	waitAnswered(t, up, "PUT /logs/new.txt")
	resp, body := readResponse(t, conn, req)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("PutObject after the record: %d %q", resp.StatusCode, body)
	}
	e.auth.Unstall()
}
