package review

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/airlock-dev/airlock/internal/gateway"
	"github.com/airlock-dev/airlock/internal/model"
	"github.com/airlock-dev/airlock/internal/scope"
)

// A review is only as good as the rows it reads, and the rows live in a
// database that whoever holds the disk can edit. The log cannot be edited
// without breaking its signed tree, so every answer a review shows is also
// derived here from the log entries alone; a stored row that differs from
// its derivation is reported, never shown as if it were proven.

// MaxUsed bounds the distinct "action resource" pairs kept per session; the
// full detail is in the log, this is the review summary.
const MaxUsed = 100

// A call the gateway let through is counted as a call and its pairs as
// used when its request is durable, before its result exists. A result
// that says the upstream refused the call for lack of privilege
// (gateway.Call.Refused: PostgreSQL's 42501, where the database enforces
// the grant's scope) then moves it from the calls to the denied, and takes
// its pair out of Used unless another of its calls was not refused: a
// reviewer reads Used as what the agent did, and an INSERT the database
// refused under a pg:select grant did nothing. A call whose result never
// came (a crash) stays used. Only a result that says Refused does this:
// logs written before it existed are counted as they always were.
//
// Tally is what that takes besides the summary: for each pair of its Used,
// in order, how many of the calls that listed it have not been refused.
// Once Used is full (MaxUsed), nothing more is listed or counted, as
// before (a call then costs no scan of the list): a pair stays in it even
// when its calls are refused, so that a full list still says it may have
// been cut (UsedMayBeCapped) and no later pair takes the freed place in
// one order of counting and not in another, and a refusal beyond the
// calls counted before is left alone (a call, not denied). A PostgreSQL
// session, the only one whose results say Refused, lists at most one pair
// per statement keyword of its one database: about 60, fewer than MaxUsed.
type Tally struct{ open []int32 }

// CountCall returns r with c counted, as a session summary counts it; r
// itself is left unchanged, t is updated. The gateway's recorder and the
// derivation from the log both count through it or Count, so the two
// cannot drift apart.
func CountCall(r model.Session, t *Tally, c gateway.Call) model.Session {
	r.Used = slices.Clone(r.Used)
	countCall(&r, t, &c)
	return r
}

// Count counts c in *r in place, as CountCall does, without copying
// r.Used: it may grow in place. The gateway's running session summary
// uses it under its own lock, once per call, where CountCall's copy of the
// whole Used list was an allocation per call; whoever hands the summary
// out must copy Used (the sessions package's state.snapshot does). t is
// r's Tally, which only the counting reads.
func Count(r *model.Session, t *Tally, c *gateway.Call) { countCall(r, t, c) }

// countCall counts c in *r in place (r.Used may grow in place).
func countCall(r *model.Session, t *Tally, c *gateway.Call) {
	switch {
	case c.Kind == "result":
		if c.Refused && len(c.Also) == 0 && t.refuse(r, c.Action, c.Resource) {
			r.Calls--
			r.Denied++
		}
	case c.Allowed:
		r.Calls++
		if len(r.Used) >= MaxUsed {
			break // full: nothing more is listed, or counted (see Tally)
		}
		if len(t.open) != len(r.Used) {
			t.sync(r)
		}
		if i := indexPair(r.Used, c.Action, c.Resource); i >= 0 {
			t.open[i]++
		} else if len(r.Used) < MaxUsed {
			r.Used = append(r.Used, c.Action+" "+c.Resource)
			t.open = append(t.open, 1)
		}
		for _, u := range c.Also {
			if i := slices.Index(r.Used, u); i >= 0 {
				t.open[i]++
			} else if len(r.Used) < MaxUsed {
				r.Used = append(r.Used, u)
				t.open = append(t.open, 1)
			}
		}
	default:
		r.Denied++
	}
	r.BytesIn += c.BytesIn
	r.BytesOut += c.BytesOut
}

// refuse counts a refused call of action+" "+resource, and reports
// whether it was one counted as a call: one of the pair's calls not
// refused yet. A result with no such call (its pair is past the cut, or a
// log holding a result without its request) changes nothing, so that it
// can never hide a use.
func (t *Tally) refuse(r *model.Session, action, resource string) bool {
	if len(t.open) != len(r.Used) {
		t.sync(r)
	}
	i := indexPair(r.Used, action, resource)
	if i < 0 || t.open[i] <= 0 {
		return false
	}
	t.open[i]--
	if t.open[i] == 0 && len(r.Used) < MaxUsed {
		r.Used = slices.Delete(r.Used, i, i+1)
		t.open = slices.Delete(t.open, i, i+1)
	}
	return true
}

