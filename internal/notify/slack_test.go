package notify_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/airlock-dev/airlock/internal/authn"
	"github.com/airlock-dev/airlock/internal/config"
	"github.com/airlock-dev/airlock/internal/demo"
	"github.com/airlock-dev/airlock/internal/httpapi"
	"github.com/airlock-dev/airlock/internal/model"
	"github.com/airlock-dev/airlock/internal/server"
	"github.com/airlock-dev/airlock/internal/store"
	"github.com/airlock-dev/airlock/internal/store/sqlitestore"
)

// policies: demo's (sre-team agents ask, sre-leads approve), plus one that
// lets leads themselves ask for the audit logs with a lead's approval.
const policies = demo.Policies + `
@id("leads-read-audit")
@approval("human")
permit (principal in Group::"sre-leads", action == Action::"s3:GetObject", resource == Target::"aws-prod")
when { context.resource like "arn:aws:s3:::audit/*" && context.duration_seconds <= 3600 };
`

const cfgText = `data_dir: ./data
identities:
  - {name: log-triage-bot, kind: agent, owner: sre-team, key_sha256: "%s"}
  - {name: alice, kind: human, groups: [sre-leads], key_sha256: "%s", slack_user: U0ALICE}
  - {name: carol, kind: human, groups: [sre-leads], key_sha256: "%s", slack_user: U0CAROL}
targets:
  - name: aws-prod
    kind: aws
    account: "111122223333"
    endpoint: http://127.0.0.1:7070
    credentials: {access_key_id_env: AWS_PROD_ACCESS_KEY_ID, secret_access_key_env: AWS_PROD_SECRET_ACCESS_KEY}
policies: ./policies
%s`

const signingSecret = "8f742231b10e8888abcd99yyyzzz85a5"

// world is a running Airlock (server.Open over a fresh data directory)
// serving its API on a local listener.
type world struct {
	t                 *testing.T
	srv               *server.Server
	api               string
	dir               string
	bot, alice, carol string // API keys
}

func newWorld(t *testing.T, notifyYAML string) *world {
	t.Helper()
	return newWorldWith(t, notifyYAML, "")
}

// newWorldWith is newWorld with extra policies beside the usual ones.
func newWorldWith(t *testing.T, notifyYAML, extraPolicies string) *world {
	t.Helper()
	w, err := openWorld(t, notifyYAML, extraPolicies)
	must(t, err)
	return w
}

