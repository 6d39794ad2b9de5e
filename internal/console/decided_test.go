package console_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// TestReviewShowsWhenDecided: the review page answers "who or what
// approved it" with the time of the decision (DESIGN.md: the person, or
// the policy, "with the time … of the decision"), for a policy's
// approval and a person's alike.
func TestReviewShowsWhenDecided(t *testing.T) {
	e := newEnv(t, nil)
	auto := e.request("log-triage-bot", autoScope, "10m", "auto")
	byPerson := e.request("log-triage-bot", humanScope, "30m", "needs a lead")
	b := e.browser()
	b.mustSignIn(e.alice)
	if r := b.post("/console/grants/"+byPerson.ID+"/approve", url.Values{"csrf": {b.csrf}}); r.status != http.StatusSeeOther {
		t.Fatalf("approve: %d %s", r.status, r.body)
	}
	p := b.get("/console/review?day=" + auto.RequestedAt.UTC().Format("2006-01-02"))
	if p.status != http.StatusOK {
		t.Fatalf("review: %d", p.status)
	}
	for _, id := range []string{auto.ID, byPerson.ID} {
		g := e.grant(id)
		if g.DecidedAt.IsZero() {
			t.Fatalf("%s has no decision time", id)
		}
		i := strings.Index(p.body, `<tr data-id="`+id+`"`)
		if i < 0 {
			t.Fatalf("no row for %s", id)
		}
		tr := p.body[i:]
		tr = tr[:strings.Index(tr, "</tr>")]
		if want := `class="decided">at ` + g.DecidedAt.UTC().Format("2006-01-02 15:04:05Z"); !strings.Contains(tr, want) {
			t.Errorf("%s: the row does not say when it was decided (%q):\n%s", id, want, tr)
		}
	}
}