// sync makes t fit a summary counted without it (one read back from the
// store): each pair of its Used counts one call not refused.
func (t *Tally) sync(r *model.Session) {
	t.open = t.open[:0]
	for range r.Used {
		t.open = append(t.open, 1)
	}
}

// indexPair returns the index of action+" "+resource in used, or -1,
// without building that string for every call.
func indexPair(used []string, action, resource string) int {
	n := len(action) + 1 + len(resource)
	for i, u := range used {
		if len(u) == n && u[len(action)] == ' ' && u[:len(action)] == action && u[len(action)+1:] == resource {
			return i
		}
	}
	return -1
}

// Deriver rebuilds grants and sessions from log entries fed to it in
// sequence order, and the identities from theirs (see applyIdentity).
// Entries of other types (policies, gateway rejections) are ignored, and
// so are the entries a log.refused entry names (see SetVoid). It is not
// safe for concurrent use.
type Deriver struct {
	grants   map[string]*derivedGrant
	sessions map[string]*derivedSession
	order    []string // grant ids in the order they were requested
	// identities are the identities as their newest entries state them.
	identities map[string]*derivedIdentity
	// unstored is the first seq the store does not hold (math.MaxInt64
	// until SetStored): sessions started from it on are still only in a
	// journal, without a row, and a grant's Usage leaves them out as the
	// store's sum over its rows does.
	unstored int64
	// void are the entries log.refused entries name (SetVoid), skipped;
	// voidBy the ranges each of those names, voidSeen those given.
	void     *Void
	voidBy   map[int64][][2]int64
	voidSeen map[int64]bool
}

type derivedGrant struct {
	g        model.Grant
	sessions []string
	problems []string // entries about this grant that could not be applied
}

type derivedSession struct {
	s model.Session
	// past are the distinct pairs the session used beyond the first
	// MaxUsed (at most MaxUsed of them): see Capped.
	past []string
	// tally is s's Tally; refusals counts the results that moved a call
	// from s's calls to its denied, and taken the pairs they took out of
	// s.Used (at most MaxUsed of them): a summary stored before them, of
	// a session still open, may hold those calls and pairs.
	tally    Tally
	refusals int64
	taken    []string
	ended    bool
	// started is the seq of its session.started entry, ends that of its
	// session.ended entry.
	started, ends int64
}

// NewDeriver returns an empty Deriver.
func NewDeriver() *Deriver {
	return &Deriver{grants: map[string]*derivedGrant{}, sessions: map[string]*derivedSession{}, identities: map[string]*derivedIdentity{}, unstored: math.MaxInt64}
}

// SetStored says that the store holds the log's entries below seq size
// only (the rest are in a journal): a session started at or after it has
// no row yet, and is left out of its grant's Usage.
func (d *Deriver) SetStored(size int64) { d.unstored = size }

// stored reports whether session s's start is in the store.
func (d *Deriver) stored(s *derivedSession) bool { return s.started < d.unstored }

// endStored reports whether the store holds session s's end (and so its
// row does): an end only in a journal leaves the row open, its summary
// behind the log's, as a live session's.
func (d *Deriver) endStored(s *derivedSession) bool { return s.ended && s.ends < d.unstored }

// Parsed is one entry decoded for the Deriver. Decoding does not depend on
// the state, so callers may Parse entries in parallel and Apply them in
// order.
type Parsed struct {
	Seq     int64
	Time    time.Time
	Type    string
	Grant   string
	Session string
	Actor   string
	data    json.RawMessage
	// The calls of a session.call (one, in one) or session.results (in
	// call): nCalls of them.
	one    gateway.Call
	call   []gateway.Call
	nCalls int
	skip   bool
}

// callAt returns the i-th call of a session.call or session.results entry.
func (p *Parsed) callAt(i int) *gateway.Call {
	if p.call == nil {
		return &p.one
	}
	return &p.call[i]
}

// entryHead is the part of an entry every type has.
type entryHead struct {
	Seq     int64           `json:"seq"`
	Time    string          `json:"time"`
	Type    string          `json:"type"`
	Grant   string          `json:"grant"`
	Session string          `json:"session"`
	Actor   string          `json:"actor"`
	Data    json.RawMessage `json:"data"`
}

// Relevant reports whether entries of type typ change what a review shows.
func Relevant(typ string) bool {
	return strings.HasPrefix(typ, "grant.") || strings.HasPrefix(typ, "session.") || typ == "finding"
}