// openWorld is newWorldWith, returning server.Open's error.
func openWorld(t *testing.T, notifyYAML, extraPolicies string) (*world, error) {
	t.Helper()
	dir := t.TempDir()
	botKey, botSHA := authn.NewKey()
	aliceKey, aliceSHA := authn.NewKey()
	carolKey, carolSHA := authn.NewKey()
	must(t, os.MkdirAll(filepath.Join(dir, "policies"), 0o755))
	must(t, os.WriteFile(filepath.Join(dir, "policies", "p.cedar"), []byte(policies+extraPolicies), 0o644))
	path := filepath.Join(dir, "airlock.yaml")
	must(t, os.WriteFile(path, fmt.Appendf(nil, cfgText, botSHA, aliceSHA, carolSHA, notifyYAML), 0o600))
	cfg, err := config.Load(path)
	must(t, err)
	t.Setenv("AWS_PROD_ACCESS_KEY_ID", "x")
	t.Setenv("AWS_PROD_SECRET_ACCESS_KEY", "x")
	must(t, cfg.CheckEnv(os.Getenv))
	srv, err := server.Open(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		return nil, err
	}
	closed := false
	t.Cleanup(func() {
		if !closed {
			srv.Close()
		}
	})
	ts := httptest.NewServer(srv.Handler)
	t.Cleanup(ts.Close)
	w := &world{t: t, srv: srv, api: ts.URL, dir: dir, bot: botKey, alice: aliceKey, carol: carolKey}
	return w, nil
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// call makes an API call with key and decodes the answer into out.
func (w *world) call(method, path, key string, body any, out any) int {
	w.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, w.api+path, rd)
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	must(w.t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode < 300 {
		if err := json.Unmarshal(b, out); err != nil {
			w.t.Fatalf("%s %s: %v: %s", method, path, err, b)
		}
	}
	return resp.StatusCode
}

func (w *world) request(key, stmt, reason string) model.Grant {
	w.t.Helper()
	var out httpapi.GrantResponse
	if st := w.call("POST", "/v1/grants", key, map[string]any{"target": "aws-prod", "scope": []string{stmt}, "duration": "30m", "reason": reason}, &out); st != http.StatusCreated {
		w.t.Fatalf("request: status %d", st)
	}
	return out.Grant
}

func (w *world) grant(id string) model.Grant {
	w.t.Helper()
	var out httpapi.GrantResponse
	if st := w.call("GET", "/v1/grants/"+id, w.alice, nil, &out); st != http.StatusOK {
		w.t.Fatalf("get %s: status %d", id, st)
	}
	return out.Grant
}

// entries closes the server and returns the log entries of type typ.
func (w *world) entries(typ string) []store.LogEntry {
	w.t.Helper()
	w.srv.Close()
	st, cleanup, err := sqlitestore.OpenReadOnly(context.Background(), filepath.Join(w.dir, "data", server.DatabaseFile))
	must(w.t, err)
	defer cleanup()
	es, err := st.LogEntries(context.Background(), store.LogFilter{Type: typ})
	must(w.t, err)
	return es
}

// fakeSlack stands in for Slack: the incoming webhook (/incoming) and
// response URLs (/response/...), each post checked and handed to the test.
// Like Slack, it remembers the buttons posted to the incoming webhook, and
// a click on one carries the value Airlock gave it.
type fakeSlack struct {
	*httptest.Server
	t        *testing.T
	incoming chan map[string]any
	replies  chan map[string]any

	mu sync.Mutex
	// posted is the value of every button posted, by action id.
	posted map[string]string
	// more is closed, and replaced, whenever a button is posted.
	more chan struct{}
}

func newFakeSlack(t *testing.T) *fakeSlack {
	f := &fakeSlack{t: t, incoming: make(chan map[string]any, 16), replies: make(chan map[string]any, 16),
		posted: map[string]string{}, more: make(chan struct{})}
	f.Server = httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		var m map[string]any
		if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" || json.NewDecoder(r.Body).Decode(&m) != nil {
			t.Errorf("fake Slack: %s %s (%s) is not a JSON post", r.Method, r.URL.Path, r.Header.Get("Content-Type"))
			rw.WriteHeader(http.StatusBadRequest)
			return
		}
		if _, ok := m["text"].(string); !ok {
			t.Errorf("fake Slack: no text (Slack requires a fallback text): %v", m)
		}
		// Slack refuses a message whose section text is longer than 3000
		// characters (invalid_blocks): nothing is posted.
		blocks, _ := m["blocks"].([]any)
		for _, b := range blocks {
			bm, _ := b.(map[string]any)
			txt, _ := bm["text"].(map[string]any)
			if s, _ := txt["text"].(string); bm["type"] == "section" && utf8.RuneCountInString(s) > 3000 {
				t.Errorf("fake Slack: a section of %d characters is refused (invalid_blocks)", utf8.RuneCountInString(s))
				rw.WriteHeader(http.StatusBadRequest)
				_, _ = rw.Write([]byte("invalid_blocks"))
				return
			}
		}
		switch {
		case r.URL.Path == "/incoming":
			f.remember(blocks)
			f.incoming <- m
		case strings.HasPrefix(r.URL.Path, "/response/"):
			f.replies <- m
		default:
			rw.WriteHeader(http.StatusNotFound)
			return
		}
		_, _ = rw.Write([]byte("ok"))
	}))
	t.Cleanup(f.Close)
	return f
}

