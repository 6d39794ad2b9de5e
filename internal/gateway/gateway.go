// Package gateway is the seam between Airlock's control plane and its
// protocol gateways (AWS, PostgreSQL, …).
//
// A gateway authenticates each connection or call with a grant credential
// and gets back a *Grant served from memory: no database round trip on the
// hot path. The control plane ends a Grant the instant it is revoked, ended
// or expires: Live turns false and Done is closed, so a gateway can both
// refuse the next call and tear down connections already open. Everything a
// gateway sees goes into the tamper-evident log through a Session, whose
// Request returns only once the event is durable: a gateway forwards a
// call that can change state only after its record is stored, and refuses it
// if the record fails. A read may go upstream while its record is written
// (RequestAsync), but no byte of its answer reaches the client before the
// record is durable (Pending.Wait), and it is refused if the record fails.
package gateway

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"sync"
	"time"

	"github.com/airlock-dev/airlock/internal/scope"
)

// ErrNoGrant is returned for an unknown credential or one whose grant is no
// longer active. Gateways must not tell the two apart to the client.
var ErrNoGrant = errors.New("no active grant for this credential")

// ErrNotReady is the ErrNoGrant (errors.Is) of a control plane that
// cannot vouch for any credential right now (among replicas: while it
// cannot hear of revokes, its store being unreachable). A gateway may
// tell a caller who proved a live grant's secret to retry (S3: 503).
var ErrNotReady = fmt.Errorf("%w: the control plane cannot vouch for credentials right now", ErrNoGrant)

// RefusedError is a session the control plane refuses to start for a
// reason the client may be told (identity_binding: refuse on a moved
// credential). Gateways answer it with their usual refusal (S3
// AccessDenied, PostgreSQL 28000) carrying Reason.
type RefusedError struct{ Reason string }

func (e *RefusedError) Error() string { return e.Reason }

// Authority is what the control plane offers gateways.
type Authority interface {
	// Authenticate returns the live grant holding credentialID after a
	// constant-time check of secret.
	Authenticate(credentialID, secret string) (*Grant, error)
	// Lookup returns the live grant holding credentialID without a secret
	// check, for protocols (SigV4, SCRAM) where the gateway proves the
	// client holds Grant.Secret itself.
	Lookup(credentialID string) (*Grant, error)
	// StartSession opens a recorded session under g; client describes the
	// peer (address, user agent). The session.started event is durable when
	// it returns.
	StartSession(ctx context.Context, g *Grant, client string) (*Session, error)
	// Subscribe calls fn for every grant that becomes active from now on,
	// and at once for each grant already active, so that a gateway can
	// prepare upstream state (a PostgreSQL role) when a grant starts and
	// tear it down when Done closes. fn runs on the control plane's path
	// and must not block: hand slow work to a goroutine.
	Subscribe(fn func(*Grant))
	// Reject records a connection or call refused before any session
	// could start (unknown credential, bad signature or password, wrong
	// database, too many connections…), so failed attempts are in the log
	// too. Their rate is the client's to choose, so the control plane may
	// count an attempt instead of writing it (see RejectAggregator): then
	// it returns at once, and the attempt reaches the log in a summary at
	// the end of the interval. An attempt written individually is durable
	// when Reject returns. Gateways call it for every attempt and do no
	// rate limiting of their own.
	Reject(ctx context.Context, r Rejection) error
}

// Rejection is an attempt a gateway refused before a session existed.
type Rejection struct {
	// Gateway is "aws" or "postgres".
	Gateway string `json:"gateway"`
	// Target is the target the attempt was for, if known.
	Target string `json:"target,omitempty"`
	// Client is the peer address (and user agent, where there is one).
	Client string `json:"client"`
	// CredentialID is the credential the client presented, if any; never
	// its secret.
	CredentialID string `json:"credential_id,omitempty"`
	// GrantID is the grant of that credential, if it was one (for example
	// an ended grant's credential presented again).
	GrantID string `json:"grant_id,omitempty"`
	// Reason says why, for the reviewer (the error code and message).
	Reason string `json:"reason"`
}

