package console_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"github.com/airlock-dev/airlock/internal/gateway/gatewaytest"
	"html"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/authn"
	"github.com/airlock-dev/airlock/internal/clock"
	"github.com/airlock-dev/airlock/internal/config"
	"github.com/airlock-dev/airlock/internal/console"
	"github.com/airlock-dev/airlock/internal/demo"
	"github.com/airlock-dev/airlock/internal/gateway"
	"github.com/airlock-dev/airlock/internal/grants"
	"github.com/airlock-dev/airlock/internal/httpapi"
	"github.com/airlock-dev/airlock/internal/model"
	"github.com/airlock-dev/airlock/internal/review"
	"github.com/airlock-dev/airlock/internal/server"
	"github.com/airlock-dev/airlock/internal/store"
)

const testConfig = `data_dir: ./data
listen:
  api: 127.0.0.1:0
identities:
  - name: log-triage-bot
    kind: agent
    owner: sre-team
    key_sha256: "%s"
  - name: alice
    kind: human
    groups: [sre-leads]
    key_sha256: "%s"
    email: alice@example.com
  - name: bob
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

// leadsRequest lets people ask for reads too, so that one can try to
// approve their own request.
const leadsRequest = `
@id("leads-may-request-reads")
@approval("human")
permit (principal in Group::"sre-leads", action == Action::"s3:GetObject", resource == Target::"aws-prod");
`

const (
	autoScope  = "s3:GetObject,s3:ListBucket arn:aws:s3:::logs/app/*" // auto for <= 15m
	humanScope = "s3:GetObject arn:aws:s3:::logs/*"                   // needs a lead
)

type env struct {
	t               *testing.T
	srv             *server.Server
	url             string
	bot, alice, bob string
}

// newEnv opens a real server (store, log, policies, API and console) on a
// fresh data directory. With clk, the console is built again over the
// same service with that clock.
func newEnv(t *testing.T, clk clock.Clock) *env { return newEnvWith(t, clk, "") }

// newEnvWith is newEnv with extra YAML appended to the configuration.
func newEnvWith(t *testing.T, clk clock.Clock, extra string) *env {
	t.Helper()
	return newEnvFrom(t, clk, testConfig+extra)
}

// newEnvFrom is newEnv with the configuration cfgText (testConfig's three %s
// are the keys' hashes).
func newEnvFrom(t *testing.T, clk clock.Clock, cfgText string) *env {
	t.Helper()
	dir := t.TempDir()
	botKey, botSHA := authn.NewKey()
	aliceKey, aliceSHA := authn.NewKey()
	bobKey, bobSHA := authn.NewKey()
	if err := os.MkdirAll(filepath.Join(dir, "policies"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "policies", "aws-prod.cedar"), []byte(demo.Policies+leadsRequest), 0o644); err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(dir, "airlock.yaml")
	if err := os.WriteFile(cfgPath, fmt.Appendf(nil, cfgText, botSHA, aliceSHA, bobSHA), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	srv, err := server.Open(context.Background(), cfg, logger)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	h := srv.Handler
	if clk != nil {
		c, err := console.New(console.Options{Service: srv.Service, Directory: srv.Directory, Audit: srv, Logger: logger, Clock: clk})
		if err != nil {
			t.Fatal(err)
		}
		h = console.Mount(http.NotFoundHandler(), c)
	}
	ts := httptest.NewServer(h)
	t.Cleanup(ts.Close)
	return &env{t: t, srv: srv, url: ts.URL, bot: botKey, alice: aliceKey, bob: bobKey}
}

func (e *env) identity(name string) model.Identity {
	id, ok := e.srv.Directory.Lookup(name)
	if !ok {
		e.t.Fatalf("no identity %s", name)
	}
	return id
}

// request asks for a grant as the named identity through the service.
func (e *env) request(name, stmt, duration, reason string) model.Grant {
	e.t.Helper()
	g, err := e.srv.Service.Request(context.Background(), e.identity(name), grants.RequestInput{
		Target: "aws-prod", Scope: []string{stmt}, Duration: duration, Reason: reason,
	})
	if err != nil {
		e.t.Fatalf("request: %v", err)
	}
	return g
}

func (e *env) grant(id string) model.Grant {
	e.t.Helper()
	g, err := e.srv.Service.Get(context.Background(), e.identity("alice"), id)
	if err != nil {
		e.t.Fatal(err)
	}
	return g
}

// browser is a cookie-keeping client that does not follow redirects.
type browser struct {
	t    *testing.T
	e    *env
	c    *http.Client
	csrf string
}

type page struct {
	status int
	header http.Header
	body   string
}

func (e *env) browser() *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: e.t, e: e, c: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

func (b *browser) do(req *http.Request) page {
	b.t.Helper()
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return page{resp.StatusCode, resp.Header, string(body)}
}

func (b *browser) get(path string) page {
	b.t.Helper()
	req, _ := http.NewRequest("GET", b.e.url+path, nil)
	return b.do(req)
}

// post sends a form; headers are extra request headers (k, v, k, v...).
func (b *browser) post(path string, form url.Values, headers ...string) page {
	b.t.Helper()
	req, _ := http.NewRequest("POST", b.e.url+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	return b.do(req)
}

var tokenRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// signIn signs in with key and returns the response to the form post.
func (b *browser) signIn(key string) page {
	b.t.Helper()
	p := b.get("/console/login")
	m := tokenRE.FindStringSubmatch(p.body)
	if p.status != 200 || m == nil {
		b.t.Fatalf("login page: %d %s", p.status, p.body)
	}
	r := b.post("/console/login", url.Values{"csrf": {m[1]}, "key": {key}})
	if r.status == http.StatusSeeOther {
		q := b.get("/console/queue")
		if m := tokenRE.FindStringSubmatch(q.body); m != nil {
			b.csrf = m[1]
		}
	}
	return r
}

func (b *browser) mustSignIn(key string) {
	b.t.Helper()
	if r := b.signIn(key); r.status != http.StatusSeeOther || r.header.Get("Location") != "/console/queue" {
		b.t.Fatalf("sign-in: %d %s", r.status, r.body)
	}
	if b.csrf == "" {
		b.t.Fatal("no CSRF token on the queue page")
	}
}

func TestSignInQueueApprove(t *testing.T) {
	e := newEnv(t, nil)
	pending := e.request("log-triage-bot", humanScope, "30m", "billing errors")
	b := e.browser()
	if p := b.get("/console/queue"); p.status != http.StatusSeeOther || p.header.Get("Location") != "/console/login" {
		t.Fatalf("queue before sign-in: %d %s", p.status, p.header.Get("Location"))
	}
	b.mustSignIn(e.alice)
	q := b.get("/console/queue")
	if q.status != 200 || !strings.Contains(q.body, pending.ID) || !strings.Contains(q.body, "billing errors") {
		t.Fatalf("queue: %d\n%s", q.status, q.body)
	}
	for _, h := range []string{"Content-Security-Policy", "X-Frame-Options"} {
		if q.header.Get(h) == "" {
			t.Errorf("no %s header", h)
		}
	}
	// The polled endpoint lists the same request, rendered.
	var qj struct {
		Rows []struct{ ID, HTML string } `json:"rows"`
	}
	if err := json.Unmarshal([]byte(b.get("/console/queue.json").body), &qj); err != nil || len(qj.Rows) != 1 || qj.Rows[0].ID != pending.ID {
		t.Fatalf("queue.json: %+v %v", qj, err)
	}
	r := b.post("/console/grants/"+pending.ID+"/approve", url.Values{"csrf": {b.csrf}, "comment": {"ok for the incident"}})
	if r.status != http.StatusSeeOther {
		t.Fatalf("approve: %d %s", r.status, r.body)
	}
	g := e.grant(pending.ID)
	if g.Status != model.Active || len(g.Approvals) != 1 || g.Approvals[0].Approver != "alice" || g.Approvals[0].Comment != "ok for the incident" || g.Approvals[0].Via != "console" {
		t.Fatalf("after approve: %s %+v", g.Status, g.Approvals)
	}
	// The approval's entry says where it was made, as an API approval's does.
	hist, err := e.srv.Service.History(context.Background(), e.identity("alice"), pending.ID, grants.EventsQuery{})
	if err != nil {
		t.Fatal(err)
	}
	approvedFrom := ""
	for _, en := range hist.Entries {
		if en.Type == "grant.approved" {
			var d struct {
				Data struct {
					Instance *model.Instance `json:"instance"`
				} `json:"data"`
			}
			if err := json.Unmarshal(en.Data, &d); err == nil && d.Data.Instance != nil {
				approvedFrom = d.Data.Instance.IP
			}
		}
	}
	if approvedFrom != "127.0.0.1" {
		t.Errorf("the console approval's entry names no instance (ip %q)", approvedFrom)
	}
	gp := b.get("/console/grants/" + pending.ID)
	if !strings.Contains(gp.body, "ok for the incident") || !strings.Contains(gp.body, "Revoke now") {
		t.Fatalf("grant page after approve:\n%s", gp.body)
	}
	// Deny needs a reason; the service's refusal is shown.
	other := e.request("log-triage-bot", humanScope, "30m", "second look")
	if r := b.post("/console/grants/"+other.ID+"/deny", url.Values{"csrf": {b.csrf}}); r.status != http.StatusBadRequest || !strings.Contains(r.body, "a reason is required") {
		t.Fatalf("deny without reason: %d %s", r.status, r.body)
	}
	// Revoke with a reason.
	if r := b.post("/console/grants/"+pending.ID+"/revoke", url.Values{"csrf": {b.csrf}, "reason": {"incident over"}}); r.status != http.StatusSeeOther {
		t.Fatalf("revoke: %d %s", r.status, r.body)
	}
	if g := e.grant(pending.ID); g.Status != model.Revoked || g.EndedBy != "alice" || g.EndComment != "incident over" {
		t.Fatalf("after revoke: %+v", g)
	}
	// Sign-out ends the session on the server.
	if r := b.post("/console/logout", url.Values{"csrf": {b.csrf}}); r.status != http.StatusSeeOther {
		t.Fatalf("logout: %d", r.status)
	}
	if p := b.get("/console/queue"); p.status != http.StatusSeeOther {
		t.Fatalf("queue after sign-out: %d", p.status)
	}
}

func TestAgentKeyCannotSignIn(t *testing.T) {
	e := newEnv(t, nil)
	b := e.browser()
	r := b.signIn(e.bot)
	if r.status != http.StatusForbidden || !strings.Contains(r.body, "only people sign in") {
		t.Fatalf("agent sign-in: %d %s", r.status, r.body)
	}
	for _, c := range b.c.Jar.Cookies(mustURL(t, e.url+"/console/")) {
		if c.Name == "airlock_console" && c.Value != "" {
			t.Fatalf("an agent got a session cookie")
		}
	}
	if p := b.get("/console/queue"); p.status != http.StatusSeeOther {
		t.Fatalf("queue after a refused agent sign-in: %d", p.status)
	}
	if r := b.signIn("alk_not-a-key"); r.status != http.StatusUnauthorized {
		t.Fatalf("unknown key: %d", r.status)
	}
}

func mustURL(t *testing.T, s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func TestCSRFRefused(t *testing.T) {
	e := newEnv(t, nil)
	g := e.request("log-triage-bot", humanScope, "30m", "billing errors")
	b := e.browser()
	b.mustSignIn(e.alice)
	approve := "/console/grants/" + g.ID + "/approve"
	for _, tc := range []struct {
		name    string
		form    url.Values
		headers []string
	}{
		{"no token", url.Values{}, nil},
		{"wrong token", url.Values{"csrf": {strings.Repeat("A", len(b.csrf))}}, nil},
		{"another session's token", url.Values{"csrf": {otherToken(t, e)}}, nil},
		{"right token, cross-site", url.Values{"csrf": {b.csrf}}, []string{"Origin", "https://evil.example", "Sec-Fetch-Site", "cross-site"}},
		{"right token, foreign origin", url.Values{"csrf": {b.csrf}}, []string{"Origin", "https://evil.example"}},
	} {
		r := b.post(approve, tc.form, tc.headers...)
		if r.status != http.StatusForbidden {
			t.Errorf("%s: status %d, want 403: %s", tc.name, r.status, r.body)
		}
		if got := e.grant(g.ID); got.Status != model.Pending {
			t.Fatalf("%s: the grant was decided: %s", tc.name, got.Status)
		}
	}
	// The sign-in form is protected too: without the token its page set,
	// a post cannot sign anyone in.
	nb := e.browser()
	if r := nb.post("/console/login", url.Values{"key": {e.alice}}); r.status != http.StatusForbidden {
		t.Fatalf("sign-in without the form's token: %d", r.status)
	}
	// The same post from this console, same-origin, goes through.
	if r := b.post(approve, url.Values{"csrf": {b.csrf}}, "Origin", e.url, "Sec-Fetch-Site", "same-origin"); r.status != http.StatusSeeOther {
		t.Fatalf("same-origin approve: %d %s", r.status, r.body)
	}
	if got := e.grant(g.ID); got.Status != model.Active {
		t.Fatalf("after a valid approve: %s", got.Status)
	}
}

// otherToken signs bob in and returns his session's CSRF token.
func otherToken(t *testing.T, e *env) string {
	ob := e.browser()
	ob.mustSignIn(e.bob)
	return ob.csrf
}

func TestSelfApprovalRefused(t *testing.T) {
	e := newEnv(t, nil)
	own := e.request("alice", "s3:GetObject arn:aws:s3:::reports/q3.csv", "5m", "quarterly numbers")
	b := e.browser()
	b.mustSignIn(e.alice)
	if q := b.get("/console/queue"); strings.Contains(q.body, own.ID) {
		t.Fatalf("alice's own request is in her queue")
	}
	r := b.post("/console/grants/"+own.ID+"/approve", url.Values{"csrf": {b.csrf}})
	if r.status != http.StatusForbidden || !strings.Contains(r.body, "nobody may approve their own grant") {
		t.Fatalf("self-approval: %d %s", r.status, r.body)
	}
	if g := e.grant(own.ID); g.Status != model.Pending {
		t.Fatalf("self-approved: %s", g.Status)
	}
	// So is deciding one's own grant otherwise (a revoke).
	if r := b.post("/console/grants/"+own.ID+"/revoke", url.Values{"csrf": {b.csrf}, "reason": {"mine"}}); r.status != http.StatusForbidden {
		t.Fatalf("revoking her own: %d %s", r.status, r.body)
	}
	// Both attempts are in the log, on the grant, as made in the console.
	hist, err := e.srv.Service.History(context.Background(), e.identity("alice"), own.ID, grants.EventsQuery{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, en := range hist.Entries {
		if en.Type != grants.RefusedDecisionType {
			continue
		}
		var d struct {
			Actor string `json:"actor"`
			Data  struct {
				Action, Via string
			} `json:"data"`
		}
		if err := json.Unmarshal(en.Data, &d); err != nil {
			t.Fatal(err)
		}
		got = append(got, d.Actor+" "+d.Data.Action+" via "+d.Data.Via)
	}
	if want := []string{"alice approve via console", "alice revoke via console"}; !slices.Equal(got, want) {
		t.Errorf("refused decisions recorded: %q, want %q", got, want)
	}
}

// payload is what a hostile agent or client puts in what gets recorded.
const payload = "<script>alert(1)</script>\u202e<img src=x onerror=alert(2)>"

func TestRecordedPayloadIsEscaped(t *testing.T) {
	e := newEnv(t, nil)
	ctx := context.Background()
	// A reason may hold HTML and bidi overrides (control characters are
	// refused there); a recorded call may hold anything.
	pending := e.request("log-triage-bot", humanScope, "30m", "pending "+payload)
	active := e.request("log-triage-bot", autoScope, "10m", "active "+payload)
	if active.Status != model.Active {
		t.Fatalf("auto request: %s", active.Status)
	}
	gg, err := e.srv.Service.Authority().Lookup(e.grant(active.ID).CredentialID)
	if err != nil {
		t.Fatal(err)
	}
	ses, err := e.srv.Service.Authority().StartSession(ctx, gg, "client\x1b[2K"+payload)
	if err != nil {
		t.Fatal(err)
	}
	call := gateway.Call{Kind: "request", Action: "s3:GetObject", Resource: "arn:aws:s3:::logs/app/x\r\x1b[2Kforged" + payload, Allowed: true,
		Params: map[string]string{"key": "k\x00\x07" + payload}}
	if err := gatewaytest.Record(ctx, ses, call); err != nil {
		t.Fatal(err)
	}
	if err := gatewaytest.Record(ctx, ses, gateway.Call{Kind: "request", Action: "s3:PutObject", Resource: "arn:aws:s3:::logs/app/y" + payload, Error: "denied \x1b]0;title\x07" + payload}); err != nil {
		t.Fatal(err)
	}
	if err := ses.End(ctx); err != nil {
		t.Fatal(err)
	}
	b := e.browser()
	b.mustSignIn(e.alice)
	pages := map[string]string{
		"queue":   "/console/queue",
		"review":  "/console/review",
		"pending": "/console/grants/" + pending.ID,
		"grant":   "/console/grants/" + active.ID,
		"session": "/console/sessions/" + ses.ID,
	}
	for name, path := range pages {
		p := b.get(path)
		if p.status != 200 {
			t.Fatalf("%s: %d %s", name, p.status, p.body)
		}
		for _, bad := range []string{"<script>alert", "<img src=x", "\u202e", "\x1b", "\x00", "\x07", "\r"} {
			if strings.Contains(p.body, bad) {
				t.Errorf("%s page holds %q raw", name, bad)
			}
		}
		if !strings.Contains(p.body, "&lt;script&gt;alert(1)&lt;/script&gt;\\u202e") {
			t.Errorf("%s page does not show the payload escaped", name)
		}
	}
	sp := b.get(pages["session"]).body
	for _, want := range []string{`\r\x1b[2Kforged`, `✗ DENIED`, "s3:PutObject"} {
		if !strings.Contains(sp, want) {
			t.Errorf("session page lacks %q", want)
		}
	}
	// The polled queue rows are escaped the same way.
	qj := b.get("/console/queue.json").body
	if strings.Contains(qj, "<script>alert") || strings.Contains(qj, `\u003cscript\u003ealert`) {
		t.Errorf("queue.json carries the payload unescaped: %s", qj)
	}
}

func TestSessionExpiry(t *testing.T) {
	clk := clock.NewFake(time.Now())
	e := newEnv(t, clk)
	b := e.browser()
	b.mustSignIn(e.alice)
	// Idle: 59 minutes without a request is fine, 60 is not.
	clk.Advance(59 * time.Minute)
	if p := b.get("/console/queue"); p.status != 200 {
		t.Fatalf("after 59 idle minutes: %d", p.status)
	}
	clk.Advance(time.Hour)
	if p := b.get("/console/queue"); p.status != http.StatusSeeOther || p.header.Get("Location") != "/console/login" {
		t.Fatalf("after an idle hour: %d %s", p.status, p.header.Get("Location"))
	}
	if p := b.get("/console/queue.json"); p.status != http.StatusUnauthorized {
		t.Fatalf("queue.json after an idle hour: %d", p.status)
	}
	// The queue's background polling does not keep a session alive.
	b = e.browser()
	b.mustSignIn(e.alice)
	for i := 0; i < 6; i++ {
		clk.Advance(10 * time.Minute)
		if p := b.get("/console/queue.json"); i < 5 && p.status != 200 {
			t.Fatalf("poll at %d minutes: %d", 10*(i+1), p.status)
		}
	}
	if p := b.get("/console/queue"); p.status != http.StatusSeeOther {
		t.Fatalf("an hour of polling only kept the session alive: %d", p.status)
	}
	// Absolute: a session used every 50 minutes still ends at 8 hours.
	b = e.browser()
	b.mustSignIn(e.alice)
	for i := 0; i < 10; i++ {
		clk.Advance(50 * time.Minute)
		p := b.get("/console/queue")
		if 50*time.Duration(i+1)*time.Minute < 8*time.Hour {
			if p.status != 200 {
				t.Fatalf("at %d minutes: %d", 50*(i+1), p.status)
			}
		} else if p.status != http.StatusSeeOther {
			t.Fatalf("at %d minutes (past 8h): %d, want the sign-in redirect", 50*(i+1), p.status)
		}
	}
	// A form posted after expiry is refused even with the old token.
	if r := b.post("/console/logout", url.Values{"csrf": {b.csrf}}); r.status != http.StatusUnauthorized {
		t.Fatalf("post after expiry: %d", r.status)
	}
}

func TestDisabledIdentityLosesSession(t *testing.T) {
	e := newEnv(t, nil)
	b := e.browser()
	b.mustSignIn(e.bob)
	id := e.identity("bob")
	id.Disabled = true
	e.srv.Directory.Put(id)
	if p := b.get("/console/queue"); p.status != http.StatusSeeOther {
		t.Fatalf("disabled person's session: %d", p.status)
	}
}

// Replacing a person's key (a leaked one) ends the console sessions
// opened with it, as it ends its use on the API: on another replica the
// directory learns of the new key without a restart that would have
// emptied the session table. A sign-in with the new key works.
func TestReplacedKeyEndsItsSessions(t *testing.T) {
	e := newEnv(t, nil)
	old := e.browser()
	old.mustSignIn(e.bob)
	newKey, newSHA := authn.NewKey()
	id := e.identity("bob")
	id.KeySHA256 = newSHA
	e.srv.Directory.Put(id)
	if p := old.get("/console/queue"); p.status != http.StatusSeeOther || p.header.Get("Location") != "/console/login" {
		t.Fatalf("a session opened with the replaced key: %d %s", p.status, p.header.Get("Location"))
	}
	if p := old.post("/console/logout", url.Values{"csrf": {old.csrf}}); p.status != http.StatusUnauthorized {
		t.Fatalf("a form posted in a session opened with the replaced key: %d", p.status)
	}
	fresh := e.browser()
	fresh.mustSignIn(newKey)
	if p := fresh.get("/console/queue"); p.status != http.StatusOK || !strings.Contains(p.body, `<span id="who">bob</span>`) {
		t.Fatalf("with the new key: %d", p.status)
	}
}

// The review downloads are what `airlock grants -o csv|json` print: the
// API's grants, as review rows.
func TestReviewDownloadsMatchCLI(t *testing.T) {
	e := newEnv(t, nil)
	e.request("log-triage-bot", autoScope, "10m", "triage, with \"quotes\"")
	e.request("log-triage-bot", humanScope, "30m", "needs a lead")
	b := e.browser()
	b.mustSignIn(e.alice)
	day := time.Now().UTC().Format("2006-01-02")
	page, err := e.srv.Service.List(context.Background(), e.identity("alice"), grants.GrantsQuery{Filter: mustFilter(t, day)})
	if err != nil {
		t.Fatal(err)
	}
	gs := page.Grants
	// Round-trip through JSON as the CLI gets the grants from the API.
	raw, _ := json.Marshal(gs)
	var viaAPI []model.Grant
	if err := json.Unmarshal(raw, &viaAPI); err != nil {
		t.Fatal(err)
	}
	rows := make([]review.Row, len(viaAPI))
	var wantCSV bytes.Buffer
	w := csv.NewWriter(&wantCSV)
	w.Write(review.Header)
	for i, g := range viaAPI {
		rows[i] = review.FromGrant(g)
		w.Write(rows[i].Record())
	}
	w.Flush()
	var wantJSON bytes.Buffer
	enc := json.NewEncoder(&wantJSON)
	enc.SetIndent("", "  ")
	enc.Encode(rows)
	if got := b.get("/console/review.csv?day=" + day); got.body != wantCSV.String() {
		t.Errorf("CSV:\n%s\nwant:\n%s", got.body, wantCSV.String())
	} else if !strings.Contains(got.header.Get("Content-Disposition"), "airlock-grants-"+day+".csv") {
		t.Errorf("Content-Disposition %q", got.header.Get("Content-Disposition"))
	}
	if got := b.get("/console/review.json?day=" + day); got.body != wantJSON.String() {
		t.Errorf("JSON:\n%s\nwant:\n%s", got.body, wantJSON.String())
	}
	if len(rows) != 2 {
		t.Fatalf("rows: %d", len(rows))
	}
	// The page with no filter shows today.
	if p := b.get("/console/review"); !strings.Contains(p.body, rows[0].Grant) || !strings.Contains(p.body, rows[1].Grant) {
		t.Fatalf("review page lacks today's grants")
	}
	if p := b.get("/console/review?day=not-a-day"); p.status != http.StatusBadRequest {
		t.Fatalf("bad day: %d", p.status)
	}
}

func TestAuditPage(t *testing.T) {
	e := newEnv(t, nil)
	e.request("log-triage-bot", autoScope, "10m", "triage")
	b := e.browser()
	b.mustSignIn(e.alice)
	if p := b.get("/console/audit"); p.status != 200 || !strings.Contains(p.body, "Not verified from the console") {
		t.Fatalf("audit page: %d %s", p.status, p.body)
	}
	if r := b.post("/console/audit/verify", url.Values{"csrf": {b.csrf}}); r.status != http.StatusSeeOther {
		t.Fatalf("verify: %d %s", r.status, r.body)
	}
	p := b.get("/console/audit")
	if !strings.Contains(p.body, "<strong>OK</strong> · run by alice") {
		t.Fatalf("audit page after verify:\n%s", p.body)
	}
	day := time.Now().UTC().Format("2006-01-02")
	ex := b.get("/console/audit/export?account=111122223333&day=" + day)
	want, _, err := e.srv.Export(context.Background(), "111122223333", day)
	if err != nil {
		t.Fatal(err)
	}
	if ex.status != 200 || len(ex.body) == 0 || !json.Valid([]byte(ex.body)) || len(ex.body) != len(want) {
		t.Fatalf("export: %d, %d bytes (want %d)", ex.status, len(ex.body), len(want))
	}
}

func mustFilter(t *testing.T, day string) store.GrantFilter {
	t.Helper()
	q, err := httpapi.ParseGrantsQuery(url.Values{"day": {day}})
	if err != nil {
		t.Fatal(err)
	}
	return q.Filter
}

// The page's CSV and JSON links carry its filter: following them downloads
// the rows the page shows, not every grant of the day. (The filter was
// escaped a second time, "day%3d…%26status%3d…", which the download read
// as no filter at all.)
func TestReviewDownloadLinksKeepTheFilter(t *testing.T) {
	e := newEnv(t, nil)
	e.request("log-triage-bot", autoScope, "10m", "triage")
	e.request("log-triage-bot", humanScope, "30m", "needs a lead")
	b := e.browser()
	b.mustSignIn(e.alice)
	day := time.Now().UTC().Format("2006-01-02")
	p := b.get("/console/review?day=" + day + "&status=pending")
	if p.status != http.StatusOK {
		t.Fatalf("review page: %d", p.status)
	}
	for _, tc := range []struct{ id, ext string }{{"csv", "csv"}, {"json", "json"}} {
		m := regexp.MustCompile(`id="` + tc.id + `" href="([^"]*)"`).FindStringSubmatch(p.body)
		if m == nil {
			t.Fatalf("no %s link on the review page", tc.id)
		}
		href := html.UnescapeString(m[1])
		u, err := url.Parse(href)
		if err != nil {
			t.Fatalf("%s link %q: %v", tc.id, href, err)
		}
		if q := u.Query(); q.Get("day") != day || q.Get("status") != "pending" {
			t.Fatalf("%s link %q: query %v, want day=%s and status=pending", tc.id, href, q, day)
		}
		got := b.get(href)
		if got.status != http.StatusOK {
			t.Fatalf("%s download: %d", tc.id, got.status)
		}
		switch tc.ext {
		case "csv":
			recs, err := csv.NewReader(strings.NewReader(got.body)).ReadAll()
			if err != nil {
				t.Fatal(err)
			}
			if len(recs) != 2 || !strings.Contains(got.body, "needs a lead") {
				t.Fatalf("CSV through the page's link: %d records, want the header and the one pending grant:\n%s", len(recs), got.body)
			}
		case "json":
			var rows []review.Row
			if err := json.Unmarshal([]byte(got.body), &rows); err != nil {
				t.Fatal(err)
			}
			if len(rows) != 1 || rows[0].Status != "pending" {
				t.Fatalf("JSON through the page's link: %d rows, want the one pending grant:\n%s", len(rows), got.body)
			}
		}
	}
}

// TestQueueShowsExtension: the queue says that a request extends a grant
// the holder already has.
func TestQueueShowsExtension(t *testing.T) {
	e := newEnv(t, nil)
	first := e.request("log-triage-bot", humanScope, "30m", "billing errors")
	if _, err := e.srv.Service.Approve(context.Background(), e.identity("alice"), first.ID, ""); err != nil {
		t.Fatal(err)
	}
	ext, err := e.srv.Service.Request(context.Background(), e.identity("log-triage-bot"), grants.RequestInput{
		Target: "aws-prod", Scope: []string{humanScope}, Duration: "30m", Reason: "still on it", Extends: first.ID,
	})
	if err != nil || ext.Status != model.Pending {
		t.Fatalf("extension: %v (%s)", err, ext.Status)
	}
	b := e.browser()
	b.mustSignIn(e.alice)
	q := b.get("/console/queue")
	if q.status != 200 || !strings.Contains(q.body, ext.ID) {
		t.Fatalf("queue: %d\n%s", q.status, q.body)
	}
	if !strings.Contains(q.body, `extends <a href="/console/grants/`+first.ID+`">`) {
		t.Errorf("the queue does not say the request extends %s:\n%s", first.ID, q.body)
	}
}