// callFields are the parts of a gateway call a summary counts; decoding
// only these skips the call's parameters without building them.
type callFields struct {
	Kind     string   `json:"kind"`
	Action   string   `json:"action"`
	Resource string   `json:"resource"`
	Also     []string `json:"also"`
	Allowed  bool     `json:"allowed"`
	Refused  bool     `json:"refused"`
	BytesIn  int64    `json:"bytes_in"`
	BytesOut int64    `json:"bytes_out"`
}

func (c callFields) call() gateway.Call {
	return gateway.Call{Kind: c.Kind, Action: c.Action, Resource: c.Resource, Also: c.Also, Allowed: c.Allowed, Refused: c.Refused, BytesIn: c.BytesIn, BytesOut: c.BytesOut}
}

// sessionEntry decodes a session.call or session.results entry in one pass.
type sessionEntry struct {
	Seq     int64  `json:"seq"`
	Time    string `json:"time"`
	Type    string `json:"type"`
	Grant   string `json:"grant"`
	Session string `json:"session"`
	Actor   string `json:"actor"`
	Data    struct {
		callFields
		Results []callFields `json:"results"`
	} `json:"data"`
}

// Parse decodes entry bytes (in the format of package auditlog).
func Parse(b []byte) (Parsed, error) { return parse(b, nil) }

// parse is Parse, with repeated strings taken from in (if not nil).
func parse(b []byte, in *interner) (Parsed, error) {
	if p, ok := parseCallFast(b, in); ok {
		return p, nil
	}
	return parseSlow(b)
}

// parseSlow is Parse with encoding/json alone.
func parseSlow(b []byte) (Parsed, error) {
	// Gateway calls are nearly all of a log: decode them in one pass.
	var se sessionEntry
	if err := json.Unmarshal(b, &se); err == nil && (se.Type == "session.call" || se.Type == "session.results") {
		t, err := time.Parse(time.RFC3339Nano, se.Time)
		if err != nil {
			return Parsed{}, fmt.Errorf("entry %d: bad time %q", se.Seq, se.Time)
		}
		p := Parsed{Seq: se.Seq, Time: t.UTC(), Type: se.Type, Grant: se.Grant, Session: se.Session, Actor: se.Actor}
		if se.Type == "session.call" {
			p.one, p.nCalls = se.Data.call(), 1
		} else {
			for _, c := range se.Data.Results {
				p.call = append(p.call, c.call())
			}
			p.nCalls = len(p.call)
		}
		return p, nil
	}
	var h entryHead
	if err := json.Unmarshal(b, &h); err != nil {
		return Parsed{}, fmt.Errorf("not a log entry: %w", err)
	}
	t, err := time.Parse(time.RFC3339Nano, h.Time)
	if err != nil {
		return Parsed{}, fmt.Errorf("entry %d: bad time %q", h.Seq, h.Time)
	}
	p := Parsed{Seq: h.Seq, Time: t.UTC(), Type: h.Type, Grant: h.Grant, Session: h.Session, Actor: h.Actor, data: h.Data}
	switch h.Type {
	case "session.call", "session.results":
		return p, fmt.Errorf("entry %d: malformed %s", h.Seq, h.Type)
	default:
		p.skip = !Relevant(h.Type) && !isIdentityType(h.Type) && h.Type != RefusedType
	}
	return p, nil
}

// Add parses and applies one entry.
func (d *Deriver) Add(b []byte) error {
	p, err := Parse(b)
	if err != nil {
		return err
	}
	return d.Apply(p)
}

// Apply applies one parsed entry. An entry that does not fit the state (a
// session of an unknown grant, an event before its grant's request) is an
// error and leaves the state unchanged; the grant it names is marked as not
// derivable.
func (d *Deriver) Apply(p Parsed) error {
	if p.skip || d.void.Contains(p.Seq) {
		return nil
	}
	if p.Type == RefusedType {
		return d.applyRefused(p)
	}
	err := d.apply(p)
	if err != nil && p.Grant != "" {
		if dg := d.grants[p.Grant]; dg != nil {
			dg.problems = append(dg.problems, err.Error())
		}
	}
	return err
}

