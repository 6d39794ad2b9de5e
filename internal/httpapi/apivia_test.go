package httpapi_test

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"

	"github.com/airlock-dev/airlock/internal/httpapi"
)

// TestDecisionsRecordAPIChannel: an approve, deny or revoke made through
// the API records "via": "api" on the approval and in its log entry, as
// the console's and Slack's record theirs; before, an API decision
// recorded none. The log still verifies.
func TestDecisionsRecordAPIChannel(t *testing.T) {
	e := newEnv(t)
	// via reads the "via" of the grant's entry of type typ: its own, or
	// its approval's (a denial carries the approval).
	via := func(id, typ string) string {
		t.Helper()
		for _, ev := range e.history(id) {
			if ev.Type != typ {
				continue
			}
			var d struct {
				Data struct {
					Via      string `json:"via"`
					Approval struct {
						Via string `json:"via"`
					} `json:"approval"`
				} `json:"data"`
			}
			if err := json.Unmarshal(ev.Entry, &d); err != nil {
				t.Fatal(err)
			}
			return d.Data.Via + d.Data.Approval.Via
		}
		t.Fatalf("grant %s has no %s entry", id, typ)
		return ""
	}
	approved := e.request(e.bot, humanScope, "30m")
	r := e.do("POST", "/v1/grants/"+approved.ID+"/approve", e.alice, httpapi.DecisionInput{Comment: "ok"})
	if r.status != http.StatusOK {
		t.Fatalf("approve: %d %s", r.status, r.body)
	}
	var g httpapi.GrantResponse
	r.decode(t, &g)
	if n := len(g.Grant.Approvals); n != 1 || g.Grant.Approvals[0].Via != "api" {
		t.Errorf("the approval: %+v, want via api", g.Grant.Approvals)
	}
	if v := via(approved.ID, "grant.approved"); v != "api" {
		t.Errorf("grant.approved via %q, want api", v)
	}
	if r := e.do("POST", "/v1/grants/"+approved.ID+"/revoke", e.alice, httpapi.DecisionInput{Reason: "done"}); r.status != http.StatusOK {
		t.Fatalf("revoke: %d %s", r.status, r.body)
	}
	if v := via(approved.ID, "grant.revoked"); v != "api" {
		t.Errorf("grant.revoked via %q, want api", v)
	}
	denied := e.request(e.bot, humanScope, "30m")
	if r := e.do("POST", "/v1/grants/"+denied.ID+"/deny", e.alice, httpapi.DecisionInput{Reason: "no"}); r.status != http.StatusOK {
		t.Fatalf("deny: %d %s", r.status, r.body)
	}
	if v := via(denied.ID, "grant.denied"); v != "api" {
		t.Errorf("grant.denied via %q, want api", v)
	}
	if rep, err := e.srv.Verify(context.Background()); err != nil || !rep.OK {
		t.Fatalf("verify: %+v, %v", rep, err)
	}
}

// history is grant id's log entries, as alice reads them.
func (e *env) history(id string) []httpapi.Event {
	e.t.Helper()
	r := e.do("GET", "/v1/grants/"+id+"/history", e.alice, nil)
	if r.status != http.StatusOK {
		e.t.Fatalf("history: %d %s", r.status, r.body)
	}
	var h httpapi.HistoryResponse
	r.decode(e.t, &h)
	return h.Events
}
