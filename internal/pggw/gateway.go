package pggw

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/airlock-dev/airlock/internal/clock"
	"github.com/airlock-dev/airlock/internal/gateway"
	"github.com/airlock-dev/airlock/internal/netpark"
	"github.com/airlock-dev/airlock/internal/pgtls"
	"github.com/jackc/pgx/v5/pgconn"
)

// RoleManager prepares and removes the per-grant PostgreSQL role of one
// target; *pgroles.Manager implements it. Tests inject failures through it.
type RoleManager interface {
	// Ensure creates or resets g's login role with exactly its scope's
	// privileges and returns the name and password to log in with.
	Ensure(ctx context.Context, g *gateway.Grant) (Role, error)
	// Drop removes the role of grantID and terminates its backends.
	Drop(ctx context.Context, grantID string) error
}

// reconciler is the optional part of a RoleManager: dropping roles left
// behind by grants that ended while the gateway was down.
type reconciler interface {
	Reconcile(ctx context.Context, keep []string) error
}

// Target is one postgres target behind the gateway.
type Target struct {
	Name, Account string
	// Upstream is the target's admin DSN
	// (postgres://airlock_admin@host:port/db?sslmode=…). The gateway takes
	// host, port, database and TLS settings from it for the grant roles'
	// connections; its user and password are never used for a session.
	Upstream string
	// Roles creates the grant roles; *pgroles.Manager in production.
	Roles RoleManager
	// RedactParameters records this target's bound parameter values as
	// "<redacted n bytes>" (as Options.RedactParameters does for all).
	RedactParameters bool
	// MaxSessionsPerGrant bounds the sessions one grant holds open on this
	// gateway at once, logins on their way to one included; beyond it a
	// login is refused with FATAL 53300 (too_many_connections) before its
	// session starts. Each session holds an upstream connection: without a
	// bound one grant's agent could use the upstream's max_connections up
	// and lock out every other grant and the operators' own clients.
	// DefaultMaxSessionsPerGrant if zero; no bound if negative.
	MaxSessionsPerGrant int
}

// DefaultMaxSessionsPerGrant is Target.MaxSessionsPerGrant's default: a
// client's connection pool fits (pgx's, HikariCP's and psycopg's default
// to at most 10), and ten grants stay well below PostgreSQL's default
// max_connections of 100.
const DefaultMaxSessionsPerGrant = 10

// Options configures a Gateway.
type Options struct {
	Authority gateway.Authority
	Targets   []Target
	// TLS is the server certificate; nil answers every SSLRequest with 'N'
	// and closes a direct TLS connection. The gateway uses a copy whose
	// NextProtos is PostgreSQL's ALPN protocol ("postgresql") alone.
	TLS *tls.Config
	// RequireTLS refuses clients that do not negotiate TLS.
	RequireTLS bool
	// RedactParameters records every target's bound parameter values as
	// "<redacted n bytes>" instead of their text.
	RedactParameters bool
	// StartupTimeout bounds the client's part of the startup, from accept
	// to the session being ready (TLS, startup, SCRAM), and, apart, the
	// gateway's login to the upstream once the grant's role is ready; 10s
	// if zero.
	StartupTimeout time.Duration
	// MaxMessageBytes bounds one client message after authentication (a
	// query, a Bind with its values, a COPY chunk); 64 MiB if zero. An
	// unsent batch of extended-protocol messages may hold twice that.
	MaxMessageBytes int
	// MaxStartups bounds the connections still in their startup phase
	// (TLS, startup message, SCRAM, upstream login); 64 if zero. Beyond
	// it a new connection is refused at once with FATAL 53300
	// (too_many_connections).
	MaxStartups int
	// MaxStartupsPerHost bounds those of one source (an IPv4 address, an
	// IPv6 /64), so that one client cannot hold every slot; 16 if zero,
	// never more than MaxStartups. Beyond it the connection is refused
	// the same way.
	MaxStartupsPerHost int
	// ParkIdleAfter is about how long a session's relay loop waits for
	// its socket before, if the session is idle (nothing in flight), it
	// parks the socket and its goroutine ends (see park.go); 20ms if zero,
	// never if negative.
	ParkIdleAfter time.Duration
	// IdleUpstreamTTL is how long an upstream connection kept at a
	// session's clean end waits for the grant's next session (reuse.go);
	// 15s if zero, none kept if negative.
	IdleUpstreamTTL time.Duration
	// MaxIdleUpstreams bounds the connections kept per grant; 8 if zero.
	MaxIdleUpstreams int
	// Relays names the agents on whose behalf the control plane itself
	// connects (sql_query over /mcp): such a session's client is the
	// agent's address, not the control plane's. Nil if none.
	Relays *gateway.Relays
	// Slots, on replicas sharing a store, bounds a grant's sessions
	// across them (max_sessions_per_grant): a login this gateway's own
	// count admits takes a slot there too, held by the session (and by
	// the upstream connection it leaves for the grant's next session:
	// reuse.go) and given back at its end. Nil for a single process: the
	// gateway's own count is the bound, with no store round trip.
	Slots gateway.Slots
	// Clock is the gateway's time for grants: whether one has expired, and
	// the timer that cuts its sessions off at its expiry should the
	// control plane's own end of it be late; clock.Real if nil. Tests
	// inject a clock.Fake so that they never sleep to wait for an expiry.
	Clock  clock.Clock
	Logger *slog.Logger
}