func (d *Deriver) apply(p Parsed) error {
	if strings.HasPrefix(p.Type, "session.") {
		return d.applySession(p)
	}
	if isIdentityType(p.Type) {
		return d.applyIdentity(p)
	}
	if p.Type == "grant.requested" {
		if _, dup := d.grants[p.Grant]; dup || p.Grant == "" {
			return fmt.Errorf("entry %d: grant %q requested twice", p.Seq, p.Grant)
		}
		var in struct {
			Identity     string             `json:"identity"`
			IdentityKind model.IdentityKind `json:"identity_kind"`
			Owner        string             `json:"owner"`
			Target       string             `json:"target"`
			TargetKind   string             `json:"target_kind"`
			Account      string             `json:"account"`
			Scope        []string           `json:"scope"`
			Duration     string             `json:"duration"`
			Reason       string             `json:"reason"`
			Extends      string             `json:"extends"`
			DecideBy     time.Time          `json:"decide_by"`
			Auth         string             `json:"auth"`
			From         *model.Instance    `json:"requested_from"`
		}
		if err := json.Unmarshal(p.data, &in); err != nil {
			return fmt.Errorf("entry %d: %w", p.Seq, err)
		}
		sc, err := scope.Parse(in.Scope)
		if err != nil {
			return fmt.Errorf("entry %d: scope: %w", p.Seq, err)
		}
		dur, err := time.ParseDuration(in.Duration)
		if err != nil {
			return fmt.Errorf("entry %d: duration: %w", p.Seq, err)
		}
		d.grants[p.Grant] = &derivedGrant{g: model.Grant{
			ID: p.Grant, Identity: in.Identity, IdentityKind: in.IdentityKind, Owner: in.Owner,
			Target: in.Target, TargetKind: in.TargetKind, Account: in.Account,
			RequestedScope: sc, Reason: in.Reason, Duration: dur, Extends: in.Extends,
			Status: model.Pending, RequestedAt: p.Time, DecideBy: in.DecideBy,
			Auth: in.Auth, RequestedFrom: in.From,
		}}
		d.order = append(d.order, p.Grant)
		return nil
	}
	if p.Type == "finding" && p.Grant == "" {
		return nil // an identity's finding, on no grant
	}
	dg := d.grants[p.Grant]
	if dg == nil {
		if p.Type == "grant.credentials_issued" {
			return nil
		}
		return fmt.Errorf("entry %d: %s of grant %q, which was never requested", p.Seq, p.Type, p.Grant)
	}
	g := &dg.g
	switch p.Type {
	case "grant.decided":
		var dec model.PolicyDecision
		if err := json.Unmarshal(p.data, &dec); err != nil {
			return fmt.Errorf("entry %d: %w", p.Seq, err)
		}
		g.Decision = dec
	case "grant.approved":
		var a model.Approval
		if err := json.Unmarshal(p.data, &a); err != nil {
			return fmt.Errorf("entry %d: %w", p.Seq, err)
		}
		g.Approvals = append(g.Approvals, a)
		g.DecidedAt = a.At
	case "grant.activated":
		var in struct {
			GrantedScope []string  `json:"granted_scope"`
			StartedAt    time.Time `json:"started_at"`
			ExpiresAt    time.Time `json:"expires_at"`
			CredentialID string    `json:"credential_id"`
			Fingerprint  string    `json:"credential_fingerprint"`
		}
		if err := json.Unmarshal(p.data, &in); err != nil {
			return fmt.Errorf("entry %d: %w", p.Seq, err)
		}
		sc, err := scope.Parse(in.GrantedScope)
		if err != nil {
			return fmt.Errorf("entry %d: granted scope: %w", p.Seq, err)
		}
		if p.Actor == "policy" {
			g.DecidedAt = g.Decision.At
		}
		g.Status, g.GrantedScope, g.StartedAt, g.ExpiresAt = model.Active, sc, in.StartedAt, in.ExpiresAt
		g.CredentialID, g.CredentialFingerprint = in.CredentialID, in.Fingerprint
	case "grant.credentials_issued", "grant.command":
		// Records of what the holder did; they change no field of the grant.
	case "finding":
		var f model.Finding
		if err := json.Unmarshal(p.data, &f); err != nil {
			return fmt.Errorf("entry %d: %w", p.Seq, err)
		}
		g.Findings = append(g.Findings, f)
	default:
		return d.applyEnd(p, g)
	}
	return nil
}