// remember keeps the values of the buttons in blocks.
func (f *fakeSlack) remember(blocks []any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, b := range blocks {
		bm, _ := b.(map[string]any)
		els, _ := bm["elements"].([]any)
		for _, e := range els {
			em, _ := e.(map[string]any)
			id, _ := em["action_id"].(string)
			v, _ := em["value"].(string)
			if em["type"] == "button" && id != "" {
				f.posted[id] = v
			}
		}
	}
	close(f.more)
	f.more = make(chan struct{})
}

// postedValue waits for a button with actionID to be posted and returns
// its value.
func (f *fakeSlack) postedValue(actionID string) string {
	f.t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		f.mu.Lock()
		v, ok := f.posted[actionID]
		more := f.more
		f.mu.Unlock()
		if ok {
			return v
		}
		select {
		case <-more:
		case <-deadline:
			f.t.Fatalf("fake Slack: no button %q was posted (mark a click on a message Airlock did not post forged)", actionID)
		}
	}
}

// newSlackWorld starts a fake Slack and an Airlock whose Slack app posts
// to it, with no channel or workspace configured.
func newSlackWorld(t *testing.T) (*world, *fakeSlack) {
	t.Helper()
	f := newFakeSlack(t)
	t.Setenv("TEST_SLACK_WEBHOOK", f.URL+"/incoming")
	t.Setenv("TEST_SLACK_SECRET", signingSecret)
	return newWorld(t, "notify:\n  slack: {webhook_url_env: TEST_SLACK_WEBHOOK, signing_secret_env: TEST_SLACK_SECRET}\n"), f
}

func next(t *testing.T, ch chan map[string]any, what string) map[string]any {
	t.Helper()
	select {
	case m := <-ch:
		return m
	case <-time.After(10 * time.Second):
		t.Fatalf("no %s arrived", what)
		return nil
	}
}

// buttons checks a pending request's Block Kit shape and returns the
// section text and the action ids of its two buttons.
func buttons(t *testing.T, m map[string]any) (section string, approve, deny string) {
	t.Helper()
	blocks, _ := m["blocks"].([]any)
	if len(blocks) != 2 {
		t.Fatalf("want a section and an actions block, got %v", m)
	}
	sec, _ := blocks[0].(map[string]any)
	txt, _ := sec["text"].(map[string]any)
	if sec["type"] != "section" || txt["type"] != "mrkdwn" {
		t.Fatalf("first block %v", sec)
	}
	// Verbatim: a URL or channel name in an agent's reason is not made a
	// link, nor a mention parsed, by Slack.
	if txt["verbatim"] != true {
		t.Fatalf("the request's section is not verbatim: %v", sec)
	}
	act, _ := blocks[1].(map[string]any)
	els, _ := act["elements"].([]any)
	if act["type"] != "actions" || len(els) != 2 {
		t.Fatalf("second block %v", act)
	}
	var ids []string
	for i, want := range []string{"Approve", "Deny"} {
		b, _ := els[i].(map[string]any)
		bt, _ := b["text"].(map[string]any)
		if b["type"] != "button" || bt["type"] != "plain_text" || bt["text"] != want {
			t.Fatalf("button %d: %v", i, b)
		}
		id, _ := b["action_id"].(string)
		ids = append(ids, id)
	}
	s, _ := txt["text"].(string)
	return s, ids[0], ids[1]
}

// click is a block_actions callback as Slack sends it.
type click struct {
	user, actionID, trigger string
	// team is the workspace the click comes from (T0001 if empty);
	// enterprise its Enterprise Grid organisation, if any.
	team, enterprise string
	// userTeam is the user's own workspace (user.team_id), team if empty.
	userTeam string
	ts       time.Time
	secret   string
	// responseURL replaces the fake's own response URL when set.
	responseURL string
	// forged: the button is on a message Airlock did not post (someone
	// else's through the incoming webhook), whose value is value, if any.
	// Otherwise the click is on the button Airlock posted with actionID,
	// and carries that button's value.
	forged bool
	value  string
}