// Info is what a gateway knows of an active grant. It never changes.
type Info struct {
	ID           string
	Identity     string
	Owner        string
	Target       string
	TargetKind   string
	Account      string
	Scope        scope.Scope
	ExpiresAt    time.Time
	CredentialID string
	// Secret is the credential secret, for gateways that verify a signature
	// made with it. Never log it.
	Secret string
	// SessionToken is the AWS-style session token handed out with the
	// credential; the AWS gateway requires it on every call. Never log it.
	SessionToken string
}

// Grant is an active grant as a gateway sees it: fixed Info plus liveness.
type Grant struct {
	Info

	once   sync.Once
	done   chan struct{}
	mu     sync.Mutex
	reason string
}

// NewGrant returns a live Grant. The control plane calls it on activation.
func NewGrant(info Info) *Grant {
	return &Grant{Info: info, done: make(chan struct{})}
}

// Live reports whether calls may proceed under g at time now: not ended and
// not past its expiry, to the nanosecond, whether or not the expiry timer
// has fired yet.
func (g *Grant) Live(now time.Time) bool {
	select {
	case <-g.done:
		return false
	default:
		return now.Before(g.ExpiresAt)
	}
}

// Allows reports whether g is live at now and its scope covers action on
// resource.
func (g *Grant) Allows(now time.Time, action, resource string) bool {
	return g.Live(now) && g.Scope.Allows(action, resource)
}

// Done is closed when the grant ends; gateways select on it to close open
// connections and in-flight transfers.
func (g *Grant) Done() <-chan struct{} { return g.done }

// EndReason says why the grant ended ("expired", "revoked", …), or "" while live.
func (g *Grant) EndReason() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.reason
}

// End marks the grant ended. Only the control plane calls it. It is safe to
// call more than once; the first reason wins.
func (g *Grant) End(reason string) {
	g.once.Do(func() {
		g.mu.Lock()
		g.reason = reason
		g.mu.Unlock()
		close(g.done)
	})
}

// Call is one recorded gateway event: a request (before it is forwarded) or
// its result.
type Call struct {
	// Kind is "request" (recorded before forwarding) or "result".
	Kind     string `json:"kind"`
	Action   string `json:"action"`
	Resource string `json:"resource,omitempty"`
	// Also lists the call's other checks as "action resource", beyond
	// Action and Resource: a copy's source object, a batch delete's other
	// keys. Reviews count them as scope used.
	Also []string `json:"also,omitempty"`
	// Allowed is false for calls the gateway refused.
	Allowed bool `json:"allowed"`
	// Refused marks a result whose call the upstream refused for lack of
	// privilege before it did anything (PostgreSQL's 42501 with no row,
	// no completion and no error context: see pggw's record.go). The
	// review counts the call as denied, not as scope used (review.Count).
	// Only results carry it, and only those of a request without Also.
	Refused bool `json:"refused,omitempty"`
	// OutcomeAtResult (not logged) marks a request whose outcome an
	// operator's metrics take from its result, and that result: the
	// upstream may refuse it (Refused), which the metrics count apart
	// from the calls allowed, and a counter cannot take back a call
	// counted as allowed at its request (sessions.Observer). pggw sets it
	// on a statement's request without Also, and on its result.
	OutcomeAtResult bool `json:"-"`
	// Params holds the parameters that matter for review (key, prefix, range,
	// statement text…), already redacted by the gateway.
	Params map[string]string `json:"params,omitempty"`
	// Pairs are more of the call's parameters, as pairs rather than in
	// Params: a map costs two allocations however few its entries, and a
	// gateway that records a call per statement keeps the pairs in memory
	// it allocates anyway (pggw's statement entry). The log records them
	// among Params, in the same member and order (AppendJSON), so a reader
	// of the log finds them in Params; a key must be neither in both nor
	// twice in Pairs (AppendJSON fails). encoding/json leaves them out:
	// WithPairsInParams makes the call a reader of its entry decodes. The
	// slice is the caller's and must not change once the call is recorded.
	Pairs    []Param       `json:"-"`
	Status   string        `json:"status,omitempty"`
	Error    string        `json:"error,omitempty"`
	BytesIn  int64         `json:"bytes_in,omitempty"`
	BytesOut int64         `json:"bytes_out,omitempty"`
	Rows     int64         `json:"rows,omitempty"`
	Duration time.Duration `json:"duration_ns,omitempty"`
}

