package httpapi_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/airlock-dev/airlock/internal/apierr"
	"github.com/airlock-dev/airlock/internal/httpapi"
)

// TestAgentRoutes: targets show each caller the policies that match it;
// approvers are named only for the caller's own pending grant; a command
// is recorded only by the holder of an active grant.
func TestAgentRoutes(t *testing.T) {
	e := newEnv(t)
	active := e.request(e.bot, autoScope, "10m")
	pending := e.request(e.bot, humanScope, "30m")

	var ts httpapi.TargetsResponse
	r := e.do("GET", "/v1/targets", e.bot, nil)
	r.decode(t, &ts)
	if len(ts.Targets) != 1 || ts.Targets[0].Name != "aws-prod" || len(ts.Targets[0].Permits) == 0 {
		t.Fatalf("bot's targets: %+v", ts)
	}
	for _, p := range ts.Targets[0].Permits {
		if slices.Contains(p.Actions, "approve") {
			t.Errorf("an approve policy is listed as a request permit: %+v", p)
		}
	}
	// web-bot is permitted nothing: it sees no target.
	ts = httpapi.TargetsResponse{}
	e.do("GET", "/v1/targets", e.webBot, nil).decode(t, &ts)
	if len(ts.Targets) != 0 {
		t.Fatalf("web-bot's targets: %+v", ts)
	}

	var ap httpapi.ApproversResponse
	e.do("GET", "/v1/grants/"+pending.ID+"/approvers", e.bot, nil).decode(t, &ap)
	if strings.Join(ap.Approvers, ",") != "alice" {
		t.Fatalf("approvers of the pending grant: %v", ap.Approvers)
	}
	ap = httpapi.ApproversResponse{}
	e.do("GET", "/v1/grants/"+active.ID+"/approvers", e.bot, nil).decode(t, &ap)
	if ap.Approvers == nil || len(ap.Approvers) != 0 {
		t.Fatalf("approvers of an active grant: %v", ap.Approvers)
	}
	wantError(t, e.do("GET", "/v1/grants/"+pending.ID+"/approvers", e.webBot, nil), http.StatusNotFound, apierr.CodeNotFound, "-")

	cmd := httpapi.CommandInput{Argv: []string{"aws", "s3", "ls"}}
	if r := e.do("POST", "/v1/grants/"+active.ID+"/commands", e.bot, cmd); r.status != http.StatusOK {
		t.Fatalf("recording a command: %d %s", r.status, r.body)
	}
	// The caller's own API key on the command line never reaches the log
	// (the MCP side took it out; a direct call of the route kept it).
	if r := e.do("POST", "/v1/grants/"+active.ID+"/commands", e.bot, httpapi.CommandInput{Argv: []string{"env", "K=" + e.bot, "aws", "s3", "ls"}}); r.status != http.StatusOK {
		t.Fatalf("recording a command: %d %s", r.status, r.body)
	}
	wantError(t, e.do("POST", "/v1/grants/"+active.ID+"/commands", e.webBot, cmd), http.StatusNotFound, apierr.CodeNotFound, "-")
	wantError(t, e.do("POST", "/v1/grants/"+active.ID+"/commands", e.alice, cmd), http.StatusNotFound, apierr.CodeNotFound, "-")
	wantError(t, e.do("POST", "/v1/grants/"+pending.ID+"/commands", e.bot, cmd), http.StatusConflict, apierr.CodeConflict, "-")
	wantError(t, e.do("POST", "/v1/grants/"+active.ID+"/commands", e.bot, httpapi.CommandInput{}), http.StatusBadRequest, apierr.CodeInvalid, "argv")
	wantError(t, e.do("POST", "/v1/grants/"+active.ID+"/commands", e.bot, httpapi.CommandInput{Argv: []string{strings.Repeat("x", 5000)}}), http.StatusBadRequest, apierr.CodeInvalid, "argv")

	var hist httpapi.HistoryResponse
	e.do("GET", "/v1/grants/"+active.ID+"/history", e.alice, nil).decode(t, &hist)
	n := 0
	for _, ev := range hist.Events {
		if ev.Type == "grant.command" {
			n++
			var b bytes.Buffer
			if err := json.Compact(&b, ev.Entry); err != nil {
				t.Fatal(err)
			}
			if strings.Contains(b.String(), e.bot) {
				t.Errorf("the caller's API key is in the log: %s", ev.Entry)
			}
			if n == 1 && !strings.Contains(b.String(), `"argv":["aws","s3","ls"]`) || n == 2 && !strings.Contains(b.String(), `"argv":["env","K=[REDACTED]","aws","s3","ls"]`) || !strings.Contains(b.String(), `"actor":"log-triage-bot"`) {
				t.Errorf("command entry %d: %s", n, ev.Entry)
			}
		}
	}
	if n != 2 {
		t.Fatalf("%d command entries, want 2", n)
	}
}

// TestCommandSecretsNotRecorded: a command line holding the grant's own
// secret, or a connection string's password, is recorded without them.
func TestCommandSecretsNotRecorded(t *testing.T) {
	e := newEnv(t)
	active := e.request(e.bot, autoScope, "10m")
	var cr struct {
		SecretAccessKey string `json:"secret_access_key"`
		SessionToken    string `json:"session_token"`
	}
	e.do("POST", "/v1/grants/"+active.ID+"/credentials", e.bot, nil).decode(t, &cr)
	if cr.SecretAccessKey == "" || cr.SessionToken == "" {
		t.Fatalf("credentials: %+v", cr)
	}
	cmd := httpapi.CommandInput{Argv: []string{"sh", "-c",
		"AWS_SESSION_TOKEN=" + cr.SessionToken + " aws s3 ls --secret " + cr.SecretAccessKey + " && psql postgresql://admin:hunter2@db/app"}}
	if r := e.do("POST", "/v1/grants/"+active.ID+"/commands", e.bot, cmd); r.status != http.StatusOK {
		t.Fatalf("recording a command: %d %s", r.status, r.body)
	}
	var hist httpapi.HistoryResponse
	e.do("GET", "/v1/grants/"+active.ID+"/history", e.alice, nil).decode(t, &hist)
	found := false
	for _, ev := range hist.Events {
		if ev.Type != "grant.command" {
			continue
		}
		found = true
		s := string(ev.Entry)
		for _, secret := range []string{cr.SecretAccessKey, cr.SessionToken, "hunter2"} {
			if strings.Contains(s, secret) {
				t.Errorf("the recorded command keeps a secret: %s", s)
			}
		}
		if !strings.Contains(s, "postgresql://admin:[REDACTED]@db/app") || !strings.Contains(s, "aws s3 ls") {
			t.Errorf("the recorded command lost its shape: %s", s)
		}
	}
	if !found {
		t.Fatal("no grant.command entry")
	}
}
