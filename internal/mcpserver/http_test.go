package mcpserver_test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/airlock-dev/airlock/internal/client"
	"github.com/airlock-dev/airlock/internal/httpapi"
	"github.com/airlock-dev/airlock/internal/mcpserver"
	"github.com/airlock-dev/airlock/internal/server"
	"github.com/airlock-dev/airlock/internal/testenv"
)

// httpFixture is a control plane with an agent and a person and no
// upstream: enough for the HTTP transport's own checks.
type httpFixture struct {
	url           string
	srv           *server.Server
	botKey, alice string
	logs          *lockedBuffer
}

func newHTTPFixture(t *testing.T, extra string) *httpFixture {
	t.Helper()
	// The targets are never reached: these tests stop at the transport.
	t.Setenv("MCPTEST_AWS_KEY", "AKIAEXAMPLE")
	t.Setenv("MCPTEST_AWS_SECRET", "not-a-real-secret")
	srv, botKey, aliceKey, logs := openServer(t, "http://127.0.0.1:9", "postgres://nobody@127.0.0.1:9/orders?sslmode=disable", extra)
	hs := httptest.NewServer(srv.Handler)
	t.Cleanup(func() { hs.Close(); srv.Close() })
	return &httpFixture{url: hs.URL, srv: srv, botKey: botKey, alice: aliceKey, logs: logs}
}

// connect opens an MCP client session on /mcp with key.
func (f *httpFixture) connect(t *testing.T, key string) *mcp.ClientSession {
	t.Helper()
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "t", Version: "1"}, nil).Connect(context.Background(),
		&mcp.StreamableClientTransport{Endpoint: f.url + "/mcp", HTTPClient: &http.Client{Transport: bearer{key}}, DisableStandaloneSSE: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cs.Close() })
	return cs
}

const initBody = `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}`

