package httpapi_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/airlock-dev/airlock/internal/httpapi"
)

// snakeName is the API's member-name style: every answer's members are
// snake_case (grant_id, duration_ns), so clients need not special-case one.
var snakeName = regexp.MustCompile(`^[a-z][a-z0-9]*(_[a-z0-9]+)*$`)

// dataKeyed are members whose keys are data, not names the API chose (an
// identity's claims are its issuer's).
var dataKeyed = map[string]bool{"claims": true}

// nonSnakeKeys returns the paths of the members of v (decoded JSON) whose
// names are not snake_case.
func nonSnakeKeys(at string, v any) []string {
	var bad []string
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			if !snakeName.MatchString(k) {
				bad = append(bad, at+"."+k)
			}
			if !dataKeyed[k] {
				bad = append(bad, nonSnakeKeys(at+"."+k, x)...)
			}
		}
	case []any:
		for i, x := range v {
			bad = append(bad, nonSnakeKeys(fmt.Sprintf("%s[%d]", at, i), x)...)
		}
	}
	return bad
}

// TestResponseMemberNames walks the JSON of an answer of every route that
// answers JSON, with a grant that was approved, used for credentials and
// ended, so that its nested records (decision, approvals, history entries)
// are there: every member name must be snake_case. GET /v1/audit/verify
// answered with the Go field names (Entries, OK, Elapsed) until its
// report was given JSON names.
func TestResponseMemberNames(t *testing.T) {
	e := newEnv(t)
	g := e.request(e.bot, humanScope, "30m")
	if r := e.do("POST", "/v1/grants/"+g.ID+"/approve", e.alice, map[string]string{"comment": "ok"}); r.status != http.StatusOK {
		t.Fatalf("approve: %d %s", r.status, r.body)
	}
	if r := e.do("POST", "/v1/grants/"+g.ID+"/credentials", e.bot, nil); r.status != http.StatusOK {
		t.Fatalf("credentials: %d %s", r.status, r.body)
	}
	if r := e.do("POST", "/v1/grants/"+g.ID+"/end", e.bot, map[string]string{}); r.status != http.StatusOK {
		t.Fatalf("end: %d %s", r.status, r.body)
	}
	g2 := e.request(e.bot, humanScope, "30m") // pending
	day := g.RequestedAt.UTC().Format("2006-01-02")
	calls := []struct {
		method, path, key string
		body              any
	}{
		{"GET", "/v1/whoami", e.alice, nil},
		{"GET", "/v1/grants", e.alice, nil},
		{"GET", "/v1/grants/" + g.ID, e.alice, nil},
		{"GET", "/v1/grants/" + g.ID + "/history", e.alice, nil},
		{"GET", "/v1/grants/" + g.ID + "/sessions", e.alice, nil},
		{"GET", "/v1/grants/" + g2.ID + "/approvers", e.bot, nil},
		{"GET", "/v1/pending", e.alice, nil},
		{"GET", "/v1/identities", e.alice, nil},
		{"GET", "/v1/targets", e.bot, nil},
		{"GET", "/v1/findings", e.alice, nil},
		{"GET", "/v1/audit/verify", e.alice, nil},
		{"GET", "/v1/audit/checkpoint", e.alice, nil},
		{"GET", "/v1/audit/consistency?old=1", e.alice, nil},
		{"GET", "/v1/audit/export?account=111122223333&day=" + day, e.alice, nil},
		{"POST", "/v1/agents", e.alice, httpapi.AgentInput{Name: "names-bot", Owner: "sre-leads"}},
		{"POST", "/v1/agents/names-bot/disable", e.alice, map[string]string{}},
		{"POST", "/v1/grants/" + g2.ID + "/deny", e.alice, map[string]string{"reason": "no"}},
		{"GET", "/v1/grants/nonexistent", e.alice, nil}, // the error envelope
		{"GET", "/healthz", "", nil},
		{"GET", "/readyz", "", nil},
	}
	for _, c := range calls {
		r := e.do(c.method, c.path, c.key, c.body)
		if want := strings.HasSuffix(c.path, "/nonexistent"); want != (r.status == http.StatusNotFound) || !want && r.status >= 300 {
			t.Errorf("%s %s: %d %s", c.method, c.path, r.status, r.body)
			continue
		}
		var v any
		if err := json.Unmarshal(r.body, &v); err != nil {
			t.Errorf("%s %s: not JSON (%v): %.200s", c.method, c.path, err, r.body)
			continue
		}
		if bad := nonSnakeKeys("", v); len(bad) > 0 {
			t.Errorf("%s %s: members not in snake_case: %s", c.method, c.path, strings.Join(bad, ", "))
		}
	}
}

// TestOpenAPIMemberNames holds the document to the same style: every
// property of every schema is snake_case, so a new answer documented (and
// held to its Go type by TestOpenAPISchemas) keeps it.
func TestOpenAPIMemberNames(t *testing.T) {
	doc := loadOpenAPI(t)
	var walk func(at string, s openAPISchema)
	walk = func(at string, s openAPISchema) {
		for name, p := range s.Properties {
			if !snakeName.MatchString(name) {
				t.Errorf("%s.%s is not snake_case", at, name)
			}
			walk(at+"."+name, p)
		}
	}
	for name, s := range doc.Comps.Schemas {
		walk(name, s)
	}
}