// applyEnd applies grant.expired, .revoked, .ended, .cancelled, .denied.
func (d *Deriver) applyEnd(p Parsed, g *model.Grant) error {
	reason := strings.TrimPrefix(p.Type, "grant.")
	switch reason {
	case "expired", "revoked", "ended", "cancelled", "denied":
	default:
		return fmt.Errorf("entry %d: unknown grant event %s", p.Seq, p.Type)
	}
	var in struct {
		At       time.Time         `json:"at"`
		By       string            `json:"by"`
		Reason   string            `json:"reason"`
		Status   model.GrantStatus `json:"status"`
		Approval *model.Approval   `json:"approval"`
		Auth     *model.SignIn     `json:"auth"`
	}
	if err := json.Unmarshal(p.data, &in); err != nil {
		return fmt.Errorf("entry %d: %w", p.Seq, err)
	}
	if reason == "denied" && in.By == "policy" {
		// Refused by policy, at the request or when a set loaded since
		// no longer permitted it (after a grant.decided of its own):
		// the last decision's time.
		in.At, in.Status = g.Decision.At, model.Denied
		g.DecidedAt = g.Decision.At
	}
	if in.Approval != nil {
		g.Approvals = append(g.Approvals, *in.Approval)
		g.DecidedAt = in.Approval.At
	}
	if !in.Status.Final() || !in.Status.Valid() {
		return fmt.Errorf("entry %d: %s with status %q", p.Seq, p.Type, in.Status)
	}
	g.Status, g.EndedAt, g.EndReason, g.EndedBy, g.EndComment = in.Status, in.At, reason, in.By, in.Reason
	g.EndedAuth = in.Auth
	return nil
}

func (d *Deriver) applySession(p Parsed) error {
	if p.Type == "session.started" {
		dg := d.grants[p.Grant]
		if dg == nil {
			return fmt.Errorf("entry %d: session %q of grant %q, which was never requested", p.Seq, p.Session, p.Grant)
		}
		if _, dup := d.sessions[p.Session]; dup || p.Session == "" {
			return fmt.Errorf("entry %d: session %q started twice", p.Seq, p.Session)
		}
		s, err := startedSession(p)
		if err != nil {
			return err
		}
		d.sessions[p.Session] = &derivedSession{s: s, started: p.Seq}
		dg.sessions = append(dg.sessions, p.Session)
		return nil
	}
	ds := d.sessions[p.Session]
	if ds == nil || ds.s.GrantID != p.Grant {
		return fmt.Errorf("entry %d: %s of session %q, which was never started under grant %q", p.Seq, p.Type, p.Session, p.Grant)
	}
	switch p.Type {
	case "session.call", "session.results":
		if ds.ended {
			return fmt.Errorf("entry %d: %s after session %s ended", p.Seq, p.Type, p.Session)
		}
		for i := range p.nCalls {
			c := p.callAt(i)
			denied, used := ds.s.Denied, len(ds.s.Used)
			countCall(&ds.s, &ds.tally, c)
			if c.Kind == "result" && ds.s.Denied != denied {
				ds.refusals++
				if u := c.Action + " " + c.Resource; len(ds.s.Used) < used && len(ds.taken) < MaxUsed && !slices.Contains(ds.taken, u) {
					ds.taken = append(ds.taken, u)
				}
			}
			if len(ds.s.Used) >= MaxUsed {
				ds.notePast(c)
			}
		}
	case "session.ended":
		ds.ended = true
		ds.s.EndedAt = p.Time
		ds.ends = p.Seq
	}
	return nil
}

// notePast keeps the pairs of c that its session's Used, full, had no room
// for, up to MaxUsed of them.
func (ds *derivedSession) notePast(c *gateway.Call) {
	if c.Kind == "result" || !c.Allowed {
		return
	}
	note := func(u string) {
		if len(ds.past) < MaxUsed && !slices.Contains(ds.s.Used, u) && !slices.Contains(ds.past, u) {
			ds.past = append(ds.past, u)
		}
	}
	note(c.Action + " " + c.Resource)
	for _, u := range c.Also {
		note(u)
	}
}

// Capped says, for a summary whose used pairs were cut at MaxUsed per
// session, which pairs a stored summary may hold or lack beside the
// derivation's. The recorder adds a call's pairs when its record is
// acknowledged, the derivation in log order: two calls of one session
// that fill its last place together can be counted in one order and
// logged in the other, so the stored summary keeps another last pair than
// the log's first MaxUsed. Past are the pairs the log shows used beyond
// the cut (at most MaxUsed per session), which a stored summary may hold;
// Full are the pairs of the sessions cut, which it may lack in exchange.
//
// Taken and Refusals are the pairs that refused calls took out of the
// used lists, and how many calls they moved to the denied (see Tally), of
// the sessions the log has not ended: their stored summaries, written
// lazily, may predate those results, and so still hold those pairs and
// count those calls as calls.
type Capped struct {
	Past, Full []string
	Taken      []string
	Refusals   int64
}

