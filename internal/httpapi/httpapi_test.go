package httpapi_test

import (
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/auditlog"
	"github.com/airlock-dev/airlock/internal/authn"
	"github.com/airlock-dev/airlock/internal/httpapi"
	"github.com/airlock-dev/airlock/internal/model"
)

func TestHealthzNeedsNoKey(t *testing.T) {
	e := newEnv(t)
	r := e.do("GET", "/healthz", "", nil)
	if r.status != http.StatusOK || !strings.Contains(string(r.body), `"ok"`) {
		t.Fatalf("GET /healthz without a key: %d %s", r.status, r.body)
	}
}

// TestProbesAnswerOneLine: /healthz and /readyz print one line of JSON,
// as docs/replicas.md shows; /healthz printed indented JSON over three
// lines.
func TestProbesAnswerOneLine(t *testing.T) {
	e := newEnv(t)
	for path, want := range map[string]string{
		"/healthz": `{"status":"ok"}` + "\n",
		"/readyz":  `{"status":"ready","checks":{"grants":"ok","log":"ok","store":"ok"}}` + "\n",
	} {
		if r := e.do("GET", path, "", nil); r.status != http.StatusOK || string(r.body) != want {
			t.Errorf("GET %s: %d %q, want 200 %q", path, r.status, r.body, want)
		}
	}
}

func TestAuthentication(t *testing.T) {
	e := newEnv(t)

	// An agent added through the API, then disabled: its key must stop
	// working at once.
	r := e.do("POST", "/v1/agents", e.alice, httpapi.AgentInput{Name: "temp-bot", Owner: "sre-leads"})
	if r.status != http.StatusCreated {
		t.Fatalf("POST /v1/agents: status %d, want 201: %s", r.status, r.body)
	}
	var added httpapi.AgentResponse
	r.decode(t, &added)
	if added.Key == "" || added.Identity.Name != "temp-bot" || added.Identity.Kind != model.Agent {
		t.Fatalf("POST /v1/agents: %s", r.body)
	}
	if r := e.do("GET", "/v1/whoami", added.Key, nil); r.status != http.StatusOK {
		t.Fatalf("new agent's key before disabling: status %d: %s", r.status, r.body)
	}
	r = e.do("POST", "/v1/agents/temp-bot/disable", e.alice, httpapi.DecisionInput{Reason: "test over"})
	if r.status != http.StatusOK {
		t.Fatalf("disable: status %d: %s", r.status, r.body)
	}
	var disabled httpapi.IdentityResponse
	r.decode(t, &disabled)
	if !disabled.Identity.Disabled {
		t.Fatalf("disable: identity not disabled: %s", r.body)
	}

	wrongKey := "alk_" + strings.Repeat("Zq9", 14) + "x" // well-formed, unknown
	tests := []struct {
		name         string
		header       string // Authorization; "" sends none
		method, path string
	}{
		{"no header", "", "GET", "/v1/whoami"},
		{"no header, request", "", "POST", "/v1/grants"},
		{"no header, approve", "", "POST", "/v1/grants/g_aaaaaaaaaaaaaaaaaaaa/approve"},
		{"empty bearer", "Bearer ", "GET", "/v1/whoami"},
		{"wrong scheme", "Basic " + e.bot, "GET", "/v1/whoami"},
		{"wrong key", "Bearer " + wrongKey, "GET", "/v1/whoami"},
		{"wrong key on a grant", "Bearer " + wrongKey, "GET", "/v1/grants/g_aaaaaaaaaaaaaaaaaaaa"},
		{"wrong key, request", "Bearer " + wrongKey, "POST", "/v1/grants"},
		{"a key's hash instead of the key", "Bearer " + authn.HashKey(e.bot), "GET", "/v1/grants"},
		{"disabled agent", "Bearer " + added.Key, "GET", "/v1/whoami"},
		{"disabled agent, review query", "Bearer " + added.Key, "GET", "/v1/grants"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequest(tt.method, e.url+tt.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			if tt.header != "" {
				req.Header.Set("Authorization", tt.header)
			}
			r := e.send(req)
			wantError(t, r, http.StatusUnauthorized, "unauthenticated", "")
		})
	}

	// Every failed attempt is logged, with where it came from, and no key
	// (valid or not) ever appears in the logs.
	logs := e.logs.String()
	if n := strings.Count(logs, "API call without a key"); n != 5 {
		t.Errorf("%d log lines for calls without a key, want 5:\n%s", n, logs)
	}
	if n := strings.Count(logs, "API call with an unknown or disabled key"); n != 6 {
		t.Errorf("%d log lines for calls with a bad key, want 6:\n%s", n, logs)
	}
	if !strings.Contains(logs, "remote=127.0.0.1:") {
		t.Errorf("failed attempts are logged without the caller's address:\n%s", logs)
	}
	keys := map[string]string{"wrong key": wrongKey, "disabled key": added.Key, "bot's key": e.bot, "web-bot's key": e.webBot, "alice's key": e.alice}
	for name, key := range keys {
		if strings.Contains(logs, key) {
			t.Errorf("the logs contain the %s:\n%s", name, logs)
		}
		// Nor a recognisable part of it.
		if strings.Contains(logs, key[4:20]) {
			t.Errorf("the logs contain part of the %s:\n%s", name, logs)
		}
	}
}