func (f *httpFixture) post(t *testing.T, key, body string, hdr map[string]string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest("POST", f.url+"/mcp", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	hc := http.DefaultClient
	if ip := hdr["from"]; ip != "" {
		req.Header.Del("from")
		d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
		hc = &http.Client{Transport: &http.Transport{DialContext: d.DialContext}}
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// TestHTTPRefusesCrossOrigin: the MCP transport specification requires
// /mcp to validate Origin. A request a browser sends from another site's
// page is refused with 403, even with a valid key, and nothing is served;
// the same request from the server's own origin, or from a client that is
// no browser (no Origin), is served. Before, every origin was served.
func TestHTTPRefusesCrossOrigin(t *testing.T) {
	f := newHTTPFixture(t, "")
	self := f.url
	for _, c := range []struct {
		name string
		hdr  map[string]string
		want int
	}{
		{"another site's Origin", map[string]string{"Origin": "http://evil.example"}, http.StatusForbidden},
		{"another port of the host", map[string]string{"Origin": strings.TrimSuffix(self, self[strings.LastIndex(self, ":"):]) + ":1"}, http.StatusForbidden},
		{"a cross-site fetch", map[string]string{"Sec-Fetch-Site": "cross-site", "Origin": "http://evil.example"}, http.StatusForbidden},
		{"Origin null (a sandboxed page)", map[string]string{"Origin": "null"}, http.StatusForbidden},
		{"the server's own origin", map[string]string{"Origin": self}, http.StatusOK},
		{"no Origin (not a browser)", nil, http.StatusOK},
	} {
		for _, key := range []string{f.botKey, f.alice} {
			resp, body := f.post(t, key, initBody, c.hdr)
			if resp.StatusCode != c.want {
				t.Errorf("%s: status %d, want %d: %.200s", c.name, resp.StatusCode, c.want, body)
			}
			if c.want == http.StatusForbidden && (strings.Contains(body, "serverInfo") || !strings.Contains(body, "cross-origin")) {
				t.Errorf("%s: refused with %.200s", c.name, body)
			}
		}
	}
	// Without a key, another site's request is refused before the key
	// is looked at.
	if resp, body := f.post(t, "", initBody, map[string]string{"Origin": "http://evil.example"}); resp.StatusCode != http.StatusForbidden {
		t.Errorf("cross-origin without a key: %d %.200s", resp.StatusCode, body)
	}
}

// TestHTTPPassesOnTheAPIsRefusal: under identity_binding: refuse, a
// second instance of the agent (another address) is refused by the API;
// /mcp answers with the API's 403 and its reason. Before, it answered
// "500 internal error" and logged an error, as if the server had failed.
func TestHTTPPassesOnTheAPIsRefusal(t *testing.T) {
	f := newHTTPFixture(t, "identity_binding: refuse\n")
	if resp, body := f.post(t, f.botKey, initBody, nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("first instance: %d %.200s", resp.StatusCode, body)
	}
	resp, body := f.post(t, f.botKey, initBody, map[string]string{"from": "127.0.0.2"})
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, `"code":"permission_denied"`) || !strings.Contains(body, "identity_binding is refuse") {
		t.Fatalf("second instance: %d %.300s", resp.StatusCode, body)
	}
	if strings.Contains(f.logs.String(), "level=ERROR") {
		t.Fatalf("a refusal was logged as an error:\n%s", f.logs.String())
	}
}

// TestHTTPStreamsEnd: a subscriptions/listen request (protocol
// 2026-07-28) opens an event stream that this server never sends on; it
// is closed when the request's time is up, as every /mcp request is.
// Before, it stayed open for as long as the client held it.
func TestHTTPStreamsEnd(t *testing.T) {
	f := newHTTPFixture(t, "")
	// Time enough for the acknowledgement under the race detector on a
	// loaded machine (300 ms was not: the stream ended empty).
	hs := httptest.NewServer(mcpserver.Handler(f.srv.Handler, mcpserver.HTTPOptions{MaxRequest: 3 * time.Second}))
	defer hs.Close()
	// The client gives up long after the server should have.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "POST", hs.URL, strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"subscriptions/listen",`+
		`"params":{"notifications":{"toolsListChanged":true,"resourcesListChanged":true},"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28",`+
		`"io.modelcontextprotocol/clientCapabilities":{},"io.modelcontextprotocol/clientInfo":{"name":"t","version":"1"}}}}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("MCP-Protocol-Version", "2026-07-28")
	req.Header.Set("Mcp-Method", "subscriptions/listen")
	req.Header.Set("Authorization", "Bearer "+f.botKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("listen: %d %v", resp.StatusCode, resp.Header)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("the stream was not closed by the server: %v (read %q)", err, b)
	}
	if !strings.Contains(string(b), "subscriptions/acknowledged") {
		t.Fatalf("stream: %q", b)
	}
}

// TestHTTPNamesOnlyItsTools: over HTTP there is no run_with_grant, so
// neither the server's instructions nor an active grant's note may send
// the agent to it. Before, both told it to call run_with_grant, which
// failed as an unknown tool.
func TestHTTPNamesOnlyItsTools(t *testing.T) {
	f := newHTTPFixture(t, "")
	ctx := context.Background()
	cs := f.connect(t, f.botKey)
	offered := map[string]bool{}
	for _, name := range toolNames(t, cs) {
		offered[name] = true
	}
	texts := map[string]string{"instructions": cs.InitializeResult().Instructions}
	for _, c := range []struct{ target, allow string }{
		{"aws-prod", "s3:GetObject arn:aws:s3:::logs/app/*"},
		{"orders-db", "pg:select orders.public.customers"},
	} {
		res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "request_access", Arguments: map[string]any{
			"target": c.target, "allow": []string{c.allow}, "duration": "5m", "reason": "INC-7 triage"}})
		if err != nil || res.IsError {
			t.Fatalf("request_access %s: %v %+v", c.target, err, res)
		}
		g, _ := res.StructuredContent.(map[string]any)
		if g["status"] != "active" {
			t.Fatalf("request_access %s: %+v", c.target, g)
		}
		texts[c.target+" note"] = fmt.Sprint(g["note"])
	}
	for what, text := range texts {
		if text == "" || text == "<nil>" {
			t.Errorf("%s is empty", what)
		}
		for _, tool := range []string{"run_with_grant", "sql_query", "end_grant", "request_access", "list_targets"} {
			if strings.Contains(text, tool) && !offered[tool] {
				t.Errorf("%s names %s, which this server does not offer: %s", what, tool, text)
			}
		}
	}
}

// TestHTTPBoundsBatches: a JSON-RPC batch (protocol 2025-03-26) runs all
// its calls at once, so one 2 MiB request could start some 20,000 tool
// calls (each sql_query a gateway session and a credential issue). A
// batch of more than 16 is refused before any of it runs; a small one is
// served. Before, every batch was served whole.
func TestHTTPBoundsBatches(t *testing.T) {
	f := newHTTPFixture(t, "")
	batch := func(n int) string {
		msgs := make([]string, n)
		for i := range msgs {
			msgs[i] = fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"list_targets","arguments":{}}}`, i+1)
		}
		return "[" + strings.Join(msgs, ",") + "]"
	}
	hdr := map[string]string{"MCP-Protocol-Version": "2025-03-26"}
	if resp, body := f.post(t, f.botKey, batch(16), hdr); resp.StatusCode != http.StatusOK || strings.Count(body, `"jsonrpc"`) != 16 {
		t.Fatalf("a batch of 16: %d %.300s", resp.StatusCode, body)
	}
	before := strings.Count(f.logs.String(), "tool=list_targets")
	if before != 16 {
		t.Fatalf("%d list_targets calls logged, want 16", before)
	}
	resp, body := f.post(t, f.botKey, " \n"+batch(17), hdr)
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "at most 16") || strings.Contains(body, "aws-prod") {
		t.Fatalf("a batch of 17: %d %.300s", resp.StatusCode, body)
	}
	// As MCP asks, and as the SDK's own refusals: no "id": null.
	var refusal map[string]any
	if json.Unmarshal([]byte(body), &refusal) != nil || refusal["error"] == nil || refusal["jsonrpc"] != "2.0" {
		t.Fatalf("a batch of 17: %.300s", body)
	}
	if _, ok := refusal["id"]; ok {
		t.Errorf("a batch of 17 refused with an id: %.300s", body)
	}
	if after := strings.Count(f.logs.String(), "tool=list_targets"); after != before {
		t.Fatalf("%d calls of a refused batch ran", after-before)
	}
	// The body bound still answers 413.
	if resp, body := f.post(t, f.botKey, `{"jsonrpc":"2.0","id":1,"method":"ping","params":{"x":"`+strings.Repeat("x", 3<<20)+`"}}`, nil); resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("a 3 MiB body: %d %.300s", resp.StatusCode, body)
	}
}