// SessionCapped is Capped for session id.
func (d *Deriver) SessionCapped(id string) Capped {
	ds := d.sessions[id]
	if ds == nil {
		return Capped{}
	}
	var c Capped
	if !d.endStored(ds) {
		c.Taken, c.Refusals = slices.Clone(ds.taken), ds.refusals
	}
	if len(ds.s.Used) >= MaxUsed {
		c.Past, c.Full = slices.Clone(ds.past), slices.Clone(ds.s.Used)
	}
	return c
}

// GrantCapped is Capped for grant id's scope used: its stored sessions'.
func (d *Deriver) GrantCapped(id string) Capped {
	var c Capped
	dg := d.grants[id]
	if dg == nil {
		return c
	}
	for _, sid := range dg.sessions {
		s := d.sessions[sid]
		if !d.stored(s) {
			continue
		}
		if len(s.s.Used) >= MaxUsed {
			c.Past = append(c.Past, s.past...)
			c.Full = append(c.Full, s.s.Used...)
		}
		if !d.endStored(s) {
			c.Taken = append(c.Taken, s.taken...)
			c.Refusals += s.refusals
		}
	}
	return c
}

// GrantRefusals returns how many calls of grant id's sessions a refused
// result moved to the denied (see Tally). The evidence bundle's verifier
// uses it to tell bundles whose rows the refused rule changed, which a
// verifier written before the rule derives otherwise.
func (d *Deriver) GrantRefusals(id string) int64 {
	var n int64
	if dg := d.grants[id]; dg != nil {
		for _, sid := range dg.sessions {
			n += d.sessions[sid].refusals
		}
	}
	return n
}

// GrantIDs returns the ids of every grant derived, in request order.
func (d *Deriver) GrantIDs() []string { return slices.Clone(d.order) }

// Grant returns the grant as the log implies it, with its Usage summed
// from its sessions as the store sums it. live reports whether one of its
// sessions has not ended in the log (its stored summary may then lag).
func (d *Deriver) Grant(id string) (g model.Grant, live, ok bool) {
	dg := d.grants[id]
	if dg == nil {
		return model.Grant{}, false, false
	}
	g = dg.g
	g.Approvals = slices.Clone(g.Approvals)
	u := model.Usage{}
	for _, sid := range dg.sessions {
		s := d.sessions[sid]
		if !d.stored(s) {
			continue
		}
		u.Sessions++
		u.Calls += s.s.Calls
		u.DeniedCalls += s.s.Denied
		u.BytesIn += s.s.BytesIn
		u.BytesOut += s.s.BytesOut
		u.ScopeUsed = append(u.ScopeUsed, s.s.Used...)
		live = live || !d.endStored(s)
	}
	slices.Sort(u.ScopeUsed)
	u.ScopeUsed = slices.Compact(u.ScopeUsed)
	g.Usage = u
	return g, live, true
}

// Problems returns why entries of grant id could not be applied.
func (d *Deriver) Problems(id string) []string {
	if dg := d.grants[id]; dg != nil {
		return slices.Clone(dg.problems)
	}
	return nil
}

// Session returns the session as the log implies it; ended reports whether
// the log holds its end, in the store (an end only in a journal, see
// SetStored, leaves the session open: its row is ended when the store
// gets the entry).
func (d *Deriver) Session(id string) (s model.Session, ended, ok bool) {
	ds := d.sessions[id]
	if ds == nil {
		return model.Session{}, false, false
	}
	s = ds.s
	s.Used = slices.Clone(s.Used)
	if ds.ended && !d.endStored(ds) {
		s.EndedAt = time.Time{}
	}
	return s, d.endStored(ds), true
}

// SessionCount is the number of sessions derived.
func (d *Deriver) SessionCount() int { return len(d.sessions) }

// SessionIDs returns the ids of every session derived, sorted.
func (d *Deriver) SessionIDs() []string {
	out := make([]string, 0, len(d.sessions))
	for id := range d.sessions {
		out = append(out, id)
	}
	sort.Strings(out)
	return out
}

// ErrNotInLog marks a stored row the log has no trace of.
var ErrNotInLog = errors.New("not in the log")

// field is one compared answer, rendered for the message.
type field struct {
	name          string
	stored, log   string
	lagging       bool // the stored value may be a prefix of the log's
	num           bool // a count, shown unquoted
	storedN, logN int64
}