func TestRequestValidation(t *testing.T) {
	e := newEnv(t)
	good := func(mod func(m map[string]any)) map[string]any {
		m := map[string]any{"target": "aws-prod", "scope": []string{autoScope}, "duration": "10m", "reason": "triage INC-1234"}
		mod(m)
		return m
	}
	tests := []struct {
		name string
		body any // map → JSON; string → verbatim
		// fields are the acceptable values of error.field (one, usually).
		fields []string
	}{
		{"unknown target", good(func(m map[string]any) { m["target"] = "aws-staging" }), []string{"target"}},
		{"missing target", good(func(m map[string]any) { delete(m, "target") }), []string{"target"}},
		// An empty scope has no statement [0] to blame; "scope" would be
		// the more precise answer, and either is accepted.
		{"empty scope", good(func(m map[string]any) { m["scope"] = []string{} }), []string{"scope", "scope[0]"}},
		{"missing scope", good(func(m map[string]any) { delete(m, "scope") }), []string{"scope", "scope[0]"}},
		{"malformed action", good(func(m map[string]any) {
			m["scope"] = []string{autoScope, "s3GetObject arn:aws:s3:::logs/app/*"}
		}), []string{"scope[1]"}},
		{"action with spaces", good(func(m map[string]any) {
			m["scope"] = []string{"s3:GetObject, s3:ListBucket arn:aws:s3:::logs/app/*"}
		}), []string{"scope[0]"}},
		{"star in the middle", good(func(m map[string]any) {
			m["scope"] = []string{"s3:GetObject arn:aws:s3:::logs/*/app"}
		}), []string{"scope[0]"}},
		{"postgres action on aws", good(func(m map[string]any) {
			m["scope"] = []string{"pg:select arn:aws:s3:::logs/app/*"}
		}), []string{"scope[0]"}},
		{"duration 0", good(func(m map[string]any) { m["duration"] = "0" }), []string{"duration"}},
		{"duration 0s", good(func(m map[string]any) { m["duration"] = "0s" }), []string{"duration"}},
		{"negative duration", good(func(m map[string]any) { m["duration"] = "-5m" }), []string{"duration"}},
		{"duration over the cap", good(func(m map[string]any) { m["duration"] = "13h" }), []string{"duration"}},
		{"duration not a duration", good(func(m map[string]any) { m["duration"] = "abc" }), []string{"duration"}},
		{"duration without unit", good(func(m map[string]any) { m["duration"] = "600" }), []string{"duration"}},
		{"missing duration", good(func(m map[string]any) { delete(m, "duration") }), []string{"duration"}},
		{"missing reason", good(func(m map[string]any) { delete(m, "reason") }), []string{"reason"}},
		{"blank reason", good(func(m map[string]any) { m["reason"] = "  \t " }), []string{"reason"}},
		{"reason with control characters", good(func(m map[string]any) { m["reason"] = "a\x1b[2Jb" }), []string{"reason"}},
		{"reason too long", good(func(m map[string]any) { m["reason"] = strings.Repeat("r", 1025) }), []string{"reason"}},
		{"extends an unknown grant", good(func(m map[string]any) { m["extends"] = "g_nosuchgrantxxxxxxxxx" }), []string{"extends"}},
		{"unknown field", good(func(m map[string]any) { m["scopes"] = []string{autoScope} }), []string{"scopes"}},
		{"unknown field, typo of duration", good(func(m map[string]any) { m["durration"] = "10m" }), []string{"durration"}},
		{"scope as a string", good(func(m map[string]any) { m["scope"] = autoScope }), []string{"scope"}},
		{"duration as a number", good(func(m map[string]any) { m["duration"] = 600 }), []string{"duration"}},
		{"scope item as a number", good(func(m map[string]any) { m["scope"] = []any{1} }), []string{"scope"}},
		{"malformed JSON", `{"target":"aws-prod",`, []string{"body"}},
		{"not JSON", `target=aws-prod`, []string{"body"}},
		{"JSON array", `[]`, []string{"body"}},
		{"JSON string", `"aws-prod"`, []string{"body"}},
		{"empty body", "", []string{"body"}},
		{"trailing data", `{"target":"aws-prod"} {"target":"aws-prod"}`, []string{"body"}},
		// Go's decoder would store U+FFFD for each invalid byte: the
		// record would not hold what was sent.
		{"reason not UTF-8", `{"target":"aws-prod","scope":["` + autoScope + `"],"duration":"10m","reason":"triage ` + "\xff\xfe" + `"}`, []string{"body"}},
		// Go's decoder takes the last of two keys, another parser the
		// first: such a body means different things to different readers.
		{"duplicate key", `{"target":"aws-prod","scope":["` + autoScope + `"],"duration":"10m","reason":"a","reason":"b"}`, []string{"reason"}},
		{"duplicate key in another case", `{"target":"aws-prod","Target":"aws-prod","scope":["` + autoScope + `"],"duration":"10m","reason":"a"}`, []string{"Target"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.do("POST", "/v1/grants", e.bot, tt.body)
			if r.status != http.StatusBadRequest {
				t.Fatalf("status %d, want 400: %s", r.status, r.body)
			}
			er := r.errBody(t)
			if er.Error.Code != "invalid_argument" {
				t.Errorf("code %q, want invalid_argument", er.Error.Code)
			}
			if !slices.Contains(tt.fields, er.Error.Field) {
				t.Errorf("field %q, want one of %q (message %q)", er.Error.Field, tt.fields, er.Error.Message)
			}
		})
	}
	if gs := e.grants(); len(gs) != 0 {
		t.Errorf("invalid requests created %d grants: %+v", len(gs), gs)
	}
	// The same body, valid, does create one (so the cases above failed for
	// the reason they name, not for something they share).
	if g := e.request(e.bot, autoScope, "10m"); g.Status != model.Active {
		t.Errorf("valid request: status %s, want active", g.Status)
	}
	if gs := e.grants(); len(gs) != 1 {
		t.Errorf("%d grants after one valid request, want 1", len(gs))
	}
}

