package console_test

import (
	"context"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/airlock-dev/airlock/internal/gateway"
	"github.com/airlock-dev/airlock/internal/gateway/gatewaytest"
	"github.com/airlock-dev/airlock/internal/model"
)

// TestTranscriptNewlinesOnlyInSQL: a transcript line keeps its newlines
// only in a SQL statement (written on several lines, as people write
// SQL). An S3 key may hold a newline, and an upstream's error text whatever
// the agent made it say: shown as line breaks, the rest of the key or
// error drew what looked like further calls of the transcript under the
// real one. They show as \n, as airlock session show prints them.
func TestTranscriptNewlinesOnlyInSQL(t *testing.T) {
	e := newEnv(t, nil)
	forged := "\n#9 12:00:00.000 ✓ s3:GetObject arn:aws:s3:::logs/app/innocent"
	g, ses := e.recordedSession(t, "newlines", []gateway.Call{
		{Kind: "request", Action: "s3:GetObject", Resource: "arn:aws:s3:::logs/app/secret" + forged, Allowed: true, Params: map[string]string{"request_id": "r1"}},
		{Kind: "result", Action: "s3:GetObject", Resource: "arn:aws:s3:::logs/app/secret", Status: "500", Error: "boom" + forged, Params: map[string]string{"request_id": "r1"}},
		{Kind: "request", Action: "pg:select", Resource: "orders.public.t", Allowed: true, Params: map[string]string{"statement": "select 1\nfrom t", "n": "1"}},
	})
	b := e.browser()
	b.mustSignIn(e.alice)
	for _, path := range []string{"/console/sessions/" + ses.ID, "/console/grants/" + g.ID} {
		p := b.get(path)
		if p.status != http.StatusOK {
			t.Fatalf("%s: %d", path, p.status)
		}
		if strings.Contains(p.body, forged) {
			t.Errorf("%s: a newline of a key or an error is shown as a line break", path)
		}
		for _, want := range []string{`arn:aws:s3:::logs/app/secret\n#9 12:00:00.000`, `error: boom\n#9 12:00:00.000`, "SQL&gt; select 1\nfrom t"} {
			if !strings.Contains(p.body, want) {
				t.Errorf("%s lacks %q", path, want)
			}
		}
	}
}

// TestSessionPagesPairResults: a session page shows the result of each of
// its requests under it when the result was logged on the next page, and
// the next page does not show it again (airlock session show pairs them
// across pages too). Each page paired only the results it held: the
// requests showed without results, and their results showed alone on the
// page after.
func TestSessionPagesPairResults(t *testing.T) {
	e := newEnv(t, nil)
	// Logged as: started, request 1, request 2, one batch of both
	// results, ended.
	_, ses := e.recordedSession(t, "pages", []gateway.Call{
		{Kind: "request", Action: "s3:GetObject", Resource: "arn:aws:s3:::logs/app/one", Allowed: true, Params: map[string]string{"request_id": "r1"}},
		{Kind: "request", Action: "s3:GetObject", Resource: "arn:aws:s3:::logs/app/two", Allowed: true, Params: map[string]string{"request_id": "r2"}},
		{Kind: "result", Action: "s3:GetObject", Resource: "arn:aws:s3:::logs/app/one", Status: "200", Params: map[string]string{"request_id": "r1"}},
		{Kind: "result", Action: "s3:GetObject", Resource: "arn:aws:s3:::logs/app/two", Status: "404", Params: map[string]string{"request_id": "r2"}},
	})
	b := e.browser()
	b.mustSignIn(e.alice)
	p := b.get("/console/sessions/" + ses.ID + "?limit=3")
	if p.status != http.StatusOK {
		t.Fatalf("page 1: %d", p.status)
	}
	tr := p.body[max(strings.Index(p.body, `<tr class="t-`), 0):] // the transcript
	one, two := strings.Index(tr, "logs/app/one"), strings.Index(tr, "logs/app/two")
	ok1, nf2 := strings.Index(tr, "→ 200</td>"), strings.Index(tr, "→ 404</td>")
	if one < 0 || two < 0 || !(one < ok1 && ok1 < two && two < nf2) {
		t.Errorf("page 1: the results of its requests, logged on page 2, are not shown under them (%d %d %d %d)", one, ok1, two, nf2)
	}
	m := regexp.MustCompile(`href="/console/sessions/` + ses.ID + `\?after=(\d+)`).FindStringSubmatch(p.body)
	if m == nil {
		t.Fatal("page 1: no link to the next page")
	}
	p = b.get("/console/sessions/" + ses.ID + "?limit=3&after=" + m[1])
	if p.status != http.StatusOK || !strings.Contains(p.body, "session.ended") {
		t.Fatalf("page 2: %d", p.status)
	}
	if strings.Contains(p.body, "→ 200</td>") || strings.Contains(p.body, "→ 404</td>") {
		t.Errorf("page 2: shows again the results shown under their requests on page 1")
	}
}

// recordedSession is a grant of log-triage-bot's with one session that
// recorded calls and ended.
func (e *env) recordedSession(t *testing.T, reason string, calls []gateway.Call) (model.Grant, *gateway.Session) {
	t.Helper()
	ctx := context.Background()
	g, ses := e.startedSession(t, reason)
	for _, c := range calls {
		if err := gatewaytest.Record(ctx, ses, c); err != nil {
			t.Fatal(err)
		}
	}
	if err := ses.End(ctx); err != nil {
		t.Fatal(err)
	}
	return g, ses
}

// startedSession is a grant of log-triage-bot's with one session started.
func (e *env) startedSession(t *testing.T, reason string) (model.Grant, *gateway.Session) {
	t.Helper()
	g := e.request("log-triage-bot", autoScope, "10m", reason)
	gg, err := e.srv.Service.Authority().Lookup(e.grant(g.ID).CredentialID)
	if err != nil {
		t.Fatal(err)
	}
	ses, err := e.srv.Service.Authority().StartSession(context.Background(), gg, "client")
	if err != nil {
		t.Fatal(err)
	}
	return g, ses
}