// Param is one of a call's parameters as a pair (Call.Pairs).
type Param struct{ Key, Value string }

// WithPairsInParams returns c with its Pairs moved into Params, a new map
// (Params itself is not changed): the call as a reader of its log entry
// decodes it. A call without Pairs is returned as it is.
func (c Call) WithPairsInParams() Call {
	if len(c.Pairs) == 0 {
		return c
	}
	m := make(map[string]string, len(c.Params)+len(c.Pairs))
	maps.Copy(m, c.Params)
	for _, p := range c.Pairs {
		m[p.Key] = p.Value
	}
	c.Params, c.Pairs = m, nil
	return c
}

// Session records the calls of one connection or stream under a grant.
type Session struct {
	ID    string
	Grant *Grant
	rec   SessionRecorder
	once  sync.Once
	err   error
}

// Recorder is the control plane's side of a Session: how its requests and
// results reach the log. Only the control plane (and test fakes) make one.
type Recorder struct {
	// Request appends a request durably.
	Request func(ctx context.Context, c Call) error
	// RequestAsync queues a request and returns a function that waits
	// until it is durable (nil) or failed. Nil means Request is used.
	RequestAsync func(ctx context.Context, c Call) func(context.Context) error
	// Result records what a call did; it may batch.
	Result func(ctx context.Context, c Call) error
	// End closes the recording.
	End func(ctx context.Context) error
}

// NewSession wires a Session to its recorder. Only the control plane calls it.
func NewSession(id string, g *Grant, r Recorder) *Session {
	return NewSessionOf(id, g, &funcRecorder{r})
}

// SessionRecorder is Recorder as methods, for NewSessionOf: a control
// plane whose per-session state has them passes that state, and a session
// holds no method values (a Recorder's four are a closure each, 64 bytes
// for the session's life, and make the Session 16 bytes larger: bench/
// README.md, "An idle session's own objects, trimmed"). Its methods are
// Recorder's fields, but RequestAsync returns a Waiter where Recorder's
// returns a func: a recorder's wait holds the call and the log's pending
// append, and a func over them was a closure and the call apart, two
// allocations per request, where a Waiter of the recorder's own is one.
// RequestAsync returns nil, having done nothing, where a recorder has no
// asynchronous request (Request is then used).
type SessionRecorder interface {
	Request(ctx context.Context, c Call) error
	RequestAsync(ctx context.Context, c Call) Waiter
	Result(ctx context.Context, c Call) error
	End(ctx context.Context) error
}

// Waiter is a request's record being written (SessionRecorder.RequestAsync):
// Wait blocks until it is durable (nil) or has failed. It is called at
// most once.
type Waiter interface {
	Wait(ctx context.Context) error
}

// WaitFunc is a func as a Waiter (a Recorder's wait); a func converts to
// an interface without allocating.
type WaitFunc func(context.Context) error

func (f WaitFunc) Wait(ctx context.Context) error { return f(ctx) }

// NewSessionOf is NewSession with r's methods as the recorder.
func NewSessionOf(id string, g *Grant, r SessionRecorder) *Session {
	s := new(Session)
	InitSession(s, id, g, r)
	return s
}

// InitSession is NewSessionOf into s, a zero Session that the caller's
// per-session state holds (and never copies): a control plane whose state
// lives exactly as long as the session keeps it there rather than in an
// object of its own, 80 bytes apart for as long as an idle session lasts
// (bench/HISTORY.md, "An idle session's recorder in one object").
func InitSession(s *Session, id string, g *Grant, r SessionRecorder) {
	s.ID, s.Grant, s.rec = id, g, r
}

// funcRecorder is a Recorder as a SessionRecorder.
type funcRecorder struct{ f Recorder }

func (r *funcRecorder) Request(ctx context.Context, c Call) error { return r.f.Request(ctx, c) }

