// Package policy decides requests and approvals with Cedar policies written
// in Airlock's vocabulary (DESIGN.md, "Policy vocabulary (Cedar)").
//
// A request is split into one Cedar authorization per (action, resource
// pattern) pair and is allowed only if every pair is permitted. The
// principal is Agent::"name" or Human::"name" (attributes name and owner,
// parents Group::"g" for each group and, for an agent, its owner), the
// action is Action::"<scope action>", the resource is Target::"name"
// (attribute account), and the context carries resource (the requested
// pattern), duration_seconds and reason. Approvals are authorized the same
// way with Action::"approve" and, in the context, the requester's name and
// the pair's action.
//
// Policies are loaded from a directory of *.cedar files into an immutable
// Set; an Engine swaps Sets atomically on reload so decisions never wait.
package policy

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cedar-policy/cedar-go"
	"github.com/cedar-policy/cedar-go/types"

	"github.com/airlock-dev/airlock/internal/model"
	"github.com/airlock-dev/airlock/internal/scope"
)

// Outcomes of a decision (model.PolicyDecision.Outcome).
const (
	OutcomeAuto  = "auto"
	OutcomeHuman = "human"
	OutcomeDeny  = "deny"
)

const (
	approvalAuto  = "auto"
	approvalHuman = "human"
)

// Principal is the identity a decision is about.
type Principal struct {
	Kind   string // "agent" or "human"
	Name   string
	Owner  string // an agent's owning team; ignored for humans
	Groups []string
}

// Target is the requested target.
type Target struct {
	Name, Account string
}

// Request is what Decide authorizes.
type Request struct {
	Principal Principal
	Target    Target
	Pairs     []scope.Pair
	Duration  time.Duration
	Reason    string
}

// Set is an immutable, loaded policy set. It is safe for concurrent use.
type Set struct {
	hash  string
	files []string
	order []*policyMeta // load order
	meta  map[cedar.PolicyID]*policyMeta
	all   cedar.PolicyMap // the whole set, unsliced (kept for tests and as the reference)
	tests []resourceTest  // the rewritten tests on context.resource (patterns.go)
	index *index
	// unsliced makes authorize use the whole set; only tests and
	// benchmarks set it, to compare against the reference.
	unsliced bool

	memo     *sync.Map // principalKey → *principalMemo, Target → types.Entity
	memoSize *atomic.Int64
}

type policyMeta struct {
	id        cedar.PolicyID
	p         *cedar.Policy // as written
	full      *cedar.Policy // as decided: p with its tests on context.resource rewritten (patterns.go)
	eval      *cedar.Policy // as evaluated in a slice (see conditionsOnly)
	approval  string        // "auto" or "human"; permits without @approval are "human"
	principal principalScope
	forbid    bool
	agents    []string   // the Agent::"x" it names, in its scope or conditions
	names     agentNames // what its conditions compare principal.name with
	file      string
	line, col int
}

func (m *policyMeta) pos() string { return fmt.Sprintf("%s:%d:%d", m.file, m.line, m.col) }

// Hash identifies the policy files the Set was loaded from: "sha256:<hex>"
// over the sorted (file name, contents) pairs. Identical files give the same
// hash on every load, so a decision's hash names the exact policy version.
func (s *Set) Hash() string { return s.hash }

// NamingAgent lists the ids of the policies that name Agent::"name" (in
// their scope or conditions), or whose conditions compare principal.name
// with it (==, !=, like, contains) or use principal.name in any way that
// could hold for it, in load order. Such a policy means particular agents:
// a person who could add an agent by that name would be served by it.
func (s *Set) NamingAgent(name string) []string {
	var ids []string
	for _, m := range s.order {
		if slices.Contains(m.agents, name) || m.names.matches(name) {
			ids = append(ids, string(m.id))
		}
	}
	return ids
}

// Len is the number of policies.
func (s *Set) Len() int { return len(s.order) }

// Files lists the loaded file names (relative to the directory), sorted.
func (s *Set) Files() []string { return slices.Clone(s.files) }

// IDs lists the policy ids in load order: @id, or "<file>#policy<n>" for a
// policy without one.
func (s *Set) IDs() []string {
	out := make([]string, len(s.order))
	for i, m := range s.order {
		out[i] = string(m.id)
	}
	return out
}