// Gateway is the PostgreSQL wire-protocol gateway.
type Gateway struct {
	o       Options
	log     *slog.Logger
	targets map[string]*target
	keys    cancelKeys

	ctx    context.Context // ended by Close
	cancel context.CancelFunc

	mu     sync.Mutex
	grants map[string]*grantState
	lns    map[net.Listener]struct{}
	conns  map[*conn]struct{}
	closed bool
	wg     sync.WaitGroup

	// startups holds one token per connection in its startup phase.
	startups chan struct{}
	// startupsBySource counts the startup slots each source holds
	// (startupSource), under startupMu.
	startupMu        sync.Mutex
	startupsBySource map[string]int
	// panics counts panics contained to their connection; panicHook is the
	// tests' way to cause one.
	panics    panicCounter
	panicHook atomic.Pointer[panicHook]

	park      *netpark.Poller // nil: nothing is parked
	parkAfter time.Duration

	scram *verifiers // the grants' SCRAM verifiers (verifiers.go)

	idleTTL time.Duration // Options.IdleUpstreamTTL with its default
	maxIdle int
}

type target struct {
	Target
	cfg *pgconn.Config // parsed Upstream, copied per connection
	db  string
	// roleMu orders role work against Reconcile: Ensure and Drop share it,
	// Reconcile holds it alone while it computes what to keep.
	roleMu sync.RWMutex
}

// grantState is the gateway's view of one active grant of its targets.
type grantState struct {
	g  *gateway.Grant
	t  *target
	mu sync.Mutex
	// role is ready once roleDone is closed; roleErr is its failure.
	roleDone chan struct{}
	role     Role
	roleErr  error
	// sessions maps the grant's sessions to what their upstream login
	// asked for (nil until it is done; reuse.go).
	sessions map[*conn]*upstreamInfo
	// admitting counts the logins admitted (admit) whose session is not
	// yet in sessions; with len(sessions) it is what max_sessions_per_grant
	// bounds.
	admitting int
	// slots holds the sessions' slots among the replicas' (Options.Slots;
	// nil without).
	slots map[*conn]gateway.Slot
	ended bool
	// over is closed when the watcher ends the grant's sessions, for the
	// grant's end or its expiry on the gateway's clock (st.g.Done is
	// closed only by the former): what waits on the grant (reapOrphan)
	// stops then.
	over chan struct{}
	// idle holds the grant's kept upstream connections, idleClosed is
	// set once it keeps no more (reuse.go).
	idle       []*idleUpstream
	idleClosed bool
	// resets holds the timers of the sessions' resets under way.
	resets map[*conn]clock.Timer
	// cut holds why a session (or an admitted login) was cut off for its
	// slot among the replicas' (slotCut), until it is gone.
	cut map[*conn]string
}

