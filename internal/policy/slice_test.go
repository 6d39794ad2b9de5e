package policy

import (
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"

	"github.com/cedar-policy/cedar-go"
)

// edgeScopes are scope forms the generator does not produce.
const edgeScopes = `
@id("e-in-self") permit (principal in Agent::"bot-1", action, resource);
@id("e-eq-group") permit (principal == Group::"team-1", action, resource);
@id("e-is-in-human") permit (principal is Human in Group::"leads-1", action == Action::"approve", resource in Target::"tgt-01");
@id("e-is-human-in-self") forbid (principal is Human in Human::"person-2", action, resource is Target in Target::"tgt-02");
@id("e-action-in-self") permit (principal is Agent, action in Action::"s3:GetObject", resource == Target::"tgt-01");
@id("e-action-mixed") permit (principal, action in [Action::"s3:PutObject", Group::"team-2"], resource == Target::"tgt-02");
@id("e-action-wrong-type") permit (principal, action == Group::"team-1", resource);
@id("e-resource-wrong-type") permit (principal, action, resource == Agent::"bot-1");
@id("e-resource-in-group") permit (principal, action, resource in Group::"team-1");
@id("e-empty-set") permit (principal, action in [], resource);
@id("e-in-cond") permit (principal, action, resource) when { principal in [Group::"team-4", Agent::"bot-9"] && action in [Action::"pg:select"] };
@id("e-unless-resource") permit (principal in Group::"team-1", action, resource == Target::"tgt-00") when { context.resource like "arn:aws:s3:::logs/*" } unless { context.resource like "arn:aws:s3:::logs/app/x/*" };
@id("e-not-equals-resource") forbid (principal, action == Action::"s3:GetObject", resource) unless { context.resource != "arn:aws:s3:::data/users/x/*" };
@id("e-unless") forbid (principal in Group::"team-5", action, resource == Target::"tgt-00") unless { context.duration_seconds < 1800 };
`

// TestSlicingEquivalence checks that evaluating a pair against its slice
// gives exactly what cedar-go's unsliced PolicySet.IsAuthorized gives:
// decision, satisfied policies and errors, on many generated requests.
func TestSlicingEquivalence(t *testing.T) {
	for seed := range uint64(3) {
		r := rand.New(rand.NewPCG(seed, 42))
		targets := genTargets(20)
		files := genPolicies(r, 200, targets, true)
		files["zz-edge.cedar"] = edgeScopes
		s := loadGen(t, files, targets)
		ps := cedar.NewPolicySet()
		for _, m := range s.order {
			ps.Add(m.id, m.full)
		}
		unsliced := *s
		unsliced.unsliced = true

		var allow, deny, errs, evaluated, full int
		for range 600 {
			req := genRequest(r, targets, 4)
			env, err := s.entities(req.Principal, req.Target)
			if err != nil {
				t.Fatal(err)
			}
			pe := env.principal
			for _, p := range req.Pairs {
				for _, action := range []string{p.Action, ApproveAction} {
					rec := cedar.RecordMap{
						"resource":         cedar.String(p.Resource),
						"duration_seconds": cedar.Long(durationSeconds(req.Duration)),
						"reason":           cedar.String(req.Reason),
					}
					if len(s.tests) > 0 {
						rec[overlapsAttr] = s.overlapSet(p.Resource)
					}
					ctx := cedar.NewRecord(rec)
					got, gotDiag := s.authorize(env, action, ctx)
					// The reference uses a plain EntityMap, so the
					// two-entity getter is checked as well.
					em := cedar.EntityMap{pe.UID: pe, env.target.UID: env.target}
					want, wantDiag := ps.IsAuthorized(em, cedar.Request{
						Principal: pe.UID,
						Action:    cedar.NewEntityUID(typeAction, cedar.String(action)),
						Resource:  env.target.UID,
						Context:   ctx,
					})
					if got != want || !slices.Equal(reasonIDs(gotDiag), reasonIDs(wantDiag)) || !slices.Equal(s.errorStrings(gotDiag), s.errorStrings(wantDiag)) {
						t.Fatalf("seed %d %+v %s %s:\nsliced   %v %v %v\nunsliced %v %v %v", seed, req.Principal, req.Target.Name, action,
							got, reasonIDs(gotDiag), s.errorStrings(gotDiag), want, reasonIDs(wantDiag), s.errorStrings(wantDiag))
					}
					if got == cedar.Allow {
						allow++
					} else {
						deny++
					}
					if len(gotDiag.Errors) > 0 {
						errs++
					}
					for _, m := range s.index.lookup(req.Target.Name, action) {
						if m.principal.matches(env) {
							evaluated++
						}
					}
					full += s.Len()
				}
			}
			// Whole decisions and approvals agree too.
			if got, want := s.Decide(req), unsliced.Decide(req); !reflect.DeepEqual(got, want) {
				t.Fatalf("Decide differs:\nsliced   %+v\nunsliced %+v", got, want)
			}
			approver := genPrincipal(r)
			ok1, p1, w1 := s.MayApprove(approver, "bot-1", req.Target, req.Pairs, req.Duration, req.Reason)
			ok2, p2, w2 := unsliced.MayApprove(approver, "bot-1", req.Target, req.Pairs, req.Duration, req.Reason)
			if ok1 != ok2 || !slices.Equal(p1, p2) || w1 != w2 {
				t.Fatalf("MayApprove differs: %v %v %q / %v %v %q", ok1, p1, w1, ok2, p2, w2)
			}
		}
		// The corpus must exercise all three kinds of result, or the
		// comparison proves little.
		if allow < 100 || deny < 100 || errs < 100 {
			t.Errorf("seed %d: weak corpus: %d allow, %d deny, %d with errors", seed, allow, deny, errs)
		}
		t.Logf("seed %d: %d allow, %d deny, %d with errors; evaluated %.1f%% of policies", seed, allow, deny, errs, 100*float64(evaluated)/float64(full))
	}
}