// TestHTTPGrantIDIsOneSegment: a grant_id of "." or ".." is resolved away
// in the API's URL (/v1/grants/. is /v1/grants), so grant_status(".")
// answered with an empty grant as if it existed, and the resource read
// listed another endpoint. Every tool now refuses such an id.
func TestHTTPGrantIDIsOneSegment(t *testing.T) {
	f := newHTTPFixture(t, "")
	ctx := context.Background()
	cs := f.connect(t, f.botKey)
	for _, id := range []string{".", ".."} {
		for _, c := range []struct {
			tool string
			args map[string]any
		}{
			{"grant_status", map[string]any{"grant_id": id}},
			{"grant_status", map[string]any{"grant_id": id, "wait_seconds": 1}},
			{"end_grant", map[string]any{"grant_id": id}},
			{"sql_query", map[string]any{"grant_id": id, "statement": "select 1"}},
		} {
			res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: c.tool, Arguments: c.args})
			if err != nil {
				t.Fatal(err)
			}
			text := fmt.Sprint(res.Content[0].(*mcp.TextContent).Text)
			if !res.IsError || !strings.Contains(text, "not a grant id") {
				t.Errorf("%s %v: %+v %s", c.tool, c.args, res, text)
			}
		}
		if _, err := cs.ReadResource(ctx, &mcp.ReadResourceParams{URI: "airlock://grants/" + id}); err == nil || !strings.Contains(err.Error(), "not found") {
			t.Errorf("resource %q: %v", id, err)
		}
	}
}

