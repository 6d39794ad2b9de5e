package console

import (
	"bytes"
	"fmt"
	"html/template"
	"strings"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/model"
	"github.com/airlock-dev/airlock/internal/review"
)

// TestScopeUsedCapShown: a session's scope used keeps at most
// review.MaxUsed distinct pairs, so an agent that read 100 decoys first
// had the object it wanted left out of "used" on the review and grant
// pages, with nothing to say the list was cut. Both pages say so where it
// may be, and not otherwise.
func TestScopeUsedCapShown(t *testing.T) {
	tmpl := template.Must(template.New("").Funcs(funcs).ParseFS(templateFS, "templates/*.html"))
	at := time.Date(2026, 12, 4, 2, 6, 1, 0, time.UTC)
	for _, n := range []int{review.MaxUsed, review.MaxUsed - 1} {
		var used []string
		for i := range n {
			used = append(used, fmt.Sprintf("s3:GetObject arn:aws:s3:::logs/app/decoy-%d", i))
		}
		g := model.Grant{ID: "g_x", Identity: "bot", Status: model.Active, RequestedAt: at, Usage: model.Usage{Sessions: 1, Calls: 101, ScopeUsed: used}}
		s := model.Session{ID: "s_x", GrantID: "g_x", StartedAt: at, Calls: 101, Used: used}
		pages := map[string]any{
			"review": reviewData{Rows: []review.Row{review.FromGrant(g)}},
			"grant":  grantData{G: g, Sessions: []sessionView{{Session: s}}},
		}
		for name, data := range pages {
			var buf bytes.Buffer
			if err := tmpl.ExecuteTemplate(&buf, name, page{Title: name, Data: data}); err != nil {
				t.Fatal(err)
			}
			want := map[string]int{"review": 1, "grant": 2}[name] // the grant's list and its session's
			if n < review.MaxUsed {
				want = 0
			}
			if got := strings.Count(buf.String(), review.UsedCapNote); got != want {
				t.Errorf("%s page, %d pairs used: the note that the list may be cut is there %d times, want %d", name, n, got, want)
			}
		}
	}
}