const (
	defaultStartupTimeout = 10 * time.Second
	defaultMaxMessage     = 64 << 20
	roleTimeout           = 30 * time.Second
	// dropGraceAtClose is how long a grant role's drop still running
	// when Close is called goes on (on Options.Clock). A drop takes
	// milliseconds; one still running is waiting on the upstream, and a
	// role it leaves behind is dropped by the next start's Reconcile
	// (its grant is no longer active). Meanwhile the role's password is
	// Airlock's alone, and VALID UNTIL its grant's expiry.
	dropGraceAtClose = 2 * time.Second
)

// New checks o and subscribes to grant activations: when a grant for one of
// o.Targets becomes active its role is prepared in the background, and when
// the grant ends its sessions are closed with a FATAL error and its role is
// dropped.
func New(o Options) (*Gateway, error) {
	if o.Authority == nil {
		return nil, errors.New("pggw: no Authority")
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Clock == nil {
		o.Clock = clock.Real
	}
	if o.StartupTimeout <= 0 {
		o.StartupTimeout = defaultStartupTimeout
	}
	if o.MaxMessageBytes <= 0 {
		o.MaxMessageBytes = defaultMaxMessage
	}
	if o.MaxStartups <= 0 {
		o.MaxStartups = defaultMaxStartups
	}
	if o.MaxStartupsPerHost <= 0 {
		o.MaxStartupsPerHost = defaultMaxStartupsPerHost
	}
	o.MaxStartupsPerHost = min(o.MaxStartupsPerHost, o.MaxStartups)
	if o.TLS != nil {
		// As PostgreSQL 17: ALPN "postgresql" is offered, and a client
		// offering only other protocols is refused in the handshake
		// (no_application_protocol), after an SSLRequest too. A copy: the
		// caller's config serves the API and the AWS gateway as well.
		cfg := o.TLS.Clone()
		cfg.NextProtos = []string{alpnPostgres}
		o.TLS = cfg
	}
	g := &Gateway{
		o: o, log: o.Logger.With("gateway", "postgres"), startups: make(chan struct{}, o.MaxStartups), startupsBySource: map[string]int{}, scram: newVerifiers(),
		targets: map[string]*target{}, grants: map[string]*grantState{},
		lns: map[net.Listener]struct{}{}, conns: map[*conn]struct{}{},
	}
	g.keys.m = map[uint32]*cancelKey{}
	if g.parkAfter = o.ParkIdleAfter; g.parkAfter == 0 {
		g.parkAfter = defaultParkIdleAfter
	}
	if g.parkAfter > 0 {
		g.park = parker()
	}
	if g.idleTTL = o.IdleUpstreamTTL; g.idleTTL == 0 {
		g.idleTTL = defaultIdleUpstreamTTL
	}
	if g.maxIdle = o.MaxIdleUpstreams; g.maxIdle <= 0 {
		g.maxIdle = defaultMaxIdleUpstreams
	}
	for _, t := range o.Targets {
		if t.Name == "" || t.Roles == nil {
			return nil, fmt.Errorf("pggw: target %q needs a name and a role manager", t.Name)
		}
		if _, dup := g.targets[t.Name]; dup {
			return nil, fmt.Errorf("pggw: target %q listed twice", t.Name)
		}
		cfg, err := pgconn.ParseConfig(t.Upstream)
		if err != nil {
			// pgconn's message may quote the DSN, password included.
			return nil, fmt.Errorf("pggw: target %q: the upstream DSN does not parse", t.Name)
		}
		if cfg.Database == "" {
			return nil, fmt.Errorf("pggw: target %q: the upstream DSN names no database", t.Name)
		}
		// Checked at load too (internal/config); here for any caller:
		// the grant roles' SCRAM logins and every statement cross it.
		if err := pgtls.Check(cfg); err != nil {
			return nil, fmt.Errorf("pggw: target %q: the upstream DSN's %w", t.Name, err)
		}
		if t.MaxSessionsPerGrant == 0 {
			t.MaxSessionsPerGrant = DefaultMaxSessionsPerGrant
		}
		g.targets[t.Name] = &target{Target: t, cfg: cfg, db: cfg.Database}
	}
	g.ctx, g.cancel = context.WithCancel(context.Background())
	o.Authority.Subscribe(g.activated)
	for _, t := range g.targets {
		g.wg.Add(1)
		go g.reconcile(t)
	}
	return g, nil
}

// activated is the Subscribe callback; it must not block.
func (g *Gateway) activated(gr *gateway.Grant) {
	if _, ok := g.targets[gr.Target]; !ok {
		return
	}
	g.grantState(gr)
}

// grantState returns the state of gr, creating it (and starting its role
// and its watcher) on first sight: from Subscribe, or from a connection
// that got there first.
func (g *Gateway) grantState(gr *gateway.Grant) *grantState {
	t := g.targets[gr.Target]
	g.mu.Lock()
	defer g.mu.Unlock()
	if st, ok := g.grants[gr.ID]; ok {
		return st
	}
	st := &grantState{g: gr, t: t, roleDone: make(chan struct{}), over: make(chan struct{}), sessions: map[*conn]*upstreamInfo{}}
	g.grants[gr.ID] = st
	if g.closed {
		close(st.roleDone)
		st.roleErr = errors.New("gateway closed")
		return st
	}
	g.wg.Add(1)
	go g.watch(st)
	return st
}

// watch prepares the grant's role, then waits for the grant's end to close
// its sessions and drop the role.
func (g *Gateway) watch(st *grantState) {
	defer g.wg.Done()
	g.scram.prepare(st.g)
	g.ensureRole(st)
	// The grant's expiry ends its sessions too, should the control
	// plane's own end of it be late: Live alone refuses only the next
	// statement, not one running, a COPY streaming or a LISTEN.
	expired := make(chan struct{})
	timer := g.o.Clock.AfterFunc(st.g.ExpiresAt.Sub(g.o.Clock.Now()), func() { close(expired) })
	defer timer.Stop()
	select {
	case <-st.g.Done():
	case <-expired:
	case <-g.ctx.Done():
		st.closeIdle()
		return
	}
	g.scram.drop(st.g)
	st.closeIdle()
	st.mu.Lock()
	st.ended = true
	close(st.over)
	sessions := make([]*conn, 0, len(st.sessions))
	for c := range st.sessions {
		sessions = append(sessions, c)
	}
	st.mu.Unlock()
	msg := g.grantEndedMessage(st.g)
	for _, c := range sessions {
		c.kill(fatal(codeAdminShutdown, msg))
	}
	ctx, cancel := context.WithTimeout(context.Background(), roleTimeout)
	defer cancel()
	// Not ended by Close at once (the role must stop logging in), but
	// not for roleTimeout either: a drop waiting on the upstream (a lock,
	// a backend slow to exit) held the stop for up to 30 s.
	stopping := context.AfterFunc(g.ctx, func() { g.o.Clock.AfterFunc(dropGraceAtClose, cancel) })
	defer stopping()
	st.t.roleMu.RLock()
	err := st.t.Roles.Drop(ctx, st.g.ID)
	st.t.roleMu.RUnlock()
	if err != nil {
		g.log.Error("dropping the grant's role failed; it is retried at the next start", "grant", st.g.ID, "target", st.t.Name, "err", err)
	}
	g.mu.Lock()
	delete(g.grants, st.g.ID)
	g.mu.Unlock()
}

func (g *Gateway) grantEndedMessage(gr *gateway.Grant) string {
	return fmt.Sprintf("airlock: grant %s has %s; this session is closed", gr.ID, g.grantEnd(gr))
}

// grantEnd says how gr ended, to follow "has": "been revoked", "expired",
// "ended".
func (g *Gateway) grantEnd(gr *gateway.Grant) string {
	why := gr.EndReason()
	switch {
	case why == "" && !g.o.Clock.Now().Before(gr.ExpiresAt):
		why = "expired"
	case why == "":
		why = "ended"
	case why == "revoked":
		// "has expired", "has ended", but "has been revoked".
		why = "been revoked"
	}
	return why
}

func (g *Gateway) ensureRole(st *grantState) {
	ctx, cancel := context.WithTimeout(g.ctx, roleTimeout)
	defer cancel()
	st.t.roleMu.RLock()
	role, err := st.t.Roles.Ensure(ctx, st.g)
	st.t.roleMu.RUnlock()
	if err != nil {
		g.log.Error("preparing the grant's role failed", "grant", st.g.ID, "target", st.t.Name, "err", err)
	}
	st.mu.Lock()
	st.role, st.roleErr = role, err
	st.mu.Unlock()
	close(st.roleDone)
}

// roleFor waits for the grant's role. A failed preparation is retried once
// per connection, so that a transient admin-side failure at activation does
// not lock the grant out.
func (g *Gateway) roleFor(ctx context.Context, st *grantState) (Role, error) {
	select {
	case <-st.roleDone:
	case <-ctx.Done():
		return Role{}, ctx.Err()
	}
	st.mu.Lock()
	role, err := st.role, st.roleErr
	st.mu.Unlock()
	if err == nil {
		return role, nil
	}
	// Bounded as the preparation at activation is (on the gateway's
	// clock): an admin side that stalls held every new session's startup,
	// and its MaxStartups slot, until the grant ended.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	timer := g.o.Clock.AfterFunc(roleTimeout, cancel)
	defer timer.Stop()
	st.t.roleMu.RLock()
	role, err = st.t.Roles.Ensure(ctx, st.g)
	st.t.roleMu.RUnlock()
	if err == nil {
		st.mu.Lock()
		st.role, st.roleErr = role, nil
		st.mu.Unlock()
	}
	return role, err
}

// reconcile drops the roles of grants that are no longer active, once at
// start, if the role manager can.
func (g *Gateway) reconcile(t *target) {
	defer g.wg.Done()
	r, ok := t.Roles.(reconciler)
	if !ok {
		return
	}
	t.roleMu.Lock()
	defer t.roleMu.Unlock()
	var keep []string
	g.mu.Lock()
	for id, st := range g.grants {
		if st.t == t {
			keep = append(keep, id)
		}
	}
	g.mu.Unlock()
	ctx, cancel := context.WithTimeout(g.ctx, roleTimeout)
	defer cancel()
	if err := r.Reconcile(ctx, keep); err != nil {
		g.log.Error("reconciling grant roles failed", "target", t.Name, "err", err)
	}
}

// admit takes one of the grant's session slots for a login whose session
// is about to start: false if the grant already holds max of them (open
// sessions and admitted logins), or none is left to take. No bound if max
// is negative. The slot is the session's once addSession has it, and is
// given back by unadmit if the login fails before.
func (st *grantState) admit(max int) bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	if max >= 0 && len(st.sessions)+st.admitting >= max {
		return false
	}
	st.admitting++
	return true
}