// Decide authorizes a request: one Cedar authorization per pair, allowed
// only if every pair is permitted. The outcome is "auto" if every pair is
// permitted by at least one satisfied @approval("auto") permit, "human" if
// every pair is permitted but some only by @approval("human") or
// unannotated permits, and "deny" otherwise; the explanation names the first
// denied pair. PolicyIDs are the determining policies: the auto permits of
// auto pairs, every satisfied permit of human pairs, and for a denial the
// forbids of the denied pairs (none when nothing permitted them). Each
// PairDecision lists every policy Cedar found satisfied for that pair.
//
// At is left zero for the caller to set.
func (s *Set) Decide(req Request) model.PolicyDecision {
	d := model.PolicyDecision{PolicySetHash: s.hash}
	deny := func(why string) model.PolicyDecision {
		d.Outcome, d.Explanation = OutcomeDeny, why
		return d
	}
	env, err := s.entities(req.Principal, req.Target)
	if err != nil {
		return deny(err.Error())
	}
	if len(req.Pairs) == 0 {
		return deny("no scope requested")
	}
	if req.Duration <= 0 {
		return deny(fmt.Sprintf("duration %v is not positive", req.Duration))
	}
	ctxs := s.newContexts(req.Duration, req.Reason)
	defer ctxs.free()

	d.Pairs = make([]model.PairDecision, 0, len(req.Pairs))
	var determining, autoIDs []string
	var firstDenied string
	denied := 0
	allAuto := true
	for _, pair := range req.Pairs {
		pd := model.PairDecision{Action: pair.Action, Resource: pair.Resource}
		if pair.Action == ApproveAction {
			// "approve" is the approval action, never a grantable one; a
			// request for it must not be read as an approval question.
			pd.Errors = []string{`"approve" is not a requestable action`}
			d.Pairs = append(d.Pairs, pd)
			denied++
			if firstDenied == "" {
				firstDenied = fmt.Sprintf(`%q is not a requestable action`, ApproveAction)
			}
			continue
		}
		dec, diag := s.authorize(env, pair.Action, ctxs.get(pair.Resource))
		pd.Allowed = dec == cedar.Allow
		pd.Policies = reasonIDs(diag)
		pd.Errors = s.errorStrings(diag)
		if pd.Allowed {
			var autos []string
			for _, r := range diag.Reasons {
				if s.meta[r.PolicyID].approval == approvalAuto {
					autos = append(autos, string(r.PolicyID))
				}
			}
			if len(autos) > 0 {
				pd.Approval = approvalAuto
				autoIDs = append(autoIDs, autos...)
				determining = append(determining, autos...)
			} else {
				pd.Approval = approvalHuman
				allAuto = false
				determining = append(determining, pd.Policies...)
			}
		} else {
			denied++
			if firstDenied == "" {
				firstDenied = s.denial(pd, env.principal.UID, "")
			}
		}
		d.Pairs = append(d.Pairs, pd)
	}

	switch {
	case denied > 0:
		var forbids []string
		for _, pd := range d.Pairs {
			if !pd.Allowed {
				forbids = append(forbids, pd.Policies...)
			}
		}
		d.PolicyIDs = sortedDistinct(forbids)
		if denied > 1 {
			firstDenied += fmt.Sprintf(" (and %d more of %d pairs denied)", denied-1, len(d.Pairs))
		}
		d.Outcome, d.Explanation = OutcomeDeny, firstDenied
	case allAuto:
		d.PolicyIDs = sortedDistinct(autoIDs)
		d.Outcome = OutcomeAuto
		d.Explanation = fmt.Sprintf("all %d pairs permitted by @approval(\"auto\") policies %s", len(d.Pairs), quoteList(d.PolicyIDs))
	default:
		d.PolicyIDs = sortedDistinct(determining)
		d.Outcome = OutcomeHuman
		var waits []string
		for _, pd := range d.Pairs {
			if pd.Approval == approvalHuman {
				waits = append(waits, fmt.Sprintf("%s on %s is permitted only by %s", pd.Action, pd.Resource, quoteList(pd.Policies)))
			}
		}
		d.Explanation = `waits for a human approver (no @approval("auto") policy): ` + strings.Join(waits, "; ")
	}
	return d
}

