package policy

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/scope"
)

// A generated but realistic policy corpus for the slicing equivalence test
// and the benchmarks: ~20 targets, S3 and PostgreSQL actions, agents in
// owner teams, human approvers, forbids, broad policies with no resource or
// action scope, and a few policies that raise evaluation errors.

var (
	genS3Actions = []string{"s3:GetObject", "s3:ListBucket", "s3:PutObject", "s3:DeleteObject", "s3:GetObjectTagging", "s3:HeadObject"}
	genPGActions = []string{"pg:select", "pg:insert", "pg:update", "pg:delete"}
	genPrefixes  = []string{"logs/app", "logs/web", "data/orders", "data/users", "scratch", "backups", "reports/daily", "secrets"}
	genTables    = []string{"orders.public", "orders.audit", "users.public", "billing.public"}
)

func genTargets(n int) []Target {
	out := make([]Target, n)
	for i := range out {
		out[i] = Target{Name: fmt.Sprintf("tgt-%02d", i), Account: fmt.Sprintf("1111%08d", i%5)}
	}
	return out
}

// isPG: every fourth target is a database.
func isPG(i int) bool { return i%4 == 3 }

func pick[T any](r *rand.Rand, xs []T) T { return xs[r.IntN(len(xs))] }

func pickN[T comparable](r *rand.Rand, xs []T, n int) []T {
	var out []T
	for len(out) < n {
		x := pick(r, xs)
		dup := false
		for _, y := range out {
			dup = dup || y == x
		}
		if !dup {
			out = append(out, x)
		}
	}
	return out
}

func actionList(as []string) string {
	q := make([]string, len(as))
	for i, a := range as {
		q[i] = fmt.Sprintf("Action::%q", a)
	}
	return "[" + strings.Join(q, ", ") + "]"
}

func resourcePattern(r *rand.Rand, pg bool) string {
	if pg {
		return pick(r, genTables) + ".*"
	}
	return "arn:aws:s3:::" + pick(r, genPrefixes) + "/*"
}

// genPolicies returns n policies (as one Cedar document per ten policies)
// over the given targets. With broken, about one in twenty policies raises
// an evaluation error on most requests it is evaluated for (the
// equivalence test wants those; a realistic set has none, because they
// would be noticed and fixed).
func genPolicies(r *rand.Rand, n int, targets []Target, broken bool) map[string]string {
	var b strings.Builder
	files := map[string]string{}
	// Organisation-wide guardrails: one forbid per account and one for
	// secrets. They have no action or resource scope, so every pair is
	// evaluated against them.
	accounts := map[string]bool{}
	for _, t := range targets {
		if !accounts[t.Account] {
			accounts[t.Account] = true
			fmt.Fprintf(&b, "@id(\"guard-%s\")\nforbid (principal is Agent, action, resource)\nwhen { resource.account == %q && context.duration_seconds > 3600 };\n\n", t.Account, t.Account)
		}
	}
	b.WriteString("@id(\"guard-secrets\")\nforbid (principal, action, resource)\nwhen { context.resource like \"arn:aws:s3:::secrets/*\" };\n\n")
	files["00-guardrails.cedar"] = b.String()
	b.Reset()
	for i := range n - len(accounts) - 1 {
		ti := r.IntN(len(targets))
		t := targets[ti]
		pg := isPG(ti)
		acts := genS3Actions
		if pg {
			acts = genPGActions
		}
		fmt.Fprintf(&b, "@id(\"p%03d\")\n", i)
		k := r.IntN(100)
		for !broken && k >= 85 && k < 90 {
			k = r.IntN(100)
		}
		switch {
		case k < 55: // the common case: a team's agents, some actions, one target, a prefix
			if a := r.IntN(3); a == 0 {
				b.WriteString("@approval(\"auto\")\n")
			} else if a == 1 {
				b.WriteString("@approval(\"human\")\n")
			}
			principal := fmt.Sprintf("principal in Group::\"team-%d\"", r.IntN(10))
			if r.IntN(4) == 0 {
				principal = fmt.Sprintf("principal == Agent::\"bot-%d\"", r.IntN(30))
			}
			as := pickN(r, acts, 1+r.IntN(3))
			action := "action in " + actionList(as)
			if len(as) == 1 && r.IntN(2) == 0 {
				action = fmt.Sprintf("action == Action::%q", as[0])
			}
			fmt.Fprintf(&b, "permit (%s, %s, resource == Target::%q)\nwhen { context.resource like %q && context.duration_seconds <= %d };\n\n",
				principal, action, t.Name, resourcePattern(r, pg), 300*(1+r.IntN(12)))
		case k < 65: // approvers
			res := fmt.Sprintf("resource == Target::%q", t.Name)
			if r.IntN(3) == 0 {
				res = "resource"
			}
			fmt.Fprintf(&b, "permit (principal in Group::\"leads-%d\", action == Action::\"approve\", %s)\nwhen { context.requester != principal.name && context.action like %q };\n\n",
				r.IntN(5), res, strings.SplitN(pick(r, acts), ":", 2)[0]+":*")
		case k < 75: // per-target forbids
			switch r.IntN(3) {
			case 0:
				fmt.Fprintf(&b, "forbid (principal, action, resource == Target::%q)\nwhen { context.resource like %q };\n\n", t.Name, resourcePattern(r, pg))
			case 1:
				fmt.Fprintf(&b, "forbid (principal, action in %s, resource == Target::%q)\nunless { context.reason like \"*INC-*\" };\n\n",
					actionList(pickN(r, acts, 1)), t.Name)
			default:
				fmt.Fprintf(&b, "forbid (principal == Agent::\"bot-%d\", action, resource == Target::%q);\n\n", r.IntN(30), t.Name)
			}
		case k < 85: // broad: no resource or action scope, or `is`/`in` scopes
			switch r.IntN(4) {
			case 0:
				fmt.Fprintf(&b, "@approval(\"auto\")\npermit (principal is Agent in Group::\"team-%d\", action, resource is Target)\nwhen { resource.account == %q && context.resource like \"arn:aws:s3:::reports/*\" };\n\n", r.IntN(10), t.Account)
			case 1:
				fmt.Fprintf(&b, "permit (principal in Group::\"team-%d\", action in Action::%q, resource in Target::%q);\n\n", r.IntN(10), pick(r, acts), t.Name)
			case 2:
				fmt.Fprintf(&b, "@approval(\"auto\")\npermit (principal, action == Action::%q, resource)\nwhen { principal.owner == \"team-%d\" && context.duration_seconds <= 600 };\n\n", pick(r, acts), r.IntN(10))
			default:
				fmt.Fprintf(&b, "permit (principal == Human::\"oncall-%d\", action, resource);\n\n", r.IntN(3))
			}
		case k < 90: // evaluation errors: approve-only context on every action, overflow
			if r.IntN(2) == 0 {
				fmt.Fprintf(&b, "forbid (principal, action, resource == Target::%q)\nwhen { context.requester == \"bot-1\" };\n\n", t.Name)
			} else {
				b.WriteString("@approval(\"auto\")\npermit (principal in Group::\"team-3\", action, resource)\nwhen { context.duration_seconds * 4611686018427387904 > 0 };\n\n")
			}
		default: // human read-only
			fmt.Fprintf(&b, "permit (principal is Human, action in %s, resource == Target::%q);\n\n",
				actionList(pickN(r, acts, 1)), t.Name)
		}
		if i%10 == 9 || i == n-len(accounts)-2 {
			files[fmt.Sprintf("gen-%03d.cedar", i/10)] = b.String()
			b.Reset()
		}
	}
	return files
}

