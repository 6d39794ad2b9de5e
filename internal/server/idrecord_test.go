package server_test

import (
	"bytes"
	"database/sql"
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"slices"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/airlock-dev/airlock/internal/httpapi"
	"github.com/airlock-dev/airlock/internal/model"
	"github.com/airlock-dev/airlock/internal/server"
)

// TestIdentityRecordShowsAuthMethods: the identity record says how each
// identity may authenticate, a key or its workload token binding, in the
// listing, on whoami and on a new agent.
func TestIdentityRecordShowsAuthMethods(t *testing.T) {
	e := newIDEnv(t, "record")
	c := from("127.0.0.1")
	binding := "oidc:" + e.iss.URL + " system:serviceaccount:ops:log-reader kubernetes.io/namespace=ops"

	st, body := e.call(c, "GET", "/v1/identities", e.alice, nil)
	var list httpapi.IdentitiesResponse
	if st != http.StatusOK || json.Unmarshal(body, &list) != nil {
		t.Fatalf("identities: %d %s", st, body)
	}
	want := map[string][]string{"log-triage-bot": {"key"}, "k8s-bot": {binding}, "alice": {"key"}}
	for _, id := range list.Identities {
		if w, ok := want[id.Name]; ok {
			if !slices.Equal(id.AuthMethods, w) {
				t.Errorf("%s auth_methods = %q, want %q", id.Name, id.AuthMethods, w)
			}
			delete(want, id.Name)
		}
	}
	if len(want) > 0 {
		t.Fatalf("identities missing from the listing: %v (%s)", want, body)
	}

	k := e.iss.AddKey(jose.ES256)
	now := time.Now()
	tok := e.iss.Sign(k, map[string]any{
		"iss": e.iss.URL, "aud": "airlock", "sub": "system:serviceaccount:ops:log-reader",
		"iat": now.Unix(), "exp": now.Add(10 * time.Minute).Unix(),
		"kubernetes.io": map[string]any{"namespace": "ops"},
	})
	for tk, w := range map[string][]string{tok: {binding}, e.bot: {"key"}} {
		st, body := e.call(c, "GET", "/v1/whoami", tk, nil)
		var who model.Identity
		if st != http.StatusOK || json.Unmarshal(body, &who) != nil {
			t.Fatalf("whoami: %d %s", st, body)
		}
		if !slices.Equal(who.AuthMethods, w) {
			t.Errorf("whoami %s auth_methods = %q, want %q", who.Name, who.AuthMethods, w)
		}
	}

	st, body = e.call(c, "POST", "/v1/agents", e.alice, map[string]any{"name": "new-bot", "owner": "sre-leads"})
	var added httpapi.AgentResponse
	if st != http.StatusCreated || json.Unmarshal(body, &added) != nil {
		t.Fatalf("add agent: %d %s", st, body)
	}
	if !slices.Equal(added.Identity.AuthMethods, []string{"key"}) {
		t.Errorf("new agent auth_methods = %q", added.Identity.AuthMethods)
	}
}

// callUA is e.call with a User-Agent, so each call's fingerprint is its own.
func (e *idEnv) callUA(ua, method, path, tok string, body any) (int, []byte) {
	e.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, e.api+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("User-Agent", ua)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := from("127.0.0.1").Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, out
}

// entryInstance returns the instance recorded on grant id's log entry of
// type typ.
func (e *idEnv) entryInstance(id, typ string) *model.Instance {
	e.t.Helper()
	st, body := e.call(from("127.0.0.1"), "GET", "/v1/grants/"+id+"/history", e.alice, nil)
	var h httpapi.HistoryResponse
	if st != http.StatusOK || json.Unmarshal(body, &h) != nil {
		e.t.Fatalf("history: %d %s", st, body)
	}
	for _, ev := range h.Events {
		if ev.Type == typ {
			var d struct {
				Data struct {
					Instance *model.Instance `json:"instance"`
				} `json:"data"`
			}
			if err := json.Unmarshal(ev.Entry, &d); err != nil {
				e.t.Fatal(err)
			}
			return d.Data.Instance
		}
	}
	e.t.Fatalf("grant %s has no %s entry: %s", id, typ, body)
	return nil
}

