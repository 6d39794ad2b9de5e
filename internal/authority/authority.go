// Package authority is what the protocol gateways ask of the control
// plane (gateway.Authority): which live grant a credential belongs to,
// whether a session may start and who records it, and where an attempt
// refused before any session goes.
//
// It answers from memory. The grant lifecycle (internal/grants) adds a
// grant when it activates it (Add) and cuts it off when it ends, is
// revoked or expires (CutOff): Done closes and Live turns false at once,
// so gateways can refuse the next call and close what is open. A gateway
// never waits for the store on its per-call path. What the lifecycle
// knows and this package does not — whether, among replicas, a revoke may
// have been missed (Ready); a credential activated on another replica and
// not yet here (Miss); whether the client of a new session is where the
// grant was requested from (Admit) — it provides as hooks. Sessions and
// refused attempts are recorded by a sessions.Recorder.
package authority

import (
	"context"
	"crypto/subtle"
	"errors"
	"sync"
	"time"

	"github.com/airlock-dev/airlock/internal/gateway"
	"github.com/airlock-dev/airlock/internal/model"
)

// Options configure an Authority. Now, Recorder and NewSessionID are
// required.
type Options struct {
	// Now is the clock against which grants are live.
	Now func() time.Time
	// Recorder records the sessions started and the attempts refused
	// (sessions.Recorder).
	Recorder Recorder
	// NewSessionID returns a new session's id.
	NewSessionID func() string
	// Ready, if set, says whether credentials may be answered at all;
	// while it returns false every lookup is refused (among replicas, a
	// revoke may have been missed while the replica could not hear of it).
	Ready func() bool
	// Miss, if set, is asked for a credential not in memory, and returns
	// its grant if it has one that is active, after Adding it; nil
	// otherwise (among replicas: a grant activated elsewhere whose notice
	// is late).
	Miss func(credentialID string) *gateway.Grant
	// Admit, if set, decides whether session sid under g may start for
	// client; its error is returned to the gateway (a
	// *gateway.RefusedError, for a credential that moved).
	Admit func(ctx context.Context, g *gateway.Grant, client, sid string) error
}

// Recorder records what the gateways see; *sessions.Recorder is the one
// airlock serve uses.
type Recorder interface {
	// Start records the start of session sid under g for client and
	// returns the session, whose calls it records from then on.
	Start(ctx context.Context, g *gateway.Grant, sid, client string) (*gateway.Session, error)
	// Reject records an attempt refused before any session.
	Reject(ctx context.Context, r gateway.Rejection) error
}

// Authority implements gateway.Authority over the grants Added to it.
type Authority struct {
	o Options

	mu      sync.RWMutex
	byCred  map[string]*gateway.Grant
	byGrant map[string]*gateway.Grant
	// from is the requester's instance of the active grants that have
	// one (Admit compares a session's client with it): read from the
	// store at every session start, it cost a query and about 5 KB of
	// garbage per connection.
	from map[string]*model.Instance
	subs []func(*gateway.Grant)
}

var _ gateway.Authority = (*Authority)(nil)

// New returns an Authority holding no grant.
func New(o Options) (*Authority, error) {
	if o.Now == nil || o.Recorder == nil || o.NewSessionID == nil {
		return nil, errors.New("authority: Now, Recorder and NewSessionID are required")
	}
	return &Authority{o: o, byCred: map[string]*gateway.Grant{}, byGrant: map[string]*gateway.Grant{}, from: map[string]*model.Instance{}}, nil
}

// Add makes g answer for its credential, with from the instance its
// requester asked from (nil if none), and tells every subscriber.
func (a *Authority) Add(g *gateway.Grant, from *model.Instance) {
	a.mu.Lock()
	a.byCred[g.CredentialID] = g
	a.byGrant[g.ID] = g
	if from != nil {
		f := *from
		a.from[g.ID] = &f
	}
	subs := a.subs
	a.mu.Unlock()
	for _, fn := range subs {
		fn(g)
	}
}