// unadmit gives back the slot of an admitted login that ended before its
// session was added.
func (st *grantState) unadmit() {
	st.mu.Lock()
	st.admitting--
	st.mu.Unlock()
}

// addSession registers c, an admitted login, under its grant, its slot
// (and shared, its slot among the replicas', if any) becoming the
// session's; false if the grant has ended (the slots are given back).
func (st *grantState) addSession(c *conn, shared gateway.Slot) bool {
	st.mu.Lock()
	st.admitting--
	ended := st.ended
	if !ended {
		st.sessions[c] = nil
		if shared != nil {
			if st.slots == nil {
				st.slots = map[*conn]gateway.Slot{}
			}
			st.slots[c] = shared
		}
	}
	st.mu.Unlock()
	if ended && shared != nil {
		shared.Release()
	}
	return !ended
}

// removeSession takes c out of its grant's sessions, and gives back its
// slot among the replicas' unless its kept upstream took it (putIdle). It
// returns why the session was cut off for that slot (slotCut), if it was.
func (st *grantState) removeSession(c *conn) (cut string) {
	st.mu.Lock()
	delete(st.sessions, c)
	shared := st.slots[c]
	delete(st.slots, c)
	cut = st.cut[c]
	delete(st.cut, c)
	st.mu.Unlock()
	if shared != nil {
		shared.Release()
	}
	return cut
}