func TestDecisionValidation(t *testing.T) {
	e := newEnv(t)
	pending := e.request(e.bot, humanScope, "30m")
	if pending.Status != model.Pending {
		t.Fatalf("status %s, want pending", pending.Status)
	}
	tests := []struct {
		name, verb string
		body       any
		field      string
	}{
		{"deny without reason", "deny", nil, "reason"},
		{"deny with blank reason", "deny", httpapi.DecisionInput{Reason: " "}, "reason"},
		{"approve with unknown field", "approve", `{"comment":"ok","approved":true}`, "approved"},
		{"approve with malformed JSON", "approve", `{"comment":`, "body"},
		{"approve with comment as a number", "approve", `{"comment":5}`, "comment"},
		{"approve with comment too long", "approve", httpapi.DecisionInput{Comment: strings.Repeat("c", 1025)}, "comment"},
		// The field the verb does not take was silently dropped.
		{"approve with a reason", "approve", httpapi.DecisionInput{Reason: "looks fine"}, "reason"},
		{"deny with a reason and a comment", "deny", httpapi.DecisionInput{Reason: "no", Comment: "see ticket"}, "comment"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.do("POST", "/v1/grants/"+pending.ID+"/"+tt.verb, e.alice, tt.body)
			wantError(t, r, http.StatusBadRequest, "invalid_argument", tt.field)
		})
	}
	r := e.do("GET", "/v1/grants/"+pending.ID, e.alice, nil)
	var got httpapi.GrantResponse
	r.decode(t, &got)
	if got.Grant.Status != model.Pending {
		t.Errorf("after invalid decisions: status %s, want pending", got.Grant.Status)
	}
}

func TestReviewQueryValidation(t *testing.T) {
	e := newEnv(t)
	tests := []struct {
		name  string
		query string
		field string
	}{
		{"day not a date", "day=yesterday", "day"},
		{"day out of range", "day=2026-13-01", "day"},
		{"day with a time", "day=2026-11-25T00:00:00Z", "day"},
		{"day and since", "day=2026-11-25&since=2026-11-24", "day"},
		{"day and until", "day=2026-11-25&until=2026-11-26", "day"},
		{"since not a time", "since=last+week", "since"},
		{"since without zone", "since=2026-11-25T14:00:00", "since"},
		{"until not a time", "until=soon", "until"},
		// Relative times: a positive Go duration (days too), bounded.
		{"since a negative duration", "since=-1h", "since"},
		{"since a zero duration", "since=0s", "since"},
		{"since in weeks", "since=2w", "since"},
		{"since more than ten years", "since=4000d", "since"},
		{"until relative not after since", "since=1h&until=2h", "until"},
		{"until relative equal to since", "since=90m&until=1h30m", "until"},
		{"status unknown", "status=approved", "status"},
		{"status one of several unknown", "status=active,bogus", "status"},
		{"status repeated, one unknown", "status=active&status=ACTIVE", "status"},
		{"limit not a number", "limit=ten", "limit"},
		{"limit negative", "limit=-1", "limit"},
		{"until before since", "since=2026-11-25T14:00:00Z&until=2026-11-25T13:00:00Z", "until"},
		{"until equal to since", "since=2026-11-25&until=2026-11-25", "until"},
		// Answered for the first alone, before: a review that silently
		// left the second out.
		{"account repeated", "account=111122223333&account=444455556666", "account"},
		{"day repeated", "day=2026-11-25&day=2026-11-26", "day"},
		{"limit repeated", "limit=1&limit=5", "limit"},
		// A typo was ignored: the review answered for every account.
		{"unknown parameter", "acount=111122223333", "acount"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, key := range []string{e.alice, e.bot} {
				r := e.do("GET", "/v1/grants?"+tt.query, key, nil)
				wantError(t, r, http.StatusBadRequest, "invalid_argument", tt.field)
			}
		})
	}

	// Well-formed queries are accepted.
	for _, q := range []string{
		"", "day=2026-11-25", "since=2026-11-25T14:00:00Z", "until=2026-11-25", "since=2026-11-25&until=2026-11-26T00:00:00.5-01:00",
		"since=1h", "since=90m", "since=7d", "since=1d12h&until=1h", "since=2026-11-25&until=1h", "until=30m",
		"status=active,pending&status=expired", "limit=1000", "limit=10", "account=111122223333&target=aws-prod&identity=alice",
	} {
		r := e.do("GET", "/v1/grants?"+q, e.alice, nil)
		if r.status != http.StatusOK {
			t.Errorf("GET /v1/grants?%s: status %d: %s", q, r.status, r.body)
			continue
		}
		var out httpapi.ListResponse
		r.decode(t, &out)
		if out.Grants == nil {
			t.Errorf("GET /v1/grants?%s: grants is null, want []: %s", q, r.body)
		}
	}
}