func (f *fakeSlack) body(c click) []byte {
	if c.team == "" {
		c.team = "T0001"
	}
	if c.userTeam == "" {
		c.userTeam = c.team
	}
	p := map[string]any{
		"type": "block_actions", "user": map[string]any{"id": c.user, "username": "x", "team_id": c.userTeam},
		"team":       map[string]any{"id": c.team, "domain": "x"},
		"api_app_id": "A0001", "token": "legacy", "trigger_id": c.trigger,
		"response_url": f.URL + "/response/" + c.trigger,
		"container":    map[string]any{"type": "message", "message_ts": "1.2"},
		"actions":      []any{map[string]any{"action_id": c.actionID, "block_id": "airlock_decision", "type": "button", "action_ts": "1.3"}},
	}
	if !c.forged {
		c.value = f.postedValue(c.actionID)
	}
	if c.value != "" {
		p["actions"].([]any)[0].(map[string]any)["value"] = c.value
	}
	if c.enterprise != "" {
		p["enterprise"] = map[string]any{"id": c.enterprise, "name": "x"}
	}
	if c.responseURL != "" {
		p["response_url"] = c.responseURL
	}
	b, _ := json.Marshal(p)
	return []byte(url.Values{"payload": {string(b)}}.Encode())
}

func sign(secret string, ts int64, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	fmt.Fprintf(m, "v0:%d:", ts)
	m.Write(body)
	return "v0=" + hex.EncodeToString(m.Sum(nil))
}