// MayApprove reports whether approver may approve, deny or revoke
// requester's grant of pairs on target t: one authorization per pair with
// Action::"approve" (context: resource, duration_seconds, reason,
// requester, action), permitted only if every pair is. It returns the
// permitting policy ids, or a reason when not permitted.
//
// Only humans approve, and nobody approves their own request. Callers check
// both too; they are repeated here so that no approve policy, however
// broad, can grant either.
func (s *Set) MayApprove(approver Principal, requester string, t Target, pairs []scope.Pair, d time.Duration, reason string) (ok bool, policies []string, why string) {
	if approver.Kind != string(model.Human) {
		return false, nil, fmt.Sprintf("%q is not a human (kind %q): only humans approve grants", approver.Name, approver.Kind)
	}
	if approver.Name == "" {
		return false, nil, "approver has no name"
	}
	if requester == "" {
		return false, nil, "no requester named"
	}
	if approver.Name == requester {
		return false, nil, fmt.Sprintf("%q cannot approve their own request", approver.Name)
	}
	env, err := s.entities(approver, t)
	if err != nil {
		return false, nil, err.Error()
	}
	if len(pairs) == 0 {
		return false, nil, "no scope to approve"
	}
	var ids []string
	for _, pair := range pairs {
		rec := cedar.RecordMap{
			"resource":         cedar.String(pair.Resource),
			"duration_seconds": cedar.Long(durationSeconds(d)),
			"reason":           cedar.String(reason),
			"requester":        cedar.String(requester),
			"action":           cedar.String(pair.Action),
		}
		if len(s.tests) > 0 {
			rec[overlapsAttr] = s.overlapSet(pair.Resource)
		}
		ctx := cedar.NewRecord(rec)
		dec, diag := s.authorize(env, ApproveAction, ctx)
		if dec != cedar.Allow {
			pd := model.PairDecision{Action: pair.Action, Resource: pair.Resource, Policies: reasonIDs(diag), Errors: s.errorStrings(diag)}
			return false, nil, s.denial(pd, env.principal.UID, requester)
		}
		ids = append(ids, reasonIDs(diag)...)
	}
	return true, sortedDistinct(ids), ""
}

// authorize runs one Cedar authorization against the slice of policies that
// can match the pair's target and action.
func (s *Set) authorize(env *entities, action string, ctx cedar.Record) (cedar.Decision, cedar.Diagnostic) {
	env.slice = requestSlice{s.index.lookup(string(env.target.UID.ID), action), env}
	var policies cedar.PolicyIterator = &env.slice
	if s.unsliced {
		policies = s.all
	}
	return cedar.Authorize(policies, env, cedar.Request{
		Principal: env.principal.UID,
		Action:    cedar.NewEntityUID(typeAction, cedar.String(action)),
		Resource:  env.target.UID,
		Context:   ctx,
	})
}

// denial explains a denied pair: the forbids that matched, or that no
// permit matched. requester is set for approval checks.
func (s *Set) denial(pd model.PairDecision, who types.EntityUID, requester string) string {
	var subject string
	if requester != "" {
		subject = fmt.Sprintf("%s approving %q's %s on %s", who, requester, pd.Action, pd.Resource)
	} else {
		subject = fmt.Sprintf("%s on %s for %s", pd.Action, pd.Resource, who)
	}
	var why string
	switch {
	case len(pd.Policies) == 0 && requester != "":
		why = "no approve policy permits " + subject
	case len(pd.Policies) == 0:
		why = "no policy permits " + subject
	case len(pd.Policies) == 1:
		why = fmt.Sprintf("%s: forbidden by policy %q", subject, pd.Policies[0])
	default:
		why = fmt.Sprintf("%s: forbidden by policies %s", subject, quoteList(pd.Policies))
	}
	if len(pd.Errors) > 0 {
		why += " (policy errors: " + strings.Join(pd.Errors, "; ") + ")"
	}
	return why
}

func (s *Set) errorStrings(diag cedar.Diagnostic) []string {
	if len(diag.Errors) == 0 {
		return nil
	}
	out := make([]string, len(diag.Errors))
	for i, e := range diag.Errors {
		out[i] = "policy " + strconv.Quote(string(e.PolicyID)) + " (" + e.Position.Filename + ":" + strconv.Itoa(e.Position.Line) + "): " + e.Message
	}
	slices.Sort(out)
	return out
}

func reasonIDs(diag cedar.Diagnostic) []string {
	if len(diag.Reasons) == 0 {
		return nil
	}
	out := make([]string, len(diag.Reasons))
	for i, r := range diag.Reasons {
		out[i] = string(r.PolicyID)
	}
	slices.Sort(out)
	return out
}

func sortedDistinct(ids []string) []string {
	if len(ids) == 0 {
		return nil
	}
	out := slices.Clone(ids)
	slices.Sort(out)
	return slices.Compact(out)
}

func quoteList(ids []string) string {
	q := make([]string, len(ids))
	for i, id := range ids {
		q[i] = fmt.Sprintf("%q", id)
	}
	return strings.Join(q, ", ")
}

// contexts builds the Cedar context records of one request, one per
// distinct resource pattern (pairs from one statement share theirs). The
// map it fills is pooled: cedar.NewRecord copies it.
type contexts struct {
	s       *Set
	m       cedar.RecordMap
	lastRes string
	last    cedar.Record
	built   bool
}

var contextsPool = sync.Pool{New: func() any { return &contexts{m: make(cedar.RecordMap, 3)} }}