func (r *funcRecorder) RequestAsync(ctx context.Context, c Call) Waiter {
	if r.f.RequestAsync == nil {
		return nil
	}
	if w := r.f.RequestAsync(ctx, c); w != nil {
		return WaitFunc(w)
	}
	return nil
}

func (r *funcRecorder) Result(ctx context.Context, c Call) error { return r.f.Result(ctx, c) }

func (r *funcRecorder) End(ctx context.Context) error { return r.f.End(ctx) }

// Request records c as a request (Kind "request"). It is durable when
// Request returns, and an error means the call must not be forwarded.
func (s *Session) Request(ctx context.Context, c Call) error {
	c.Kind = "request"
	return s.rec.Request(ctx, c)
}

// Pending is a request whose record is being written; see RequestAsync.
type Pending struct {
	wait Waiter
	err  error
	once sync.Once
	res  error
}

// Wait blocks until the request's record is durable (nil) or has failed.
// Until Wait returns nil, no byte of the call's response may reach the
// client; on error the response must be discarded and the call refused.
// Calling it again returns the same answer.
func (p *Pending) Wait(ctx context.Context) error {
	p.once.Do(func() {
		if p.err != nil || p.wait == nil {
			p.res = p.err
			return
		}
		p.res = p.wait.Wait(ctx)
	})
	return p.res
}

// RequestAsync starts recording c as a request and returns at once, for a
// read that may travel upstream while its record is written ("durable
// before disclosure", see DESIGN.md "Fail closed"). Only calls that cannot
// change upstream state may use it; writes use Request.
func (s *Session) RequestAsync(ctx context.Context, c Call) *Pending {
	return s.RequestAsyncIn(ctx, c, new(Pending))
}

// RequestAsyncIn is RequestAsync with the Pending in the caller's memory:
// p, a zero Pending (a field of something the call allocates anyway, so
// that the record costs no allocation of its own), which it returns.
func (s *Session) RequestAsyncIn(ctx context.Context, c Call, p *Pending) *Pending {
	c.Kind = "request"
	if w := s.rec.RequestAsync(ctx, c); w != nil {
		p.wait = w
		return p
	}
	p.err = s.rec.Request(ctx, c)
	return p
}

// Result records what a call did (Kind "result"). The control plane
// batches results (several to one log entry, logged within a short
// interval and before the session ends), so Result may return before it
// is durable, and a result's Params must repeat its request's pairing key
// ("n" for a statement number, "request_id" for an AWS call) for the
// transcript to show it under its request.
func (s *Session) Result(ctx context.Context, c Call) error {
	c.Kind = "result"
	return s.rec.Result(ctx, c)
}

// End closes the session's recording. Calling it again does nothing.
func (s *Session) End(ctx context.Context) error {
	s.once.Do(func() { s.err = s.rec.End(ctx) })
	return s.err
}

// Slots bounds a grant's sessions across the replicas sharing a store (a
// postgres target's max_sessions_per_grant); the control plane offers it
// only then (grants.Service.SessionSlots), and a gateway alone counts its
// own sessions.
type Slots interface {
	// Take takes one of g's max slots for a session about to start: nil
	// (and no error) if g's sessions on every replica already hold max.
	// cut runs (once, on a goroutine of its own, with the reason) if the
	// slot's lease is about to pass before this replica could renew it
	// (its store unreachable): the other replicas are about to count the
	// slot out, and the session must end, or the grant could hold more
	// than max (fail closed); so too if the slot, gone from the store (a
	// restart of the database), cannot be taken again: the grant's
	// sessions on other replicas fill it.
	Take(ctx context.Context, g *Grant, max int, cut func(why string)) (Slot, error)
}

// Slot is a session's slot among a grant's (Slots.Take).
type Slot interface {
	// Keep holds the slot on for the upstream connection that the
	// session, now ended, left for the grant's next session. A login
	// elsewhere that finds the grant full may take a kept slot over, or
	// its lease may pass unrenewed (as for Take's cut): lost then runs
	// instead of cut (once, on a goroutine of its own), and the
	// connection must be closed.
	Keep(lost func())
	// Release gives the slot back; it waits for the store (bounded) and
	// may be called more than once.
	Release()
}