// slotCut ends c, a session or admitted login of the grant, whose slot
// among the replicas' could not be renewed before its lease ran out, or,
// gone from the store, could not be taken again (gateway.Slots.Take's
// cut): the grant could exceed max_sessions_per_grant. Why is recorded with the
// session's end (finish) or the login's refusal (startupCut).
func (st *grantState) slotCut(c *conn, why string) {
	st.mu.Lock()
	if st.cut == nil {
		st.cut = map[*conn]string{}
	}
	st.cut[c] = why
	st.mu.Unlock()
	c.gw.log.Warn("closing a session: "+why, "grant", st.g.ID, "client", c.raw.RemoteAddr().String())
	c.kill(fatal(codeAdminShutdown, "airlock: "+why+"; this session is closed: connect again later"))
}

// cutOf is why c was cut off for its slot (slotCut), or "".
func (st *grantState) cutOf(c *conn) string {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.cut[c]
}

// Serve accepts PostgreSQL clients on ln until ctx ends or the gateway is
// closed. It closes ln when it returns.
func (g *Gateway) Serve(ctx context.Context, ln net.Listener) error {
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		ln.Close()
		return net.ErrClosed
	}
	g.lns[ln] = struct{}{}
	g.mu.Unlock()
	// When ctx ends, so do the listener and the sessions it accepted: one
	// hook for all of them, not one per connection (each cost an idle
	// session a context and an entry in ctx's children).
	srv := &serving{ln: ln}
	stop := context.AfterFunc(ctx, func() {
		srv.stopped.Store(true)
		ln.Close()
		g.shutdownServed(srv)
	})
	defer stop()
	defer func() {
		g.mu.Lock()
		delete(g.lns, ln)
		g.mu.Unlock()
		ln.Close()
	}()
	var delay time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil || g.isClosed() || errors.Is(err, net.ErrClosed) {
				return nil
			}
			// Temporary failures (EMFILE…): back off instead of spinning.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			g.log.Warn("accept failed", "err", err, "retry_in", delay)
			select {
			case <-time.After(delay):
			case <-ctx.Done():
				return nil
			}
			continue
		}
		delay = 0
		source := startupSource(nc.RemoteAddr())
		if why := g.acquireStartup(source); why != "" {
			g.refuseBusy(nc, why)
			continue
		}
		c := newConn(g, nc)
		c.srv = srv
		c.su.source = source
		if !g.track(c) {
			g.releaseStartup(source)
			nc.Close()
			return nil
		}
		if ctx.Err() != nil {
			// Accepted as ctx ended: shutdownServed may have swept
			// before track.
			c.kill(fatal(codeAdminShutdown, "airlock: the gateway is shutting down"))
		}
		// A relaying session ends on its relay loops' goroutines (park.go).
		go func() {
			c.served()
			if !c.pk.relaying {
				c.release()
			}
		}()
	}
}