func TestPermissions(t *testing.T) {
	e := newEnv(t)
	active := e.request(e.bot, autoScope, "10m")
	pending := e.request(e.bot, humanScope, "30m")
	denied := e.request(e.webBot, autoScope, "10m") // no policy permits web-team
	for _, c := range []struct {
		g    model.Grant
		want model.GrantStatus
	}{{active, model.Active}, {pending, model.Pending}, {denied, model.Denied}} {
		if c.g.Status != c.want {
			t.Fatalf("grant %s: status %s, want %s", c.g.ID, c.g.Status, c.want)
		}
	}

	list := func(key, query string) []model.Grant {
		t.Helper()
		r := e.do("GET", "/v1/grants?"+query, key, nil)
		if r.status != http.StatusOK {
			t.Fatalf("GET /v1/grants?%s: status %d: %s", query, r.status, r.body)
		}
		var out httpapi.ListResponse
		r.decode(t, &out)
		return out.Grants
	}
	ids := func(gs []model.Grant) []string {
		var out []string
		for _, g := range gs {
			out = append(out, g.ID)
		}
		return out
	}

	t.Run("agent lists only its own grants", func(t *testing.T) {
		gs := list(e.bot, "")
		if len(gs) != 2 {
			t.Errorf("log-triage-bot sees %v, want its 2 grants", ids(gs))
		}
		for _, g := range gs {
			if g.Identity != "log-triage-bot" {
				t.Errorf("log-triage-bot sees %s of %s", g.ID, g.Identity)
			}
		}
		if gs := list(e.bot, "identity=log-triage-bot&status=pending"); len(gs) != 1 || gs[0].ID != pending.ID {
			t.Errorf("own pending grants: %v, want [%s]", ids(gs), pending.ID)
		}
		if gs := list(e.webBot, ""); len(gs) != 1 || gs[0].ID != denied.ID {
			t.Errorf("web-bot sees %v, want [%s]", ids(gs), denied.ID)
		}
		if gs := list(e.webBot, "account=111122223333&status=active,pending"); len(gs) != 0 {
			t.Errorf("web-bot filtering by account sees %v, want none", ids(gs))
		}
	})
	t.Run("agent asking for another identity is refused", func(t *testing.T) {
		for _, who := range []string{"web-bot", "alice"} {
			r := e.do("GET", "/v1/grants?identity="+who, e.bot, nil)
			wantError(t, r, http.StatusForbidden, "permission_denied", "-")
		}
	})
	t.Run("person lists every grant", func(t *testing.T) {
		if gs := list(e.alice, ""); len(gs) != 3 {
			t.Errorf("alice sees %v, want 3 grants", ids(gs))
		}
		if gs := list(e.alice, "identity=web-bot"); len(gs) != 1 || gs[0].ID != denied.ID {
			t.Errorf("alice, identity=web-bot: %v", ids(gs))
		}
	})

	t.Run("agent cannot see another agent's grant", func(t *testing.T) {
		for _, c := range []struct{ method, path string }{
			{"GET", "/v1/grants/" + active.ID},
			{"GET", "/v1/grants/" + active.ID + "?wait=1s"},
			{"GET", "/v1/grants/" + active.ID + "/history"},
			{"GET", "/v1/grants/" + active.ID + "/sessions"},
			{"POST", "/v1/grants/" + active.ID + "/credentials"},
			{"GET", "/v1/grants/" + pending.ID},
		} {
			r := e.do(c.method, c.path, e.webBot, nil)
			if r.status != http.StatusNotFound {
				t.Errorf("web-bot %s %s: status %d, want 404: %s", c.method, c.path, r.status, r.body)
				continue
			}
			wantError(t, r, http.StatusNotFound, "not_found", "-")
			if strings.Contains(string(r.body), "log-triage-bot") {
				t.Errorf("web-bot %s %s: the answer names the holder: %s", c.method, c.path, r.body)
			}
		}
		// The holder and a person can.
		for _, key := range []string{e.bot, e.alice} {
			for _, p := range []string{"", "/history", "/sessions"} {
				if r := e.do("GET", "/v1/grants/"+active.ID+p, key, nil); r.status != http.StatusOK {
					t.Errorf("GET /v1/grants/%s%s: status %d: %s", active.ID, p, r.status, r.body)
				}
			}
		}
	})

	t.Run("agent cannot decide", func(t *testing.T) {
		for _, c := range []struct {
			verb string
			id   string
			body httpapi.DecisionInput
		}{
			{"approve", pending.ID, httpapi.DecisionInput{Comment: "lgtm"}},
			{"deny", pending.ID, httpapi.DecisionInput{Reason: "no"}},
			{"revoke", active.ID, httpapi.DecisionInput{Reason: "no"}},
		} {
			for _, key := range []string{e.bot, e.webBot} {
				r := e.do("POST", "/v1/grants/"+c.id+"/"+c.verb, key, c.body)
				wantError(t, r, http.StatusForbidden, "permission_denied", "-")
			}
		}
		if gs := list(e.alice, "status=pending"); len(gs) != 1 {
			t.Errorf("pending after agents' attempts: %v, want [%s]", ids(gs), pending.ID)
		}
		if gs := list(e.alice, "status=active"); len(gs) != 1 {
			t.Errorf("active after agents' attempts: %v, want [%s]", ids(gs), active.ID)
		}
	})

	t.Run("agent cannot use people's endpoints", func(t *testing.T) {
		for _, c := range []struct {
			method, path string
			body         any
		}{
			{"GET", "/v1/pending", nil},
			{"GET", "/v1/identities", nil},
			{"GET", "/v1/audit/verify", nil},
			{"POST", "/v1/agents", httpapi.AgentInput{Name: "sneaky-bot", Owner: "sre-team"}},
			{"POST", "/v1/agents/web-bot/disable", httpapi.DecisionInput{Reason: "rival"}},
		} {
			r := e.do(c.method, c.path, e.bot, c.body)
			if r.status != http.StatusForbidden {
				t.Errorf("agent %s %s: status %d, want 403: %s", c.method, c.path, r.status, r.body)
				continue
			}
			wantError(t, r, http.StatusForbidden, "permission_denied", "-")
		}
		// web-bot still works: the disable above did nothing.
		if r := e.do("GET", "/v1/whoami", e.webBot, nil); r.status != http.StatusOK {
			t.Errorf("web-bot after an agent's disable attempt: %d %s", r.status, r.body)
		}
	})

	t.Run("person can", func(t *testing.T) {
		r := e.do("GET", "/v1/pending", e.alice, nil)
		var queue httpapi.ListResponse
		r.decode(t, &queue)
		if r.status != http.StatusOK || len(queue.Grants) != 1 || queue.Grants[0].ID != pending.ID {
			t.Errorf("alice's queue: %d %v, want [%s]", r.status, ids(queue.Grants), pending.ID)
		}
		r = e.do("GET", "/v1/identities", e.alice, nil)
		var idents httpapi.IdentitiesResponse
		r.decode(t, &idents)
		if r.status != http.StatusOK || len(idents.Identities) != 3 {
			t.Errorf("alice's identities: %d %+v", r.status, idents.Identities)
		}
		r = e.do("GET", "/v1/audit/verify", e.alice, nil)
		var rep auditlog.Report
		r.decode(t, &rep)
		if r.status != http.StatusOK || !rep.OK || rep.Entries == 0 {
			t.Errorf("alice's verify: %d %s", r.status, r.body)
		}
		for _, key := range []string{e.alice, e.bot} {
			r = e.do("GET", "/v1/audit/checkpoint", key, nil)
			var cp httpapi.CheckpointResponse
			r.decode(t, &cp)
			if r.status != http.StatusOK || cp.Checkpoint == "" {
				t.Errorf("checkpoint: %d %s", r.status, r.body)
			}
		}

		r = e.do("POST", "/v1/grants/"+pending.ID+"/approve", e.alice, httpapi.DecisionInput{Comment: "ok for INC-1234"})
		var approved httpapi.GrantResponse
		r.decode(t, &approved)
		if r.status != http.StatusOK || approved.Grant.Status != model.Active || len(approved.Grant.Approvals) != 1 || approved.Grant.Approvals[0].Approver != "alice" {
			t.Errorf("alice approves: %d %s", r.status, r.body)
		}
		// Approving twice is a conflict, not a second approval.
		r = e.do("POST", "/v1/grants/"+pending.ID+"/approve", e.alice, nil)
		wantError(t, r, http.StatusConflict, "conflict", "-")

		r = e.do("POST", "/v1/grants/"+active.ID+"/revoke", e.alice, httpapi.DecisionInput{Reason: "done"})
		var revoked httpapi.GrantResponse
		r.decode(t, &revoked)
		if r.status != http.StatusOK || revoked.Grant.Status != model.Revoked || revoked.Grant.EndedBy != "alice" || revoked.Grant.EndComment != "done" {
			t.Errorf("alice revokes: %d %s", r.status, r.body)
		}

		another := e.request(e.bot, humanScope, "20m")
		r = e.do("POST", "/v1/grants/"+another.ID+"/deny", e.alice, httpapi.DecisionInput{Reason: "too broad"})
		var den httpapi.GrantResponse
		r.decode(t, &den)
		if r.status != http.StatusOK || den.Grant.Status != model.Denied {
			t.Errorf("alice denies: %d %s", r.status, r.body)
		}
	})
}