func genPrincipal(r *rand.Rand) Principal {
	switch r.IntN(4) {
	case 0:
		return Principal{Kind: "human", Name: fmt.Sprintf("person-%d", r.IntN(20)),
			Groups: []string{fmt.Sprintf("leads-%d", r.IntN(5)), fmt.Sprintf("team-%d", r.IntN(10))}}
	case 1:
		return Principal{Kind: "human", Name: fmt.Sprintf("oncall-%d", r.IntN(4))}
	default:
		return Principal{Kind: "agent", Name: fmt.Sprintf("bot-%d", r.IntN(30)), Owner: fmt.Sprintf("team-%d", r.IntN(10))}
	}
}

// genRequest is a random request, sometimes for an unknown target or
// action, so every slice path is exercised.
func genRequest(r *rand.Rand, targets []Target, nPairs int) Request {
	ti := r.IntN(len(targets) + 1)
	t := Target{Name: "unknown-target", Account: "999999999999"}
	pg := false
	if ti < len(targets) {
		t, pg = targets[ti], isPG(ti)
	}
	acts := genS3Actions
	if pg {
		acts = genPGActions
	}
	req := Request{Principal: genPrincipal(r), Target: t, Duration: time.Duration(60+r.IntN(7200)) * time.Second, Reason: pick(r, []string{"triage", "INC-42 outage", ""})}
	for range nPairs {
		a := pick(r, acts)
		if r.IntN(10) == 0 {
			a = pick(r, []string{"s3:RestoreObject", "pg:truncate", "approve"})
		}
		res := strings.TrimSuffix(resourcePattern(r, pg), "*") + pick(r, []string{"", "x/", "secrets/"}) + "*"
		req.Pairs = append(req.Pairs, scope.Pair{Action: a, Resource: res})
	}
	return req
}

func loadGen(t testing.TB, files map[string]string, targets []Target) *Set {
	t.Helper()
	s, err := Load(writeDir(t, files), func(name string) bool {
		return slices.ContainsFunc(targets, func(t Target) bool { return t.Name == name })
	})
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return s
}
