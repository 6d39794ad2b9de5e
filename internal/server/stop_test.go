package server

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/config"
	"github.com/airlock-dev/airlock/internal/httpapi"
	"github.com/airlock-dev/airlock/internal/model"
	"github.com/airlock-dev/airlock/internal/testenv"
)

// TestStopIsBounded: SIGTERM (Run's context ending) stops airlock serve
// within StopGrace and the cut whatever its clients hold open: long polls
// on a pending grant, over the API and /mcp (a minute, which held the
// API's Shutdown to its 10 s bound, after which the gateways got 5 s more
// each), a client that sent half a request's headers to the API and one
// to the AWS gateway, and a request whose body never comes. The long
// polls are answered at once (the API's with a 503, /mcp's with the grant
// still pending), Run returns no error, and the records of the calls that
// completed are in the log, which verifies after the restart.
func TestStopIsBounded(t *testing.T) {
	t.Setenv("AWS_PROD_ACCESS_KEY_ID", "AKIDEXAMPLE")
	t.Setenv("AWS_PROD_SECRET_ACCESS_KEY", "upstream-secret")
	cfg, botKey, _ := auditConfigKeys(t, "")
	// Longer reads wait for a person: a grant to long-poll on.
	if err := os.WriteFile(filepath.Join(filepath.Dir(cfg.Path), "policies", "human.cedar"), []byte(`@id("longer-reads-need-a-person")
permit (principal in Group::"sre-team", action == Action::"s3:GetObject", resource == Target::"aws-prod")
when { context.resource like "arn:aws:s3:::logs/app/*" };
`), 0o644); err != nil {
		t.Fatal(err)
	}
	apiAddr, awsAddr := testenv.FreeAddr(t), testenv.FreeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	type ended struct {
		err error
		at  time.Time
	}
	ran := make(chan ended, 1)
	var logs testenv.LockedBuffer
	running := make(chan *Server, 1)
	testRunning = func(s *Server) { running <- s }
	t.Cleanup(func() { testRunning = nil })
	go func() {
		err := Run(ctx, cfg.Path, config.Overrides{ListenAPI: apiAddr, ListenAWS: awsAddr}, slog.New(slog.NewTextHandler(&logs, nil)))
		ran <- ended{err, time.Now()}
	}()
	base := "http://" + apiAddr
	var srv *Server
	select {
	case srv = <-running:
	case r := <-ran:
		t.Fatalf("Run: %v\n%s", r.err, logs.String())
	}
	up := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(base + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(up) {
			t.Fatalf("the server did not come up: %v\n%s", err, logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	call := func(method, path string, body any) (int, []byte) {
		t.Helper()
		b, _ := json.Marshal(body)
		req, _ := http.NewRequest(method, base+path, bytes.NewReader(b))
		req.Header.Set("Authorization", "Bearer "+botKey)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		out, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, out
	}
	var ids []string
	for _, dur := range []string{"10m", "30m"} { // active, pending
		st, body := call("POST", "/v1/grants", map[string]any{"target": "aws-prod",
			"scope": []string{"s3:GetObject arn:aws:s3:::logs/app/*"}, "duration": dur, "reason": "stop test"})
		var g httpapi.GrantResponse
		if st != http.StatusCreated || json.Unmarshal(body, &g) != nil {
			t.Fatalf("request: %d %s", st, body)
		}
		ids = append(ids, g.Grant.ID)
	}
	active, pending := ids[0], ids[1]

	// The long polls: the API's, and /mcp's grant_status, which makes
	// the API's in process.
	polled := make(chan string, 2)
	longPoll := func(method, path, body string) {
		req, _ := http.NewRequest(method, base+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+botKey)
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Accept", "application/json, text/event-stream")
			req.Header.Set("MCP-Protocol-Version", "2025-03-26")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			polled <- path + ": " + err.Error()
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		polled <- fmt.Sprintf("%s: %d %s", path, resp.StatusCode, b)
	}
	go longPoll("GET", "/v1/grants/"+pending+"?wait=60s", "")
	go longPoll("POST", "/mcp", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"grant_status","arguments":{"grant_id":"`+pending+`","wait_seconds":60}}}`)
	// Clients that stall: half a request line, and a body that never
	// comes.
	stall := func(addr, sent string) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		if _, err := io.WriteString(c, sent); err != nil {
			t.Fatal(err)
		}
	}
	stall(apiAddr, "GET /healthz HTTP/1.1\r\nHost: a\r\n")
	stall(awsAddr, "GET /logs/app/a.log HTTP/1.1\r\nHost: a\r\n")
	stall(apiAddr, "POST /v1/grants HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer "+botKey+"\r\nContent-Length: 1000\r\n\r\n{\"target\":")
	// Until the long poll waits (the waits are counted).
	for deadline := time.Now().Add(10 * time.Second); ; {
		if _, n := srv.Service.OpenWaits(); n == 2 {
			break
		}
		select {
		case got := <-polled:
			t.Fatalf("a long poll returned before the stop: %s", got)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("the long polls did not start")
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond) // the stalled requests are read

	t0 := time.Now()
	cancel()
	for range 2 {
		select {
		case got := <-polled:
			// The API's: a 503 saying why. /mcp's: the grant still
			// pending, as a result (not an error, which would hide the
			// grant from the agent).
			api := strings.HasPrefix(got, "/v1/") && strings.Contains(got, ": 503 ") && strings.Contains(got, "stopping")
			mcp := strings.HasPrefix(got, "/mcp: 200 ") && strings.Contains(got, `"status":"pending"`) && !strings.Contains(got, `"isError":true`)
			if !api && !mcp {
				t.Errorf("long poll answered %.400s", got)
			}
			if d := time.Since(t0); d > 2*time.Second {
				t.Errorf("long poll answered %v after the stop began: %.100s", d, got)
			}
		case <-time.After(StopGrace + 2*stopCut):
			t.Errorf("a long poll was not answered %v after the stop began", StopGrace+2*stopCut)
		}
	}
	// The bound, with slack for a loaded machine and the race detector.
	bound := StopGrace + 2*stopCut + 5*time.Second
	select {
	case r := <-ran:
		d := r.at.Sub(t0)
		if r.err != nil {
			t.Errorf("Run: %v", r.err)
		}
		if d > bound {
			t.Errorf("the stop took %v, bound %v", d, bound)
		}
		t.Logf("stopped in %v", d.Round(time.Millisecond))
	case <-time.After(bound + 30*time.Second):
		t.Fatalf("Run had not returned %v after the stop began\n%s", bound+30*time.Second, logs.String())
	}

	s := openServer(t, cfg)
	defer s.Close()
	rep, err := s.Verify(context.Background())
	if err != nil {
		t.Fatalf("the log does not verify after the stop: %v", err)
	}
	for _, id := range []string{active, pending} {
		g, err := s.Service.Get(context.Background(), alice, id)
		if err != nil {
			t.Errorf("grant %s lost in the stop: %v", id, err)
		} else if want := map[string]model.GrantStatus{active: model.Active, pending: model.Pending}[id]; g.Status != want {
			t.Errorf("grant %s is %s after the restart, want %s", id, g.Status, want)
		}
	}
	if rep.Entries < 2 {
		t.Errorf("the log holds %d entries after the stop, want the two requests'", rep.Entries)
	}
}