// TestHTTPActsOnlyAsTheKeysIdentity: /mcp is stateless (no Mcp-Session-Id
// to take over), and each request acts as its own key's identity: another
// agent cannot read, end or use the bot's grant through any tool or the
// grant resource, and a person's key gets only the read-only tools.
func TestHTTPActsOnlyAsTheKeysIdentity(t *testing.T) {
	f := newHTTPFixture(t, "")
	ctx := context.Background()
	resp, _ := f.post(t, f.botKey, initBody, nil)
	if id := resp.Header.Get("Mcp-Session-Id"); resp.StatusCode != http.StatusOK || id != "" {
		t.Fatalf("initialize: %d, session id %q", resp.StatusCode, id)
	}
	other, err := client.New(f.url, f.alice).AddAgent(ctx, httpapi.AgentInput{Name: "other-bot", Owner: "sre-leads"})
	if err != nil {
		t.Fatal(err)
	}
	bot := f.connect(t, f.botKey)
	res, err := bot.CallTool(ctx, &mcp.CallToolParams{Name: "request_access", Arguments: map[string]any{
		"target": "orders-db", "allow": []string{"pg:select orders.public.customers"}, "duration": "5m", "reason": "INC-9"}})
	if err != nil || res.IsError {
		t.Fatalf("request_access: %v %+v", err, res)
	}
	id := fmt.Sprint(res.StructuredContent.(map[string]any)["grant_id"])

	cs := f.connect(t, other.Key)
	for _, c := range []struct {
		tool string
		args map[string]any
	}{
		{"grant_status", map[string]any{"grant_id": id}},
		{"end_grant", map[string]any{"grant_id": id}},
		{"sql_query", map[string]any{"grant_id": id, "statement": "select 1"}},
	} {
		res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: c.tool, Arguments: c.args})
		if err != nil || !res.IsError || !strings.Contains(res.Content[0].(*mcp.TextContent).Text, "no grant") {
			t.Errorf("another agent's %s on the bot's grant: %v %+v", c.tool, err, res)
		}
	}
	if _, err := cs.ReadResource(ctx, &mcp.ReadResourceParams{URI: "airlock://grants/" + id}); err == nil {
		t.Error("another agent read the bot's grant resource")
	}
	res, err = bot.CallTool(ctx, &mcp.CallToolParams{Name: "grant_status", Arguments: map[string]any{"grant_id": id}})
	if err != nil || res.IsError || res.StructuredContent.(map[string]any)["status"] != "active" {
		t.Fatalf("the bot's grant after another agent's calls: %v %+v", err, res)
	}

	person := f.connect(t, f.alice)
	if got := strings.Join(toolNames(t, person), ","); got != "grant_status,list_targets" {
		t.Fatalf("a person's tools over HTTP: %s", got)
	}
	for _, tool := range []string{"request_access", "end_grant", "sql_query"} {
		if res, err := person.CallTool(ctx, &mcp.CallToolParams{Name: tool, Arguments: map[string]any{"grant_id": id}}); err == nil && !res.IsError {
			t.Errorf("a person called %s: %+v", tool, res)
		}
	}
}

