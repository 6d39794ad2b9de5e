package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/airlock-dev/airlock/internal/authn"
	"github.com/airlock-dev/airlock/internal/config"
	"github.com/airlock-dev/airlock/internal/demo"
	"github.com/airlock-dev/airlock/internal/httpapi"
	"github.com/airlock-dev/airlock/internal/model"
	"github.com/airlock-dev/airlock/internal/server"
)

// testPolicies are the walkthrough's: sre-team agents get app logs
// automatically for up to 15 minutes and all logs for up to an hour with a
// lead's approval; sre-leads approve. Nobody else is permitted anything.
const testPolicies = demo.Policies

const testConfig = `data_dir: ./data
listen:
  api: 127.0.0.1:0
identities:
  - name: log-triage-bot
    kind: agent
    owner: sre-team
    key_sha256: "%s"
  - name: web-bot
    kind: agent
    owner: web-team
    key_sha256: "%s"
  - name: alice
    kind: human
    groups: [sre-leads]
    key_sha256: "%s"
targets:
  - name: aws-prod
    kind: aws
    account: "111122223333"
    region: us-east-1
    endpoint: http://127.0.0.1:7070
    credentials:
      access_key_id_env: AWS_PROD_ACCESS_KEY_ID
      secret_access_key_env: AWS_PROD_SECRET_ACCESS_KEY
policies: ./policies
`

// Statements the policies above treat differently.
const (
	autoScope  = "s3:GetObject,s3:ListBucket arn:aws:s3:::logs/app/*" // auto for <= 15m
	humanScope = "s3:GetObject arn:aws:s3:::logs/*"                   // needs a lead, <= 1h
)

// logBuffer collects the server's slog output; safe for concurrent use.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// env is one running server over a fresh data directory.
type env struct {
	t    *testing.T
	url  string
	http *http.Client
	logs *logBuffer
	srv  *server.Server

	bot, webBot, alice string // API keys
}

func newEnv(t *testing.T) *env {
	t.Helper()
	dir := t.TempDir()
	botKey, botSHA := authn.NewKey()
	webKey, webSHA := authn.NewKey()
	aliceKey, aliceSHA := authn.NewKey()
	if err := os.MkdirAll(filepath.Join(dir, "policies"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "policies", "aws-prod.cedar"), []byte(testPolicies), 0o644); err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(dir, "airlock.yaml")
	if err := os.WriteFile(cfgPath, fmt.Appendf(nil, testConfig, botSHA, webSHA, aliceSHA), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	logs := &logBuffer{}
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	srv, err := server.Open(context.Background(), cfg, logger)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	ts := httptest.NewServer(srv.Handler)
	t.Cleanup(ts.Close)
	return &env{t: t, url: ts.URL, http: ts.Client(), logs: logs, srv: srv, bot: botKey, webBot: webKey, alice: aliceKey}
}

// apiError is the error envelope.
type apiError struct {
	Error struct {
		Code    string `json:"code"`
		Field   string `json:"field"`
		Message string `json:"message"`
	} `json:"error"`
}

// response is one HTTP answer.
type response struct {
	status int
	header http.Header
	body   []byte
}

// errBody decodes the error envelope, failing the test if it is not one.
func (r response) errBody(t *testing.T) apiError {
	t.Helper()
	var e apiError
	if err := json.Unmarshal(r.body, &e); err != nil || e.Error.Code == "" || e.Error.Message == "" {
		t.Fatalf("status %d: body is not a JSON error envelope (%v): %s", r.status, err, r.body)
	}
	return e
}

// decode decodes a success body into v.
func (r response) decode(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("status %d: decoding %T: %v: %s", r.status, v, err, r.body)
	}
}

// do sends a request. body may be nil, a string (sent verbatim) or any
// value (sent as JSON). An empty key sends no Authorization header.
func (e *env) do(method, path, key string, body any) response {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		data, err := json.Marshal(b)
		if err != nil {
			e.t.Fatal(err)
		}
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, e.url+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	return e.send(req)
}

func (e *env) send(req *http.Request) response {
	e.t.Helper()
	resp, err := e.http.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatalf("%s %s: reading body: %v", req.Method, req.URL.Path, err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: data}
}

// request asks for a grant as key and returns it, requiring a 201.
func (e *env) request(key, stmt, duration string) model.Grant {
	e.t.Helper()
	r := e.do("POST", "/v1/grants", key, map[string]any{
		"target": "aws-prod", "scope": []string{stmt}, "duration": duration, "reason": "triage INC-1234",
	})
	if r.status != http.StatusCreated {
		e.t.Fatalf("POST /v1/grants: status %d, want 201: %s", r.status, r.body)
	}
	var out httpapi.GrantResponse
	r.decode(e.t, &out)
	return out.Grant
}

// grants lists every grant as alice.
func (e *env) grants() []model.Grant {
	e.t.Helper()
	r := e.do("GET", "/v1/grants", e.alice, nil)
	if r.status != http.StatusOK {
		e.t.Fatalf("GET /v1/grants: status %d: %s", r.status, r.body)
	}
	var out httpapi.ListResponse
	r.decode(e.t, &out)
	return out.Grants
}

// wantError checks status, code and (when field is not "-") field.
func wantError(t *testing.T, r response, status int, code, field string) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d: %s", r.status, status, r.body)
	}
	e := r.errBody(t)
	if e.Error.Code != code {
		t.Errorf("code %q, want %q (message %q)", e.Error.Code, code, e.Error.Message)
	}
	if field != "-" && e.Error.Field != field {
		t.Errorf("field %q, want %q (message %q)", e.Error.Field, field, e.Error.Message)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q, want application/json", ct)
	}
}