func (s *Set) newContexts(d time.Duration, reason string) *contexts {
	c := contextsPool.Get().(*contexts)
	c.s = s
	c.m["duration_seconds"] = cedar.Long(durationSeconds(d))
	c.m["reason"] = cedar.String(reason)
	return c
}

func (c *contexts) get(resource string) cedar.Record {
	if !c.built || resource != c.lastRes {
		c.m["resource"] = cedar.String(resource)
		if len(c.s.tests) > 0 {
			c.m[overlapsAttr] = c.s.overlapSet(resource)
		}
		c.last, c.lastRes, c.built = cedar.NewRecord(c.m), resource, true
	}
	return c.last
}

func (c *contexts) free() {
	clear(c.m)
	c.s, c.lastRes, c.last, c.built = nil, "", cedar.Record{}, false
	contextsPool.Put(c)
}

// durationSeconds rounds up, so that 900.5s does not pass
// "duration_seconds <= 900". Adding a second to a duration within a second
// of the largest one would wrap to a negative count that passes every
// "<=" limit, so rounding up is done on the quotient instead.
func durationSeconds(d time.Duration) int64 {
	s := int64(d / time.Second)
	if d > 0 && d%time.Second != 0 {
		s++
	}
	return s
}

// entities is the per-request entity store: just the principal and the
// target. Groups and actions have no parents, so they need no entries; this
// avoids building a map for every request.
type entities struct {
	principal, target types.Entity
	parents           []types.EntityUID // the principal's, as a list (see principalScope.matches)
	slice             requestSlice      // the iterator of the authorization under way
}

func (e *entities) Get(uid types.EntityUID) (types.Entity, bool) {
	switch uid {
	case e.principal.UID:
		return e.principal, true
	case e.target.UID:
		return e.target, true
	}
	return types.Entity{}, false
}

// entities builds the entity store of one request. Building Cedar entities
// costs several allocations and hashes each, a good part of a decision, so
// they are remembered per Set for the identities and targets it has seen
// (a bounded number: both come from configuration). A remembered principal
// is reused only if every field matches.
func (s *Set) entities(p Principal, t Target) (*entities, error) {
	env := &entities{}
	key := principalKey{kind: p.Kind, name: p.Name}
	if v, ok := s.memo.Load(key); ok {
		if m := v.(*principalMemo); m.p.Owner == p.Owner && slices.Equal(m.p.Groups, p.Groups) {
			env.principal, env.parents = m.entity, m.parents
		}
	}
	if env.principal.UID.IsZero() {
		e, parents, err := principalEntity(p)
		if err != nil {
			return nil, err
		}
		env.principal, env.parents = e, parents
		if s.memoSize.Add(1) <= maxMemo {
			p.Groups = slices.Clone(p.Groups)
			s.memo.Store(key, &principalMemo{p: p, entity: e, parents: parents})
		}
	}
	if v, ok := s.memo.Load(t); ok {
		env.target = v.(types.Entity)
	} else {
		env.target = targetEntity(t)
		if s.memoSize.Add(1) <= maxMemo {
			s.memo.Store(t, env.target)
		}
	}
	return env, nil
}

const maxMemo = 4096

type principalKey struct{ kind, name string }

type principalMemo struct {
	p       Principal
	entity  types.Entity
	parents []types.EntityUID
}

func principalEntity(p Principal) (types.Entity, []types.EntityUID, error) {
	if p.Name == "" {
		return types.Entity{}, nil, fmt.Errorf("principal has no name")
	}
	var typ types.EntityType
	owner := ""
	parents := make([]types.EntityUID, 0, len(p.Groups)+1)
	switch p.Kind {
	case string(model.Agent):
		typ, owner = typeAgent, p.Owner
		if owner != "" {
			parents = append(parents, types.NewEntityUID(typeGroup, types.String(owner)))
		}
	case string(model.Human):
		typ = typeHuman
	default:
		return types.Entity{}, nil, fmt.Errorf("principal %q has unknown kind %q; want agent or human", p.Name, p.Kind)
	}
	for _, g := range p.Groups {
		// An empty name is no group: Group::"" would be one that any
		// principal handed an empty name joined.
		if g != "" {
			parents = append(parents, types.NewEntityUID(typeGroup, types.String(g)))
		}
	}
	return types.Entity{
		UID:     types.NewEntityUID(typ, types.String(p.Name)),
		Parents: types.NewEntityUIDSet(parents...),
		Attributes: types.NewRecord(types.RecordMap{
			"name":  types.String(p.Name),
			"owner": types.String(owner),
		}),
	}, parents, nil
}

func targetEntity(t Target) types.Entity {
	return types.Entity{
		UID:        types.NewEntityUID(typeTarget, types.String(t.Name)),
		Attributes: types.NewRecord(types.RecordMap{"account": types.String(t.Account)}),
	}
}
