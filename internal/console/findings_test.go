package console_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/grants"
	"github.com/airlock-dev/airlock/internal/model"
)

// TestFindingsPage: a credential used from another instance than the one
// that asked for it is a finding; the findings page lists it for today
// (and not for another day), linking to its grant, and the grant page
// shows it. Instance descriptions come from the network, so they hold
// the HTML / control-character payload: it must show escaped.
func TestFindingsPage(t *testing.T) {
	e := newEnv(t, nil)
	ctx := context.Background()
	bot := e.identity("log-triage-bot")
	bot.Instance = &model.Instance{IP: "10.0.0.1", UserAgent: "agent\x1b[2K" + payload}
	g, err := e.srv.Service.Request(ctx, bot, grants.RequestInput{Target: "aws-prod", Scope: []string{autoScope}, Duration: "10m", Reason: "findings"})
	if err != nil {
		t.Fatal(err)
	}
	gg, err := e.srv.Service.Authority().Lookup(e.grant(g.ID).CredentialID)
	if err != nil {
		t.Fatal(err)
	}
	ses, err := e.srv.Service.Authority().StartSession(ctx, gg, "10.9.9.9:4242 thief"+payload)
	if err != nil {
		t.Fatal(err)
	}
	if err := ses.End(ctx); err != nil {
		t.Fatal(err)
	}
	if fs := e.grant(g.ID).Findings; len(fs) != 1 || fs[0].Kind != model.FindingCredentialMoved {
		t.Fatalf("the grant's findings: %+v", fs)
	}

	b := e.browser()
	b.mustSignIn(e.alice)
	today := time.Now().UTC().Format("2006-01-02")
	for name, path := range map[string]string{"findings": "/console/findings", "findings today": "/console/findings?day=" + today,
		"all days": "/console/findings?day=", "grant": "/console/grants/" + g.ID} {
		p := b.get(path)
		if p.status != 200 {
			t.Fatalf("%s: %d %s", name, p.status, p.body)
		}
		for _, want := range []string{model.FindingCredentialMoved, `href="/console/grants/` + g.ID + `"`, "10.9.9.9", "10.0.0.1",
			`&lt;script&gt;alert(1)&lt;/script&gt;`, `agent\x1b[2K`} {
			if !strings.Contains(p.body, want) {
				t.Errorf("%s page lacks %q", name, want)
			}
		}
		for _, bad := range []string{"<script>alert", "<img src=x", "\u202e", "\x1b"} {
			if strings.Contains(p.body, bad) {
				t.Errorf("%s page holds %q raw", name, bad)
			}
		}
	}
	// The review row of the grant names its finding.
	if p := b.get("/console/review"); p.status != 200 || !strings.Contains(p.body, `class="error finding" href="/console/grants/`+g.ID+`">finding: `+model.FindingCredentialMoved) {
		t.Errorf("the review does not show the finding: %d %s", p.status, p.body)
	}
	if p := b.get("/console/findings?day=2001-01-01"); p.status != 200 || strings.Contains(p.body, g.ID) || !strings.Contains(p.body, `id="none"`) {
		t.Errorf("another day lists the finding: %d %s", p.status, p.body)
	}
	if p := b.get("/console/findings?day=yesterday%3Cb%3E"); p.status != 400 || strings.Contains(p.body, "<b>") {
		t.Errorf("a bad day: %d %s", p.status, p.body)
	}
	// Signed out, there is nothing to see.
	if p := e.browser().get("/console/findings"); p.status == 200 {
		t.Errorf("findings without a session: %d", p.status)
	}
}