// TestHTTPServedBehindAProxyOnTheHost: replicas listen on loopback behind
// a balancer or TLS proxy on the same host, which passes on the client's
// Host (airlock.example.com). The SDK's DNS rebinding check refused every
// such /mcp request with 403 "invalid Host header", while /v1 beside it
// served the same key. The key is what protects /mcp: a page rebound to
// this address (its own Host and Origin, no key) still gets nothing.
func TestHTTPServedBehindAProxyOnTheHost(t *testing.T) {
	f := newHTTPFixture(t, "")
	post := func(key, host, origin string) (int, string) {
		req, _ := http.NewRequest("POST", f.url+"/mcp", strings.NewReader(initBody))
		req.Host = host
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		if key != "" {
			req.Header.Set("Authorization", "Bearer "+key)
		}
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for _, host := range []string{"airlock.example.com", "airlock.example.com:443", "10.1.2.3:8700"} {
		if code, body := post(f.botKey, host, ""); code != http.StatusOK || !strings.Contains(body, "serverInfo") {
			t.Errorf("Host %s through a proxy: %d %.200s", host, code, body)
		}
		if code, body := post(f.botKey, host, "https://"+host); code != http.StatusOK {
			t.Errorf("Host %s from its own origin: %d %.200s", host, code, body)
		}
	}
	// A rebound page: Host and Origin its own, so same-origin, and no key.
	if code, body := post("", "evil.example:8700", "http://evil.example:8700"); code != http.StatusUnauthorized || strings.Contains(body, "serverInfo") {
		t.Errorf("a rebound page without a key: %d %.200s", code, body)
	}
}

// TestHTTPRefusesIDsItCannotEcho: as on stdio, the SDK answered an id of
// 1.5 as 1 and 1e23 as -9223372036854775808, after running the call. Such
// a request, alone or in a batch, is now refused with 400 and a JSON-RPC
// invalid request carrying the id as sent, and does not run.
func TestHTTPRefusesIDsItCannotEcho(t *testing.T) {
	f := newHTTPFixture(t, "")
	call := func(id string) string {
		return `{"jsonrpc":"2.0","id":` + id + `,"method":"tools/call","params":{"name":"list_targets","arguments":{}}}`
	}
	hdr := map[string]string{"MCP-Protocol-Version": "2025-03-26"}
	for _, c := range []struct{ body, id string }{
		{call("1.5"), "1.5"},
		{call("9007199254740993"), "9007199254740993"},
		{call("99999999999999999999999"), "99999999999999999999999"},
		{call("null"), ""},
		{"[" + call("7") + "," + call("1.5") + "]", ""},
	} {
		resp, body := f.post(t, f.botKey, c.body, hdr)
		var r rpcReply
		if resp.StatusCode != http.StatusBadRequest || json.Unmarshal([]byte(body), &r) != nil || r.Error == nil || r.Error.Code != -32600 || string(r.ID) != c.id {
			t.Errorf("%.80s: %d %.300s, want 400 and -32600 with id %q", c.body, resp.StatusCode, body, c.id)
		}
	}
	if n := strings.Count(f.logs.String(), "tool=list_targets"); n != 0 {
		t.Errorf("%d refused calls ran", n)
	}
	if resp, body := f.post(t, f.botKey, call("9007199254740991"), hdr); resp.StatusCode != http.StatusOK || !strings.Contains(body, `"id":9007199254740991,`) {
		t.Errorf("id 2^53-1: %d %.200s", resp.StatusCode, body)
	}
}

// TestHTTPRefusesTrailingData: the batch bound and the id check read the
// body with encoding/json, which refuses a value followed by anything but
// whitespace; the SDK's decoder reads the first value and ignores the
// rest. So "[17 calls]x" ran all 17 (any number, up to the 2 MiB body),
// and {"id":1.5,...}x ran and was answered under id 1. Such a body is now
// refused whole as a JSON-RPC parse error, nothing run. Found by
// FuzzRequestIDAgreesWithSDK.
func TestHTTPRefusesTrailingData(t *testing.T) {
	f := newHTTPFixture(t, "")
	call := func(id int) string {
		return fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"list_targets","arguments":{}}}`, id)
	}
	var batch []string
	for i := range 17 {
		batch = append(batch, call(i+1))
	}
	hdr := map[string]string{"MCP-Protocol-Version": "2025-03-26"}
	for _, body := range []string{
		"[" + strings.Join(batch, ",") + "]x",
		strings.Replace(call(0), `"id":0`, `"id":1.5`, 1) + " ]",
		call(3) + call(4),
	} {
		resp, got := f.post(t, f.botKey, body, hdr)
		var r rpcReply
		if resp.StatusCode != http.StatusBadRequest || json.Unmarshal([]byte(got), &r) != nil || r.Error == nil || r.Error.Code != -32700 || r.ID != nil {
			t.Errorf("%.60s...%s: %d %.300s, want 400 and a parse error without an id", body, body[len(body)-4:], resp.StatusCode, got)
		}
	}
	if n := strings.Count(f.logs.String(), "tool=list_targets"); n != 0 {
		t.Errorf("%d calls of refused bodies ran", n)
	}
	// Whitespace after the value is JSON's own, and still served.
	if resp, got := f.post(t, f.botKey, call(5)+"\r\n ", hdr); resp.StatusCode != http.StatusOK || !strings.Contains(got, `"id":5,`) {
		t.Errorf("a call with trailing whitespace: %d %.300s", resp.StatusCode, got)
	}
}

// TestHTTPLongGrantIDNotLogged: a grant_id far longer than any grant's
// went on to the API and was written whole into the control plane's log
// line for the failed call: one request, one 2 MiB log line. It is now
// refused as no grant id before anything is called, quoted short.
func TestHTTPLongGrantIDNotLogged(t *testing.T) {
	f := newHTTPFixture(t, "")
	long := "g_" + strings.Repeat("x", 1<<20)
	for _, c := range []struct{ tool, more string }{{"grant_status", ""}, {"end_grant", ""}, {"sql_query", `,"statement":"select 1"`}} {
		tool := c.tool
		body := fmt.Sprintf(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":%q,"arguments":{"grant_id":%q%s}}}`, tool, long, c.more)
		resp, out := f.post(t, f.botKey, body, nil)
		if resp.StatusCode != http.StatusOK || !strings.Contains(out, "not a grant id") || len(out) > 4096 {
			t.Errorf("%s: %d %.300s (%d bytes)", tool, resp.StatusCode, out, len(out))
		}
	}
	for _, line := range strings.Split(f.logs.String(), "\n") {
		if len(line) > 4096 || strings.Contains(line, strings.Repeat("x", 100)) {
			t.Errorf("log line of %d bytes: %.200s", len(line), line)
		}
	}
}

