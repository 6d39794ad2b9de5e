package policy

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/scope"
)

// FuzzLoad: a policy file (written by whoever runs the server, reloaded
// on SIGHUP) is either loaded or refused with an error; never a panic,
// in Load or in deciding with what it loaded. Load's own checks walk
// Cedar's syntax tree (vocabulary, scopeSets, the resource rewriter),
// whose every shape a file can reach.
func FuzzLoad(f *testing.F) {
	for _, s := range []string{
		designPolicies,
		"permit (principal, action, resource);",
		"@id(\"x\")\n@approval(\"human\")\npermit (principal == Agent::\"log-triage-bot\", action in [Action::\"s3:GetObject\", Action::\"pg:select\"], resource in [Target::\"aws-prod\", Target::\"orders-db\"])\nwhen { context.resource like \"arn:aws:s3:::logs/*\" && context.reason != \"\" && principal.owner == \"sre-team\" };",
		"forbid (principal, action, resource) when { context.resource like \"*secret*\" || !(context.resource like \"arn:*\") };",
		"forbid (principal, action, resource) unless { context.duration_seconds <= 3600 && context.requester == \"x\" && context.action like \"s3:Get*\" };",
		"permit (principal is Human, action == Action::\"approve\", resource == Target::\"aws-prod\") when { context.resource == \"arn:aws:s3:::a*\" };",
		"permit (principal, action, resource) when { if context.resource like \"a\\*b\" then true else context.resource.contains(\"x\") };",
		"@id(\"\") permit (principal in Team::\"sre\", action == Action::\"s3:*\", resource);",
	} {
		f.Add(s)
	}
	dir := f.TempDir()
	path := filepath.Join(dir, "p.cedar")
	reqs := []Request{
		{Principal: bot, Target: prod, Pairs: []scope.Pair{{Action: "s3:GetObject", Resource: "arn:aws:s3:::logs/app/x"}}, Duration: time.Minute, Reason: "r"},
		{Principal: alice, Target: Target{Name: "orders-db"}, Pairs: []scope.Pair{{Action: "pg:select", Resource: "public.*"}, {Action: "s3:PutObject", Resource: "*"}}, Duration: time.Hour},
	}
	f.Fuzz(func(t *testing.T, text string) {
		if len(text) > 1<<12 {
			return
		}
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		s, err := Load(dir, known)
		if err != nil {
			if s != nil {
				t.Fatalf("Load(%q) gave a set and an error %v", text, err)
			}
			return
		}
		for _, r := range reqs {
			switch d := s.Decide(r); d.Outcome {
			case "auto", "human", "deny":
			default:
				t.Fatalf("Load(%q): Decide's outcome %q", text, d.Outcome)
			}
			s.MayApprove(alice, bot.Name, r.Target, r.Pairs, r.Duration, r.Reason)
			s.Permitted(r.Principal, r.Target)
		}
		s.NamingAgent(bot.Name)
	})
}