func (g *Gateway) isClosed() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.closed
}

func (g *Gateway) track(c *conn) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return false
	}
	g.conns[c] = struct{}{}
	g.wg.Add(1)
	c.pk.tracked = true
	return true
}

// serving identifies one Serve call, for the sessions it accepted.
type serving struct {
	ln net.Listener
	// stopped is set as the call's context ends, before its sessions
	// are ended: a statement they cut off was cut by the gateway's
	// shutdown (cutReason), whether or not Close follows.
	stopped atomic.Bool
}

// shutdownServed ends the sessions that the Serve call srv accepted, as
// its context ended.
func (g *Gateway) shutdownServed(srv *serving) {
	g.mu.Lock()
	var cs []*conn
	for c := range g.conns {
		if c.srv == srv {
			cs = append(cs, c)
		}
	}
	g.mu.Unlock()
	for _, c := range cs {
		c.kill(fatal(codeAdminShutdown, "airlock: the gateway is shutting down"))
	}
}

func (g *Gateway) untrack(c *conn) {
	g.mu.Lock()
	delete(g.conns, c)
	g.mu.Unlock()
}

// Close stops every listener, closes every session with a FATAL error and
// waits for the gateway's goroutines. Roles are left for the grants' end
// (or the next start's reconciliation): a restart must not cut off grants
// that are still active.
func (g *Gateway) Close() error {
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		return nil
	}
	g.closed = true
	for ln := range g.lns {
		ln.Close()
	}
	conns := make([]*conn, 0, len(g.conns))
	for c := range g.conns {
		conns = append(conns, c)
	}
	g.mu.Unlock()
	g.cancel()
	for _, c := range conns {
		c.kill(fatal(codeAdminShutdown, "airlock: the gateway is shutting down"))
	}
	g.wg.Wait()
	return nil
}