// CutOff removes grant id and ends it for reason: its Done closes, which
// ends the calls and sessions open under it. It returns the grant, or nil
// if it was not here.
func (a *Authority) CutOff(id, reason string) *gateway.Grant {
	a.mu.Lock()
	g := a.byGrant[id]
	if g != nil {
		delete(a.byGrant, id)
		delete(a.byCred, g.CredentialID)
	}
	delete(a.from, id)
	a.mu.Unlock()
	if g != nil {
		g.End(reason)
	}
	return g
}

// Grant returns active grant id, or nil.
func (a *Authority) Grant(id string) *gateway.Grant {
	a.mu.RLock()
	defer a.mu.RUnlock()
	return a.byGrant[id]
}

// Cached returns the grant holding credentialID if it is in memory,
// without Ready, Miss or a liveness check.
func (a *Authority) Cached(credentialID string) *gateway.Grant {
	a.mu.RLock()
	defer a.mu.RUnlock()
	return a.byCred[credentialID]
}

// From returns the instance grant id's requester asked from, or nil.
func (a *Authority) From(id string) *model.Instance {
	a.mu.RLock()
	defer a.mu.RUnlock()
	return a.from[id]
}

// IDs returns the ids of the grants held.
func (a *Authority) IDs() []string {
	a.mu.RLock()
	defer a.mu.RUnlock()
	ids := make([]string, 0, len(a.byGrant))
	for id := range a.byGrant {
		ids = append(ids, id)
	}
	return ids
}

// Lookup implements gateway.Authority.
func (a *Authority) Lookup(credentialID string) (*gateway.Grant, error) {
	if a.o.Ready != nil && !a.o.Ready() {
		return nil, gateway.ErrNotReady
	}
	g := a.Cached(credentialID)
	if g == nil && a.o.Miss != nil {
		g = a.o.Miss(credentialID)
	}
	if g == nil || !g.Live(a.o.Now()) {
		return nil, gateway.ErrNoGrant
	}
	return g, nil
}

// Authenticate implements gateway.Authority: Lookup, then a constant-time
// comparison of secret with the grant's.
func (a *Authority) Authenticate(credentialID, secret string) (*gateway.Grant, error) {
	g, err := a.Lookup(credentialID)
	if err != nil {
		return nil, err
	}
	if subtle.ConstantTimeCompare([]byte(secret), []byte(g.Secret)) != 1 {
		return nil, gateway.ErrNoGrant
	}
	return g, nil
}

// Subscribe implements gateway.Authority.
func (a *Authority) Subscribe(fn func(*gateway.Grant)) {
	a.mu.Lock()
	a.subs = append(a.subs, fn)
	active := make([]*gateway.Grant, 0, len(a.byGrant))
	for _, g := range a.byGrant {
		active = append(active, g)
	}
	a.mu.Unlock()
	for _, g := range active {
		fn(g)
	}
}

// StartSession implements gateway.Authority: the grant must be live and
// Admit must let the client in; the Recorder then records the session from
// its start to its end.
func (a *Authority) StartSession(ctx context.Context, g *gateway.Grant, client string) (*gateway.Session, error) {
	if !g.Live(a.o.Now()) {
		return nil, gateway.ErrNoGrant
	}
	sid := a.o.NewSessionID()
	if a.o.Admit != nil {
		if err := a.o.Admit(ctx, g, client, sid); err != nil {
			return nil, err
		}
	}
	return a.o.Recorder.Start(ctx, g, sid, client)
}

// Reject implements gateway.Authority: the attempt is written
// individually or counted into a summary (sessions.Recorder.Reject), so
// that a flood of failed attempts costs a bounded number of log writes.
func (a *Authority) Reject(ctx context.Context, r gateway.Rejection) error {
	return a.o.Recorder.Reject(ctx, r)
}