func ts(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}

func js(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func differences(fs []field) []string {
	var out []string
	for _, f := range fs {
		if f.lagging {
			// A summary written lazily may trail the log, never lead it.
			if f.storedN > f.logN {
				out = append(out, fmt.Sprintf("%s is %d, log says at most %d", f.name, f.storedN, f.logN))
			}
			continue
		}
		switch {
		case f.stored == f.log:
		case f.num:
			out = append(out, fmt.Sprintf("%s is %d, log says %d", f.name, f.storedN, f.logN))
		default:
			out = append(out, fmt.Sprintf("%s is %q, log says %q", f.name, f.stored, f.log))
		}
	}
	return out
}

// upTo is the most calls a summary may count, the log counting calls:
// with live, a summary stored before a refused call's result counts it
// as a call still (Capped.Refusals).
func upTo(calls int64, live bool, capped Capped) int64 {
	if live {
		return calls + capped.Refusals
	}
	return calls
}

func count(name string, stored, log int64, live bool) field {
	return field{name: name, stored: fmt.Sprint(stored), log: fmt.Sprint(log), lagging: live, num: true, storedN: stored, logN: log}
}

// DiffGrant compares a stored grant (with Usage) with its derivation from
// the log and describes each answer that differs, e.g. `reason is
// "routine", log says "billing errors too"`. With live set (a session the
// log has not ended), usage counts may trail the log's.
func DiffGrant(stored, log model.Grant, live bool, capped Capped) []string {
	fs := []field{
		{name: "identity", stored: stored.Identity, log: log.Identity},
		{name: "identity_kind", stored: string(stored.IdentityKind), log: string(log.IdentityKind)},
		{name: "owner", stored: stored.Owner, log: log.Owner},
		{name: "target", stored: stored.Target, log: log.Target},
		{name: "target_kind", stored: stored.TargetKind, log: log.TargetKind},
		{name: "account", stored: stored.Account, log: log.Account},
		{name: "scope_requested", stored: strings.Join(stored.RequestedScope.Strings(), "; "), log: strings.Join(log.RequestedScope.Strings(), "; ")},
		{name: "scope_granted", stored: strings.Join(stored.GrantedScope.Strings(), "; "), log: strings.Join(log.GrantedScope.Strings(), "; ")},
		{name: "reason", stored: stored.Reason, log: log.Reason},
		{name: "duration", stored: stored.Duration.String(), log: log.Duration.String()},
		{name: "extends", stored: stored.Extends, log: log.Extends},
		{name: "status", stored: string(stored.Status), log: string(log.Status)},
		{name: "requested_at", stored: ts(stored.RequestedAt), log: ts(log.RequestedAt)},
		{name: "decide_by", stored: ts(stored.DecideBy), log: ts(log.DecideBy)},
		{name: "decided_at", stored: ts(stored.DecidedAt), log: ts(log.DecidedAt)},
		{name: "started_at", stored: ts(stored.StartedAt), log: ts(log.StartedAt)},
		{name: "expires_at", stored: ts(stored.ExpiresAt), log: ts(log.ExpiresAt)},
		{name: "ended_at", stored: ts(stored.EndedAt), log: ts(log.EndedAt)},
		{name: "end_reason", stored: stored.EndReason, log: log.EndReason},
		{name: "ended_by", stored: stored.EndedBy, log: log.EndedBy},
		{name: "end_comment", stored: stored.EndComment, log: log.EndComment},
		{name: "ended_auth", stored: stored.EndedAuth.String(), log: log.EndedAuth.String()},
		{name: "decision", stored: js(normDecision(stored.Decision)), log: js(normDecision(log.Decision))},
		{name: "approvals", stored: js(normApprovals(stored.Approvals)), log: js(normApprovals(log.Approvals))},
		{name: "credential_id", stored: stored.CredentialID, log: log.CredentialID},
		{name: "credential_fingerprint", stored: stored.CredentialFingerprint, log: log.CredentialFingerprint},
		{name: "auth", stored: stored.Auth, log: log.Auth},
		{name: "requested_from", stored: js(stored.RequestedFrom), log: js(log.RequestedFrom)},
		{name: "findings", stored: js(normFindings(stored.Findings)), log: js(normFindings(log.Findings))},
		count("sessions", stored.Usage.Sessions, log.Usage.Sessions, false),
		count("calls", stored.Usage.Calls, upTo(log.Usage.Calls, live, capped), live),
		count("denied_calls", stored.Usage.DeniedCalls, log.Usage.DeniedCalls, live),
		count("bytes_in", stored.Usage.BytesIn, log.Usage.BytesIn, live),
		count("bytes_out", stored.Usage.BytesOut, log.Usage.BytesOut, live),
	}
	out := differences(fs)
	if !usedAgrees(stored.Usage.ScopeUsed, log.Usage.ScopeUsed, live, capped, false) {
		out = append(out, fmt.Sprintf("scope_used is %q, log says %q", strings.Join(stored.Usage.ScopeUsed, "; "), strings.Join(log.Usage.ScopeUsed, "; ")))
	}
	return out
}

// DiffSession compares a stored session with its derivation from the log.
// While the log has not ended it (ended false), its counts may trail.
func DiffSession(stored, log model.Session, ended bool, capped Capped) []string {
	live := !ended
	fs := []field{
		{name: "grant", stored: stored.GrantID, log: log.GrantID},
		{name: "identity", stored: stored.Identity, log: log.Identity},
		{name: "target", stored: stored.Target, log: log.Target},
		{name: "client", stored: stored.Client, log: log.Client},
		{name: "started_at", stored: ts(stored.StartedAt), log: ts(log.StartedAt)},
		count("calls", stored.Calls, upTo(log.Calls, live, capped), live),
		count("denied", stored.Denied, log.Denied, live),
		count("bytes_in", stored.BytesIn, log.BytesIn, live),
		count("bytes_out", stored.BytesOut, log.BytesOut, live),
	}
	if ended || !stored.EndedAt.IsZero() {
		fs = append(fs, field{name: "ended_at", stored: ts(stored.EndedAt), log: ts(log.EndedAt)})
	}
	out := differences(fs)
	if !usedAgrees(stored.Used, log.Used, live, capped, true) {
		out = append(out, fmt.Sprintf("used is %q, log says %q", strings.Join(stored.Used, "; "), strings.Join(log.Used, "; ")))
	}
	return out
}

// usedAgrees reports whether a stored summary's used pairs agree with the
// log's: as sets (with live, contained in them), or, where the summary was
// cut at MaxUsed (capped), holding only pairs the log shows used (its
// first MaxUsed or capped.Past) and lacking only pairs of a session cut
// (capped.Full); one session's summary (same) then holds as many as the
// log's. With live, the stored pairs may also be ones that refused calls
// took out since (capped.Taken).
func usedAgrees(stored, log []string, live bool, capped Capped, same bool) bool {
	if live && len(capped.Taken) > 0 {
		log = append(slices.Clip(log), capped.Taken...)
	}
	if subset(stored, log, live) {
		return true
	}
	if len(capped.Past) == 0 {
		return false
	}
	for _, x := range stored {
		if !slices.Contains(log, x) && !slices.Contains(capped.Past, x) {
			return false
		}
	}
	if live {
		return true
	}
	if same && len(stored) != len(log) {
		return false
	}
	for _, x := range log {
		if !slices.Contains(stored, x) && !slices.Contains(capped.Full, x) {
			return false
		}
	}
	return true
}

// subset reports whether a equals b as sets, or (with prefix) is contained in it.
func subset(a, b []string, prefix bool) bool {
	for _, x := range a {
		if !slices.Contains(b, x) {
			return false
		}
	}
	if prefix {
		return true
	}
	for _, x := range b {
		if !slices.Contains(a, x) {
			return false
		}
	}
	return true
}

// normDecision makes empty and missing lists compare equal and times UTC.
func normDecision(d model.PolicyDecision) model.PolicyDecision {
	if len(d.PolicyIDs) == 0 {
		d.PolicyIDs = nil
	}
	if len(d.Pairs) == 0 {
		d.Pairs = nil
	}
	d.At = d.At.UTC()
	return d
}

func normApprovals(as []model.Approval) []model.Approval {
	if len(as) == 0 {
		return nil
	}
	out := slices.Clone(as)
	for i := range out {
		out[i].At = out[i].At.UTC()
		if len(out[i].Policies) == 0 {
			out[i].Policies = nil
		}
	}
	return out
}

// normFindings puts times in UTC so that a stored record and its
// derivation compare equal whatever zone they were decoded in.
func normFindings(fs []model.Finding) []model.Finding {
	out := make([]model.Finding, len(fs))
	for i, f := range fs {
		f.At = f.At.UTC()
		out[i] = f
	}
	return out
}