func TestLongPoll(t *testing.T) {
	e := newEnv(t)
	g := e.request(e.bot, humanScope, "30m")
	if g.Status != model.Pending {
		t.Fatalf("status %s, want pending", g.Status)
	}

	// The poll waits up to a minute; the approval comes once it is
	// registered, so a poll that did not wake would come back pending.
	polled := make(chan response, 1)
	go func() {
		// Not e.do: it may call t.Fatal, which must not run off the test goroutine.
		req, _ := http.NewRequest("GET", e.url+"/v1/grants/"+g.ID+"?wait=60s", nil)
		req.Header.Set("Authorization", "Bearer "+e.bot)
		resp, err := e.http.Do(req)
		if err != nil {
			polled <- response{status: -1, body: []byte(err.Error())}
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		polled <- response{status: resp.StatusCode, header: resp.Header, body: b}
	}()
	for i := 0; ; i++ {
		if _, open := e.srv.Service.OpenWaits(); open == 1 {
			break
		} else if i == 5000 {
			t.Fatalf("%d long polls open, want 1", open)
		}
		time.Sleep(time.Millisecond)
	}
	if r := e.do("POST", "/v1/grants/"+g.ID+"/approve", e.alice, nil); r.status != http.StatusOK {
		t.Fatalf("approve: %d %s", r.status, r.body)
	}
	r := <-polled
	if r.status != http.StatusOK {
		t.Fatalf("long poll: status %d: %s", r.status, r.body)
	}
	var got httpapi.GrantResponse
	r.decode(t, &got)
	if got.Grant.Status != model.Active {
		t.Errorf("long poll returned status %s, want active: it did not wake on the approval", got.Grant.Status)
	}

	// Once the grant is no longer pending, a wait does not register at all.
	r = e.do("GET", "/v1/grants/"+g.ID+"?wait=60s", e.bot, nil)
	if r.status != http.StatusOK {
		t.Errorf("wait on an active grant: %d", r.status)
	}
	if _, open := e.srv.Service.OpenWaits(); open != 0 {
		t.Errorf("%d long polls still open", open)
	}

	// A wait that runs out returns the grant as it is, still pending.
	p := e.request(e.bot, humanScope, "30m")
	r = e.do("GET", "/v1/grants/"+p.ID+"?wait=200ms", e.bot, nil)
	var still httpapi.GrantResponse
	r.decode(t, &still)
	if r.status != http.StatusOK || still.Grant.Status != model.Pending {
		t.Errorf("wait=200ms on a pending grant: %d %s", r.status, still.Grant.Status)
	}

	for _, bad := range []string{"bogus", "0", "-1s", "5", "1h%20"} {
		r := e.do("GET", "/v1/grants/"+p.ID+"?wait="+bad, e.bot, nil)
		wantError(t, r, http.StatusBadRequest, "invalid_argument", "wait")
	}
	// Waiting on a grant that does not exist is a 404 (waiters_test checks
	// that it leaves no waiter behind).
	r = e.do("GET", "/v1/grants/g_nosuchgrantxxxxxxxxx?wait=5s", e.bot, nil)
	wantError(t, r, http.StatusNotFound, "not_found", "-")
}

func TestRouting(t *testing.T) {
	e := newEnv(t)
	notFound := []struct{ method, path string }{
		{"GET", "/v1/nope"},
		{"GET", "/v2/grants"},
		{"GET", "/"},
		{"POST", "/v1/grants/g_x/explode"},
		{"GET", "/v1/grants/g_x/history/more"},
	}
	for _, c := range notFound {
		t.Run("404 "+c.method+" "+c.path, func(t *testing.T) {
			for _, key := range []string{"", e.alice} {
				r := e.do(c.method, c.path, key, nil)
				wantError(t, r, http.StatusNotFound, "not_found", "-")
			}
		})
	}

	wrongMethod := []struct{ method, path, allow string }{
		{"DELETE", "/v1/grants", "GET, HEAD, POST"},
		{"PUT", "/v1/grants/g_x", "GET, HEAD"},
		{"DELETE", "/v1/grants/g_x", "GET, HEAD"},
		{"GET", "/v1/grants/g_x/approve", "POST"},
		{"GET", "/v1/grants/g_x/credentials", "POST"},
		{"POST", "/v1/pending", "GET, HEAD"},
		{"POST", "/healthz", "GET, HEAD"},
		{"PATCH", "/v1/agents/x/disable", "POST"},
	}
	for _, c := range wrongMethod {
		t.Run("405 "+c.method+" "+c.path, func(t *testing.T) {
			for _, key := range []string{"", e.alice} {
				r := e.do(c.method, c.path, key, nil)
				wantError(t, r, http.StatusMethodNotAllowed, httpapi.CodeMethodNotAllowed, "-")
				if got := r.header.Get("Allow"); got != c.allow {
					t.Errorf("Allow %q, want %q", got, c.allow)
				}
			}
		})
	}

	// Every documented route answers something other than 404/405 with
	// its own method (401 without a key, except /healthz and /readyz).
	for _, route := range httpapi.Routes {
		method, path, _ := strings.Cut(route, " ")
		path = strings.NewReplacer("{id}", "g_x", "{name}", "x").Replace(path)
		r := e.do(method, path, "", nil)
		want := http.StatusUnauthorized
		if route == "GET /healthz" || route == "GET /readyz" {
			want = http.StatusOK
		}
		if r.status != want {
			t.Errorf("%s without a key: status %d, want %d: %s", route, r.status, want, r.body)
		}
	}

	// And serves no method Routes does not list: a method missing from
	// Routes on each path gets a 405 whose Allow header is exactly the
	// listed methods (HEAD comes with GET).
	methods := map[string][]string{}
	for _, route := range httpapi.Routes {
		method, path, _ := strings.Cut(route, " ")
		methods[path] = append(methods[path], method)
		if method == "GET" {
			methods[path] = append(methods[path], "HEAD")
		}
	}
	for path, ms := range methods {
		slices.Sort(ms)
		p := strings.NewReplacer("{id}", "g_x", "{name}", "x").Replace(path)
		r := e.do("DELETE", p, "", nil)
		if r.status != http.StatusMethodNotAllowed || r.header.Get("Allow") != strings.Join(ms, ", ") {
			t.Errorf("DELETE %s: status %d, Allow %q; want 405 with Allow %q", path, r.status, r.header.Get("Allow"), strings.Join(ms, ", "))
		}
	}

	// Query strings do not confuse routing.
	r := e.do("GET", "/v1/whoami?"+url.Values{"x": {"1"}}.Encode(), e.bot, nil)
	var who model.Identity
	r.decode(t, &who)
	if r.status != http.StatusOK || who.Name != "log-triage-bot" || who.Kind != model.Agent || who.Owner != "sre-team" {
		t.Errorf("whoami: %d %s", r.status, r.body)
	}
}

// A body that is not an object says so in the caller's terms, not by the
// name of the Go type it was to fill.
func TestBodyOfTheWrongTypeNamesNoGoType(t *testing.T) {
	e := newEnv(t)
	r := e.do("POST", "/v1/grants", e.bot, `["aws-prod"]`)
	wantError(t, r, http.StatusBadRequest, "invalid_argument", "body")
	if msg := r.errBody(t).Error.Message; strings.Contains(msg, "grants.") || !strings.Contains(msg, "JSON object") {
		t.Errorf("message %q: want one that asks for a JSON object and names no Go type", msg)
	}
}

// TestRepeatedParameterRefused: a single-valued query parameter given
// twice is a 400 naming it. Each handler read the first value alone: an
// export of account=A&day=D1&day=D2 was D1's, with nothing to say D2 was
// left out. An unknown parameter (a typo) is refused too.
func TestRepeatedParameterRefused(t *testing.T) {
	e := newEnv(t)
	g := e.request(e.bot, autoScope, "10m")
	for _, tt := range []struct{ path, field string }{
		{"/v1/audit/export?account=111122223333&day=2026-11-25&day=2026-11-26", "day"},
		{"/v1/audit/export?account=111122223333&account=444455556666&day=2026-11-25", "account"},
		{"/v1/audit/consistency?old=1&old=2", "old"},
		{"/v1/findings?day=2026-11-25&day=2026-11-26", "day"},
		{"/v1/grants/" + g.ID + "?wait=1s&wait=60s", "wait"},
		// A typo was ignored: all findings, or no wait at all.
		{"/v1/findings?dya=2026-11-25", "dya"},
		{"/v1/grants/" + g.ID + "?wiat=30s", "wiat"},
	} {
		wantError(t, e.do("GET", tt.path, e.alice, nil), http.StatusBadRequest, "invalid_argument", tt.field)
	}
}

// TestAuthorizationScheme: the scheme of the Authorization header is
// case-insensitive, and another scheme is named as the problem. Before,
// "bearer KEY" and "Basic KEY" were both refused as "missing API key",
// with the key right there in the header.
func TestAuthorizationScheme(t *testing.T) {
	e := newEnv(t)
	for _, h := range []string{"bearer " + e.alice, "BEARER " + e.alice, "Bearer  " + e.alice} {
		req, _ := http.NewRequest("GET", e.url+"/v1/whoami", nil)
		req.Header.Set("Authorization", h)
		if r := e.send(req); r.status != http.StatusOK {
			t.Errorf("Authorization %q: status %d: %s", strings.Replace(h, e.alice, "KEY", 1), r.status, r.body)
		}
	}
	req, _ := http.NewRequest("GET", e.url+"/v1/whoami", nil)
	req.Header.Set("Authorization", "Basic "+e.alice)
	r := e.send(req)
	wantError(t, r, http.StatusUnauthorized, "unauthenticated", "")
	if msg := r.errBody(t).Error.Message; !strings.Contains(msg, `must be "Bearer <key>"`) || strings.Contains(msg, e.alice) {
		t.Errorf("Basic: message %q; want one that names the scheme expected, without the key", msg)
	}
}

// TestDisableReasonChecked: disable's reason is checked as deny's and
// revoke's are, and a refused disable disables nothing. It was written to
// the log as sent: terminal escapes, or up to the 1 MiB body.
func TestDisableReasonChecked(t *testing.T) {
	e := newEnv(t)
	r := e.do("POST", "/v1/agents", e.alice, httpapi.AgentInput{Name: "temp-bot", Owner: "sre-leads"})
	if r.status != http.StatusCreated {
		t.Fatalf("POST /v1/agents: status %d: %s", r.status, r.body)
	}
	var added httpapi.AgentResponse
	r.decode(t, &added)
	for name, reason := range map[string]string{"control characters": "done\x1b[2J", "too long": strings.Repeat("r", 1025)} {
		r := e.do("POST", "/v1/agents/temp-bot/disable", e.alice, httpapi.DecisionInput{Reason: reason})
		if r.status != http.StatusBadRequest || r.errBody(t).Error.Field != "reason" {
			t.Errorf("reason with %s: status %d, want 400 naming reason: %s", name, r.status, r.body)
		}
	}
	if r := e.do("GET", "/v1/whoami", added.Key, nil); r.status != http.StatusOK {
		t.Fatalf("after refused disables the agent's key no longer works: status %d: %s", r.status, r.body)
	}
}

// TestAgentGroupsBounded: a group given twice is refused and nothing is
// added. The list was stored and logged as sent, up to the 1 MiB body.
func TestAgentGroupsBounded(t *testing.T) {
	e := newEnv(t)
	groups := make([]string, 10000)
	for i := range groups {
		groups[i] = "sre-leads"
	}
	r := e.do("POST", "/v1/agents", e.alice, httpapi.AgentInput{Name: "many-bot", Owner: "sre-leads", Groups: groups})
	wantError(t, r, http.StatusBadRequest, "invalid_argument", "groups[1]")
	var ids httpapi.IdentitiesResponse
	e.do("GET", "/v1/identities", e.alice, nil).decode(t, &ids)
	for _, id := range ids.Identities {
		if id.Name == "many-bot" {
			t.Fatalf("the refused agent was added with %d groups", len(id.Groups))
		}
	}
}

// TestLongPollEndedByStopIsNotAnError: a stop ends long polls with a 503
// (grants.Service.StopWaits); that is the server working as meant, so the
// API logs it at INFO, not as a failed call at ERROR, which every stop
// with a waiting agent used to print.
func TestLongPollEndedByStopIsNotAnError(t *testing.T) {
	e := newEnv(t)
	g := e.request(e.bot, humanScope, "30m")
	if g.Status != model.Pending {
		t.Fatalf("status %s, want pending", g.Status)
	}
	e.srv.Service.StopWaits()
	r := e.do("GET", "/v1/grants/"+g.ID+"?wait=60s", e.bot, nil)
	if r.status != http.StatusServiceUnavailable || !strings.Contains(r.errBody(t).Error.Message, "the server is stopping") {
		t.Fatalf("a long poll during a stop: %d %s; want 503, the server is stopping", r.status, r.body)
	}
	logs := e.logs.String()
	if strings.Contains(logs, "level=ERROR") {
		t.Errorf("a long poll ended by the stop was logged as an error:\n%s", logs)
	}
	if !strings.Contains(logs, "long poll ended by the server's stop") {
		t.Errorf("the stop's end of a long poll is not in the log:\n%s", logs)
	}
}