// TestSliceScopes pins down how scopes are filed.
func TestSliceScopes(t *testing.T) {
	s := mustLoad(t, map[string]string{"a.cedar": `
@id("eq") permit (principal, action == Action::"s3:GetObject", resource == Target::"aws-prod");
@id("inset") permit (principal, action in [Action::"s3:GetObject", Action::"s3:PutObject"], resource == Target::"orders-db");
@id("in1") permit (principal, action in Action::"pg:select", resource);
@id("any-action") permit (principal, action, resource == Target::"aws-prod");
@id("res-in") permit (principal, action == Action::"s3:GetObject", resource in Target::"aws-prod");
@id("res-is") forbid (principal, action, resource is Target);
@id("mixed-set") permit (principal, action in [Action::"s3:GetObject", Group::"x"], resource == Target::"aws-staging");
@id("empty-set") permit (principal, action in [], resource);
`})
	ids := func(target, action string) []string {
		var out []string
		for _, m := range s.index.lookup(target, action) {
			out = append(out, string(m.id))
		}
		return out
	}
	for _, tc := range []struct {
		target, action string
		want           []string
	}{
		{"aws-prod", "s3:GetObject", []string{"eq", "any-action", "res-in", "res-is"}},
		{"aws-prod", "s3:PutObject", []string{"any-action", "res-is"}},
		{"aws-prod", "pg:select", []string{"in1", "any-action", "res-is"}},
		{"orders-db", "s3:PutObject", []string{"inset", "res-is"}},
		{"orders-db", "approve", []string{"res-is"}},
		{"elsewhere", "s3:GetObject", []string{"res-in", "res-is"}},
		{"elsewhere", "pg:select", []string{"in1", "res-is"}},
		{"aws-staging", "pg:select", []string{"in1", "res-is", "mixed-set"}},
	} {
		if got := ids(tc.target, tc.action); !slices.Equal(got, tc.want) {
			t.Errorf("%s %s: %q, want %q", tc.target, tc.action, got, tc.want)
		}
	}
}
