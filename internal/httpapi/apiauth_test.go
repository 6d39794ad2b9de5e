package httpapi_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/airlock-dev/airlock/internal/authn"
	"github.com/airlock-dev/airlock/internal/httpapi"
	"github.com/airlock-dev/airlock/internal/model"
	"github.com/airlock-dev/airlock/internal/review"
)

// TestDecisionsRecordCredential: an approve, deny or revoke made through
// the API records which credential made it, "auth": {"method": "api_key",
// "key_id": …}, on the approval, the grant (ended_auth) and their log
// entries; the review shows it. Before, the record said "via": "api" and
// nothing of which key: an auditor could not tell a person's key from
// their console session. Neither the key nor its hash is written, and the
// record still agrees with the log.
func TestDecisionsRecordCredential(t *testing.T) {
	e := newEnv(t)
	want := model.SignIn{Method: model.SignInAPIKey, KeyID: authn.KeyID(authn.HashKey(e.alice))}
	if !strings.HasPrefix(want.KeyID, "k_") || len(want.KeyID) != 18 {
		t.Fatalf("key id %q", want.KeyID)
	}
	// entryAuth reads the "auth" of the grant's entry of type typ, and
	// its approval's (a denial carries both).
	entryAuth := func(id, typ string) (own, approval *model.SignIn) {
		t.Helper()
		for _, ev := range e.history(id) {
			for _, secret := range []string{e.alice, authn.HashKey(e.alice), authn.HashKey(e.alice)[:16]} {
				if bytes.Contains(ev.Entry, []byte(secret)) {
					t.Errorf("%s entry holds the key or its hash: %s", ev.Type, ev.Entry)
				}
			}
			if ev.Type != typ {
				continue
			}
			var d struct {
				Data struct {
					Auth     *model.SignIn `json:"auth"`
					Approval struct {
						Auth *model.SignIn `json:"auth"`
					} `json:"approval"`
				} `json:"data"`
			}
			if err := json.Unmarshal(ev.Entry, &d); err != nil {
				t.Fatal(err)
			}
			return d.Data.Auth, d.Data.Approval.Auth
		}
		t.Fatalf("grant %s has no %s entry", id, typ)
		return nil, nil
	}
	is := func(what string, got *model.SignIn) {
		t.Helper()
		if got == nil || *got != want {
			t.Errorf("%s: auth %+v, want %+v", what, got, want)
		}
	}
	get := func(id string) model.Grant {
		t.Helper()
		var g httpapi.GrantResponse
		e.do("GET", "/v1/grants/"+id, e.alice, nil).decode(t, &g)
		if len(g.Grant.LogMismatch) > 0 {
			t.Errorf("grant %s differs from its log: %v", id, g.Grant.LogMismatch)
		}
		return g.Grant
	}

	approved := e.request(e.bot, humanScope, "30m")
	if r := e.do("POST", "/v1/grants/"+approved.ID+"/approve", e.alice, httpapi.DecisionInput{Comment: "ok"}); r.status != http.StatusOK {
		t.Fatalf("approve: %d %s", r.status, r.body)
	}
	// grant.approved's data is the approval itself.
	own, _ := entryAuth(approved.ID, "grant.approved")
	is("grant.approved", own)
	if r := e.do("POST", "/v1/grants/"+approved.ID+"/revoke", e.alice, httpapi.DecisionInput{Reason: "done"}); r.status != http.StatusOK {
		t.Fatalf("revoke: %d %s", r.status, r.body)
	}
	own, _ = entryAuth(approved.ID, "grant.revoked")
	is("grant.revoked", own)
	g := get(approved.ID)
	is("the approval", g.Approvals[0].Auth)
	is("the revoke (ended_auth)", g.EndedAuth)
	row := review.FromGrant(g)
	if row.ApprovedAuth != "api_key "+want.KeyID || row.EndedAuth != "api_key "+want.KeyID {
		t.Errorf("review row: approved_auth %q, ended_auth %q; want api_key %s", row.ApprovedAuth, row.EndedAuth, want.KeyID)
	}

	denied := e.request(e.bot, humanScope, "30m")
	if r := e.do("POST", "/v1/grants/"+denied.ID+"/deny", e.alice, httpapi.DecisionInput{Reason: "no"}); r.status != http.StatusOK {
		t.Fatalf("deny: %d %s", r.status, r.body)
	}
	own, a := entryAuth(denied.ID, "grant.denied")
	is("grant.denied", own)
	is("grant.denied's approval", a)
	if row := review.FromGrant(get(denied.ID)); row.EndedAuth != "api_key "+want.KeyID || row.ApprovedAuth != "" {
		t.Errorf("review row of the denial: ended_auth %q, approved_auth %q", row.EndedAuth, row.ApprovedAuth)
	}
}
