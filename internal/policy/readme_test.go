package policy

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

// TestREADMEWalkthroughPolicies: the quickstart's policies, read from
// README.md, let alice (sre-leads) decide on and revoke the walkthrough's
// grants on both of its targets. The database's file had no approve
// policy, so `airlock revoke` of the walkthrough's orders-db grant was
// refused ("alice may not revoke grants on orders-db"), while the
// walkthrough says a person can cut a grant off early.
func TestREADMEWalkthroughPolicies(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, quick, ok := strings.Cut(string(b), "\n## Quickstart configuration\n")
	quick, _, ok2 := strings.Cut(quick, "\n## Walkthrough\n")
	if !ok || !ok2 {
		t.Fatal("README.md has no quickstart section before its walkthrough")
	}
	files := map[string]string{}
	for i, block := range strings.Split(quick, "```cedar\n")[1:] {
		text, _, _ := strings.Cut(block, "```")
		files[fmt.Sprintf("readme-%d.cedar", i)] = text
	}
	if len(files) < 2 {
		t.Fatalf("%d cedar blocks in the quickstart, want the two files'", len(files))
	}
	s := mustLoad(t, files)
	for _, tc := range []struct {
		target Target
		scope  string
	}{
		{prod, "s3:GetObject arn:aws:s3:::logs/*"},
		{Target{Name: "orders-db", Account: "111122223333"}, "pg:select orders.public.customers"},
	} {
		if ok, _, why := s.MayApprove(alice, "log-triage-bot", tc.target, pairs(tc.scope), 10*time.Minute, "count customers"); !ok {
			t.Errorf("alice may not decide on or revoke %s on %s: %s", tc.scope, tc.target.Name, why)
		}
	}
}