// TestStateChangingCallsRecordInstance: approve, deny, revoke, end, cancel
// and a recorded command each log the caller's instance fingerprint, and
// the log still derives the review rows (audit verify).
func TestStateChangingCallsRecordInstance(t *testing.T) {
	e := newIDEnv(t, "record")
	pending := func() string {
		st, body := e.callUA("agent-request", "POST", "/v1/grants", e.bot, map[string]any{
			"target": "aws-prod", "scope": []string{"s3:GetObject arn:aws:s3:::logs/*"}, "duration": "30m", "reason": "INC-2",
		})
		var g httpapi.GrantResponse
		if st != http.StatusCreated || json.Unmarshal(body, &g) != nil || g.Grant.Status != model.Pending {
			t.Fatalf("request: %d %s", st, body)
		}
		return g.Grant.ID
	}
	do := func(ua, path, tok string, body any) {
		t.Helper()
		if st, out := e.callUA(ua, "POST", path, tok, body); st != http.StatusOK {
			t.Fatalf("%s: %d %s", path, st, out)
		}
	}
	check := func(id, typ, ua string) {
		t.Helper()
		in := e.entryInstance(id, typ)
		if in == nil || in.UserAgent != ua || in.IP != "127.0.0.1" {
			t.Errorf("%s of %s: instance %+v, want user agent %q from 127.0.0.1", typ, id, in, ua)
		}
	}

	approved := pending()
	do("alice-approve", "/v1/grants/"+approved+"/approve", e.alice, map[string]string{"comment": "ok"})
	check(approved, "grant.approved", "alice-approve")
	do("bot-command", "/v1/grants/"+approved+"/commands", e.bot, map[string]any{"argv": []string{"aws", "s3", "ls"}})
	check(approved, "grant.command", "bot-command")
	do("alice-revoke", "/v1/grants/"+approved+"/revoke", e.alice, map[string]string{"reason": "done"})
	check(approved, "grant.revoked", "alice-revoke")

	denied := pending()
	do("alice-deny", "/v1/grants/"+denied+"/deny", e.alice, map[string]string{"reason": "no"})
	check(denied, "grant.denied", "alice-deny")

	cancelled := pending()
	do("bot-cancel", "/v1/grants/"+cancelled+"/end", e.bot, nil)
	check(cancelled, "grant.cancelled", "bot-cancel")

	ended := e.request(from("127.0.0.1"), e.bot)
	do("bot-end", "/v1/grants/"+ended.ID+"/end", e.bot, nil)
	check(ended.ID, "grant.ended", "bot-end")

	// Adding and disabling an agent: identity events, not a grant's.
	if st, out := e.callUA("alice-add", "POST", "/v1/agents", e.alice, map[string]any{"name": "tmp-bot", "owner": "sre-leads"}); st != http.StatusCreated {
		t.Fatalf("add agent: %d %s", st, out)
	}
	do("alice-disable", "/v1/agents/tmp-bot/disable", e.alice, map[string]string{"reason": "gone"})
	db, err := sql.Open("sqlite", filepath.Join(e.dataDir, server.DatabaseFile))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for typ, ua := range map[string]string{"identity.added": "alice-add", "identity.disabled": "alice-disable"} {
		var got sql.NullString
		err := db.QueryRow(`SELECT json_extract(CAST(data AS TEXT), '$.data.instance.user_agent') FROM log_entries
			WHERE type = ? AND json_extract(CAST(data AS TEXT), '$.data.name') = 'tmp-bot'`, typ).Scan(&got)
		if err != nil || got.String != ua {
			t.Errorf("%s: instance user agent %q (%v), want %q", typ, got.String, err, ua)
		}
	}

	// The extra field changes nothing the review derives from the log.
	e.verify()
}
