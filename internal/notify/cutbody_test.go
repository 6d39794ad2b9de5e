package notify_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"testing"
	"time"
)

// TestCutShortBodyIsNotTooLarge: a request whose body ends before its
// Content-Length (the client went away) is answered 400 and recorded as
// nothing. Before, every read error was refused and logged as
// body_too_large (413), so an integration.refused entry claimed an
// oversized request that never was.
func TestCutShortBodyIsNotTooLarge(t *testing.T) {
	f := newFakeSlack(t)
	t.Setenv("TEST_SLACK_WEBHOOK", f.URL+"/incoming")
	t.Setenv("TEST_SLACK_SECRET", signingSecret)
	t.Setenv("HOOK_DECIDE_SECRET", "a-webhook-secret-of-enough-length-0123")
	w := newWorld(t, "notify:\n  slack: {webhook_url_env: TEST_SLACK_WEBHOOK, signing_secret_env: TEST_SLACK_SECRET}\n"+
		"  webhooks:\n    - url: "+f.URL+"/hook\n      secret_env: HOOK_DECIDE_SECRET\n      decisions: true\n")
	u, err := url.Parse(w.api)
	must(t, err)
	for _, path := range []string{"/v1/integrations/slack/actions", "/v1/integrations/webhook/actions"} {
		c, err := net.DialTimeout("tcp", u.Host, 10*time.Second)
		must(t, err)
		_ = c.SetDeadline(time.Now().Add(20 * time.Second))
		fmt.Fprintf(c, "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"cut\":", path, u.Host)
		must(t, c.(*net.TCPConn).CloseWrite())
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		must(t, err)
		resp.Body.Close()
		c.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("%s, body cut short: status %d, want 400", path, resp.StatusCode)
		}
	}
	for _, e := range w.entries("integration.refused") {
		var d struct {
			Data map[string]any `json:"data"`
		}
		must(t, json.Unmarshal(e.Data, &d))
		t.Errorf("a cut-short request was recorded as refused: %v", d.Data)
	}
}