// TestHTTPKeepsTheCallersClientCertificate: /mcp calls the API in process
// with the caller's TLS connection, so the client certificate is part of
// the instance as on /v1: under identity_binding: refuse, a second agent
// with the same key and address but another certificate is refused.
// Before, /mcp passed on the address and user agent only, and both were
// one instance.
func TestHTTPKeepsTheCallersClientCertificate(t *testing.T) {
	t.Setenv("MCPTEST_AWS_KEY", "AKIAEXAMPLE")
	t.Setenv("MCPTEST_AWS_SECRET", "not-a-real-secret")
	srv, botKey, _, _ := openServer(t, "http://127.0.0.1:9", "postgres://nobody@127.0.0.1:9/orders?sslmode=disable", "identity_binding: refuse\n")
	hs := httptest.NewUnstartedServer(srv.Handler)
	hs.TLS = &tls.Config{ClientAuth: tls.RequestClientCert}
	hs.StartTLS()
	t.Cleanup(func() { hs.Close(); srv.Close() })
	post := func(cert testenv.ClientCert) (int, string) {
		tr := hs.Client().Transport.(*http.Transport).Clone()
		tr.TLSClientConfig.Certificates = []tls.Certificate{cert.Pair}
		req, _ := http.NewRequest("POST", hs.URL+"/mcp", strings.NewReader(initBody))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		req.Header.Set("Authorization", "Bearer "+botKey)
		resp, err := (&http.Client{Transport: tr, Timeout: 30 * time.Second}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	a, b := testenv.NewClientCert(t, "agent-a"), testenv.NewClientCert(t, "agent-b")
	if st, body := post(a); st != http.StatusOK {
		t.Fatalf("first agent: %d %.200s", st, body)
	}
	if st, body := post(a); st != http.StatusOK {
		t.Fatalf("first agent again: %d %.200s", st, body)
	}
	if st, body := post(b); st != http.StatusForbidden || !strings.Contains(body, "identity_binding is refuse") {
		t.Fatalf("second agent, another certificate: %d %.300s; want the API's 403", st, body)
	}
}