// post sends body to the callback with the given timestamp and signature
// and returns the status and the ephemeral reply's text ("" if none).
func (w *world) post(body []byte, ts int64, sig string) (int, string) {
	w.t.Helper()
	req, _ := http.NewRequest("POST", w.api+"/v1/integrations/slack/actions", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-Slack-Request-Timestamp", strconv.FormatInt(ts, 10))
	req.Header.Set("X-Slack-Signature", sig)
	resp, err := http.DefaultClient.Do(req)
	must(w.t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if len(b) == 0 {
		return resp.StatusCode, ""
	}
	var e struct {
		ResponseType string `json:"response_type"`
		Text         string `json:"text"`
	}
	if err := json.Unmarshal(b, &e); err != nil || e.ResponseType != "ephemeral" {
		w.t.Fatalf("reply is not an ephemeral message: %s", b)
	}
	return resp.StatusCode, e.Text
}

func (w *world) clickAs(f *fakeSlack, c click) (int, string) {
	if c.ts.IsZero() {
		c.ts = time.Now()
	}
	if c.secret == "" {
		c.secret = signingSecret
	}
	body := f.body(c)
	return w.post(body, c.ts.Unix(), sign(c.secret, c.ts.Unix(), body))
}

const (
	humanScope = "s3:GetObject arn:aws:s3:::logs/*"
	auditScope = "s3:GetObject arn:aws:s3:::audit/*"
)

// TestSlackApprovals: a pending request is posted with its buttons; a
// correctly signed click approves it as the mapped person and the log says
// so (channel slack, the Slack user); bad signatures, stale timestamps,
// replays, unmapped users, self-approval and second decisions are refused
// with an ephemeral reply and recorded; a deny from Slack records who; a
// decision elsewhere is followed up; the log and the state still verify.
func TestSlackApprovals(t *testing.T) {
	f := newFakeSlack(t)
	t.Setenv("TEST_SLACK_WEBHOOK", f.URL+"/incoming")
	t.Setenv("TEST_SLACK_SECRET", signingSecret)
	w := newWorld(t, "notify:\n  slack: {webhook_url_env: TEST_SLACK_WEBHOOK, signing_secret_env: TEST_SLACK_SECRET, channel: \"#access\"}\n")

	g := w.request(w.bot, humanScope, "INC-7 <!channel> & <https://evil.example|click here>")
	if g.Status != model.Pending {
		t.Fatalf("status %s", g.Status)
	}
	m := next(t, f.incoming, "request notification")
	if m["channel"] != "#access" {
		t.Errorf("channel %v", m["channel"])
	}
	sec, approve, deny := buttons(t, m)
	if approve != "airlock_approve:"+g.ID || deny != "airlock_deny:"+g.ID {
		t.Errorf("action ids %q %q for %s", approve, deny, g.ID)
	}
	for _, want := range []string{"*log-triage-bot*", "*aws-prod*", "s3:GetObject arn:aws:s3:::logs/*", "30m0s",
		"INC-7 &lt;!channel&gt; &amp; &lt;https://evil.example|click here&gt;", "sre-reads-all-logs-with-approval"} {
		if !strings.Contains(sec, want) {
			t.Errorf("message lacks %q:\n%s", want, sec)
		}
	}
	if strings.Contains(sec, "<!channel>") {
		t.Error("an agent's reason reached Slack unescaped")
	}

	// Refused before anything is decided: wrong secret, stale, unmapped user.
	if st, txt := w.clickAs(f, click{user: "U0ALICE", actionID: approve, trigger: "t-bad", secret: "not-the-secret"}); st != http.StatusUnauthorized || !strings.Contains(txt, "could not verify") {
		t.Errorf("wrong signature: %d %q", st, txt)
	}
	if st, _ := w.clickAs(f, click{user: "U0ALICE", actionID: approve, trigger: "t-stale", ts: time.Now().Add(-6 * time.Minute)}); st != http.StatusUnauthorized {
		t.Errorf("stale timestamp: %d", st)
	}
	if st, txt := w.clickAs(f, click{user: "U0NOBODY", actionID: approve, trigger: "t-nobody"}); st != http.StatusOK || !strings.Contains(txt, "not mapped") {
		t.Errorf("unmapped user: %d %q", st, txt)
	}
	if r := next(t, f.replies, "ephemeral reply to the unmapped user"); r["response_type"] != "ephemeral" {
		t.Errorf("reply %v", r)
	}
	if got := w.grant(g.ID); got.Status != model.Pending {
		t.Fatalf("after refused clicks the grant is %s", got.Status)
	}

	// Alice approves from Slack.
	c := click{user: "U0ALICE", actionID: approve, trigger: "t-alice", ts: time.Now()}
	body := f.body(c)
	sig := sign(signingSecret, c.ts.Unix(), body)
	if st, txt := w.post(body, c.ts.Unix(), sig); st != http.StatusOK || txt != "" {
		t.Fatalf("approve: %d %q", st, txt)
	}
	got := w.grant(g.ID)
	if got.Status != model.Active || len(got.Approvals) != 1 {
		t.Fatalf("after the click: %s, approvals %+v", got.Status, got.Approvals)
	}
	if a := got.Approvals[0]; a.Approver != "alice" || a.Via != "slack" || a.SlackUser != "U0ALICE" || a.Decision != "approved" {
		t.Errorf("approval %+v", a)
	}
	r := next(t, f.replies, "message replacement")
	if r["replace_original"] != true || !strings.Contains(fmt.Sprint(r["text"]), "Approved by *alice* via slack") {
		t.Errorf("replacement %v", r)
	}
	// The same request again is a replay; a fresh click on a decided grant
	// is refused by the lifecycle.
	if st, txt := w.post(body, c.ts.Unix(), sig); st != http.StatusUnauthorized || !strings.Contains(txt, "already handled") {
		t.Errorf("replay: %d %q", st, txt)
	}
	// The same click (trigger id) signed anew, as a Slack retry would be.
	if st, txt := w.clickAs(f, click{user: "U0ALICE", actionID: approve, trigger: "t-alice", ts: c.ts.Add(time.Second)}); st != http.StatusUnauthorized || !strings.Contains(txt, "already handled") {
		t.Errorf("second delivery of one click: %d %q", st, txt)
	}
	next(t, f.replies, "refusal of the second delivery")
	if st, txt := w.clickAs(f, click{user: "U0CAROL", actionID: approve, trigger: "t-again"}); st != http.StatusOK || !strings.Contains(txt, "is active; cannot approve") {
		t.Errorf("second decision: %d %q", st, txt)
	}
	next(t, f.replies, "refusal of the second decision")

	// Self-approval: alice asks, alice clicks.
	own := w.request(w.alice, auditScope, "quarterly audit")
	_, ownApprove, _ := buttons(t, next(t, f.incoming, "alice's request"))
	if st, txt := w.clickAs(f, click{user: "U0ALICE", actionID: ownApprove, trigger: "t-self"}); st != http.StatusOK || !strings.Contains(txt, "own grant") {
		t.Errorf("self-approval: %d %q", st, txt)
	}
	next(t, f.replies, "refusal of the self-approval")
	// Carol approves it through the API: Slack gets a follow-up, saying
	// where she decided as it says "via console".
	if st := w.call("POST", "/v1/grants/"+own.ID+"/approve", w.carol, map[string]string{"comment": "ok"}, nil); st != http.StatusOK {
		t.Fatalf("API approve: %d", st)
	}
	fu := next(t, f.incoming, "follow-up")
	if txt := fmt.Sprint(fu["text"]); !strings.Contains(txt, own.ID) || !strings.Contains(txt, "Approved by *carol* via api;") {
		t.Errorf("follow-up %q", txt)
	}

	// Carol denies a third request from Slack; the reason says so.
	third := w.request(w.bot, humanScope, "more")
	_, _, thirdDeny := buttons(t, next(t, f.incoming, "third request"))
	if st, txt := w.clickAs(f, click{user: "U0CAROL", actionID: thirdDeny, trigger: "t-deny"}); st != http.StatusOK || txt != "" {
		t.Fatalf("deny: %d %q", st, txt)
	}
	got = w.grant(third.ID)
	if got.Status != model.Denied || got.EndComment != "denied from Slack by carol (U0CAROL)" || got.Approvals[0].Via != "slack" || got.Approvals[0].SlackUser != "U0CAROL" {
		t.Errorf("denied from Slack: %s %q %+v", got.Status, got.EndComment, got.Approvals)
	}
	next(t, f.replies, "replacement after the deny")

	rep, err := w.srv.Verify(context.Background())
	must(t, err)
	if !rep.OK || !rep.Rows {
		t.Errorf("verify: ok=%v rows=%v problems=%v", rep.OK, rep.Rows, rep.Problems)
	}

	// Every refusal is in the log, the secret and signatures never.
	want := map[string]int{"bad_signature": 1, "stale_timestamp": 1, "unknown_user": 1, "replay": 2, "decision_refused": 2}
	seen := map[string]int{}
	approvedVia := 0
	for _, e := range w.entries("") {
		if bytes.Contains(e.Data, []byte(signingSecret)) || bytes.Contains(e.Data, []byte(sig[3:])) {
			t.Errorf("entry %d holds the signing secret or a signature", e.Seq)
		}
		var d struct {
			Data map[string]any `json:"data"`
		}
		must(t, json.Unmarshal(e.Data, &d))
		switch e.Type {
		case "integration.refused":
			why, _ := d.Data["reason"].(string)
			seen[why]++
			if d.Data["channel"] != "slack" {
				t.Errorf("refusal without its channel: %s", e.Data)
			}
			if why == "unknown_user" && d.Data["slack_user"] != "U0NOBODY" {
				t.Errorf("unknown user refusal %s", e.Data)
			}
			if why == "decision_refused" && e.GrantID == own.ID && !strings.Contains(fmt.Sprint(d.Data["detail"]), "own grant") {
				t.Errorf("self-approval refusal %s", e.Data)
			}
		case "grant.approved":
			if e.GrantID == g.ID && d.Data["via"] == "slack" && d.Data["slack_user"] == "U0ALICE" && d.Data["approver"] == "alice" {
				approvedVia++
			}
		}
	}
	for why, n := range want {
		if seen[why] != n {
			t.Errorf("%d %s refusals recorded, want %d (all: %v)", seen[why], why, n, seen)
		}
	}
	if approvedVia != 1 {
		t.Errorf("the Slack approval is not in the log with its channel and user")
	}
}
