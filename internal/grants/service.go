// Package grants runs the grant lifecycle: request, policy decision, human
// approval, activation, expiry, revocation and ending, plus the identities
// around them. The gateways are served by its Authority
// (internal/authority), which the lifecycle feeds: a grant enters it when
// activated and is cut off when it ends; sessions and refused attempts are
// recorded by internal/sessions.
//
// Every state change is written through the audit log's group commit
// (auditlog.Log.Do): the new grant record and the log entries that describe
// the change commit in one transaction, so the store never holds a state the
// log does not explain. Sessions are the exception: their start, calls and
// (on a store of its own) end are plain appends, and a session's row is
// written from its entries by the log itself, in the transaction that
// stores them (review.StoreRows as auditlog.Options.Rows, which New
// requires; see internal/sessions). Changes to one grant are serialised by
// a per-grant lock, which makes races (two approvers, approve against cancel, revoke
// during approval, expiry during approval) resolve in one order that the
// store, the in-memory cache and the log all agree on.
//
// Active grants live in memory as gateway.Grant values, indexed by
// credential id, so gateways authorize calls without touching the database.
// Each active grant has a timer set for exactly its expiry; the cached grant
// also checks the clock itself, so a call is refused from the expiry instant
// even if the timer fires late.
//
// # Several replicas
//
// Replicas of `airlock serve` sharing one PostgreSQL store each run a
// Service with a Notifier (*pgstore.Listener); without one (the SQLite
// default) nothing below happens and a single process behaves as described
// above. With one:
//
//   - Notices. Every lifecycle transaction (request, approve, deny,
//     revoke, end, expire, cancel) also queues pg_notify with the grant's
//     id and the replica's id (store.GrantNotifier). PostgreSQL delivers it
//     only if the transaction commits, after the commit, in commit order.
//     Each replica listens on one dedicated connection (outside the pool)
//     and, for each notice from another replica, re-reads the grant under
//     its lock and makes its memory match the record (applyRecord): an
//     active grant enters the gateway cache with its expiry timer and its
//     Subscribe callbacks (the PostgreSQL gateway prepares its role); a
//     pending one gets its decision-deadline timer; an ended one is cut off,
//     closing Done, which ends open S3 transfers and PostgreSQL sessions on
//     this replica. The delay is one commit plus one read: milliseconds
//     (TestReplicasRevokeCutsEverywhere measures it), well inside the one
//     second the product promises.
//   - Lost notices. While the listening connection is down, nothing tells
//     the replica of a revoke, so Ready reports an error (the /readyz
//     answer), Lookup and Authenticate refuse every credential, and the
//     listener reconnects with backoff. After LISTEN succeeds it re-reads
//     every grant open in the store or in memory (reconcile) before the
//     replica is ready again; in that order no change falls between the
//     re-read and the first notice. A notice that cannot be applied (the
//     store read failed) makes the replica unready until a full re-read
//     succeeds.
//   - Cache misses. A credential not in memory (its notice is late, or was
//     lost) is looked up in the store by credential id
//     (store.CredentialReader), then its grant re-read under its lock and
//     activated here if active, so an older read can never undo a revoke
//     applied meanwhile. Unknown credentials are bounded: a malformed id
//     never reaches the store, an id that found nothing is remembered for
//     ten seconds (at most 10,000 of them), concurrent misses of one id
//     share one read, at most four reads run at once (a miss waits up to a
//     second for its turn, then is refused), and at most 100 a second on
//     average (a token bucket; beyond it a miss is refused unread).
//   - Expiry without coordination. Every replica that holds a grant arms
//     its own timer, and the cached grant checks the clock itself, so every
//     replica refuses calls from the expiry instant. Each timer then runs
//     the expire transition; the transaction re-reads the grant, and all
//     but the first find it no longer active and write nothing: the
//     grant.expired entry is written once. Decision deadlines work the same
//     way. The replicas' clocks may disagree, so each reads its time as its
//     own clock corrected by its measured offset from the database's
//     (dbclock.go): the times in the record, and the instants each replica
//     cuts a grant off and cancels a request at, are the database's.
//   - Decisions. The per-grant lock above is per process. Across replicas
//     the transition re-reads the grant inside the store transaction and
//     decides from that record, never from memory; pgstore serialises
//     writers with an advisory lock and locks the row (FOR UPDATE). Two
//     replicas approving and denying one request at once therefore resolve
//     in commit order: the first wins, the second gets a conflict naming
//     the state it found, and the log and the row agree
//     (TestReplicasDecisionRace).
//   - Identities. Adding, disabling or changing an identity sends a notice
//     too (store.IdentityNotice), and the other replicas re-read it into
//     their directory, so an agent disabled on one replica is refused on
//     all; the reconciliation re-reads every identity.
//   - Start. Start loads every open grant and arms its timers, as for one
//     process, but does not end the open sessions it finds: they may be
//     another live replica's. It returns once the listener has connected
//     and reconciled (or fails after fifteen seconds).
//   - Sessions of a dead replica are ended by the others at their last
//     recorded event (see sweep.go).
//
// PostgreSQL roles of grants (package pgroles) follow the grant on every
// replica through Subscribe and Done; LiveGrants tells pgroles which
// grants are live in the store when it reconciles roles.
package grants

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/airlock-dev/airlock/internal/apierr"
	"github.com/airlock-dev/airlock/internal/auditlog"
	"github.com/airlock-dev/airlock/internal/authn"
	"github.com/airlock-dev/airlock/internal/authority"
	"github.com/airlock-dev/airlock/internal/clock"
	"github.com/airlock-dev/airlock/internal/findings"
	"github.com/airlock-dev/airlock/internal/gateway"
	"github.com/airlock-dev/airlock/internal/model"
	"github.com/airlock-dev/airlock/internal/policy"
	"github.com/airlock-dev/airlock/internal/sessions"
	"github.com/airlock-dev/airlock/internal/store"
)

// Target is what the lifecycle needs to know about a configured target.
type Target struct {
	Name    string
	Kind    string
	Account string
	// Database is a postgres target's database, the one its upstream URL
	// names ("" skips the check). A scope statement naming another
	// database would be granted and then give its role nothing
	// (pgroles), so Request refuses it, saying which database to name.
	Database string
}

// Options configures a Service.
type Options struct {
	Store     store.Store
	Log       *auditlog.Log
	Policy    *policy.Engine
	Directory *authn.Directory
	Targets   []Target
	// MaxDuration is the hard cap on any grant, whatever policy says.
	MaxDuration time.Duration
	// PendingTimeout is how long a request waits for a decision.
	PendingTimeout time.Duration
	RequireReason  bool
	// CredentialKey derives grant credential secrets (HMAC key, 32 bytes).
	CredentialKey []byte
	// Clock runs the expiry and decision-deadline timers and tells the
	// time; clock.Real if nil. Tests pass a clock.Fake and move it.
	Clock clock.Clock
	// Now, if set and Clock is not, replaces only the time Clock reads
	// (timers stay real).
	// MaxWaiters and MaxWaitersPerIdentity bound the open long polls
	// (Wait), in total and per identity; 0 means the defaults
	// (DefaultMaxWaiters, DefaultMaxWaitersPerIdentity).
	MaxWaiters, MaxWaitersPerIdentity int
	Now                               func() time.Time
	Logger                            *slog.Logger
	// Rejections bounds how many refused attempts are logged one by one;
	// the rest are counted into summaries (see gateway.RejectAggregator).
	Rejections gateway.RejectPolicy
	// Observer, if set, counts the sessions, calls and refused attempts
	// the gateways record (sessions.Options.Observer), for metrics.
	Observer sessions.Observer
	// Findings detects shared identities and moved credentials (nil: no
	// findings are raised).
	Findings *findings.Detector
	// Binding returns the identity_binding ("record" or "refuse") that
	// applies to an identity (nil: record).
	Binding func(identity string) string

	// Notifier, for replicas sharing a PostgreSQL store, carries grant
	// changes between them (see "Several replicas" above); nil for a
	// single process.
	Notifier Notifier
	// ReplicaID names this replica in the change notices it sends and in
	// the sessions it serves; a random id if empty. Use a stable one (the
	// host's name): a replica restarted under the same id ends the sessions
	// its previous run left open at once, instead of after SessionSweep.
	ReplicaID string
	// SessionSweep is how often a replica looks for sessions of replicas
	// that stopped running (DefaultSessionSweep if 0); such a session is
	// ended once its replica was found gone at every sweep for
	// ReplicaGrace (DefaultReplicaGrace if 0), and at two sweeps at least.
	SessionSweep, ReplicaGrace time.Duration
	// ClockCheck is how often a replica on a store with a clock of its
	// own (store.ServerClock: PostgreSQL) measures its offset from it,
	// and a process on a store without one looks for a step forward of
	// its clock (DefaultClockCheck if 0); see dbclock.go.
	ClockCheck time.Duration
	// SlotLease is how long a replica's session slots (slots.go) count
	// once it stops renewing them (it died), on a store shared by
	// replicas (DefaultSlotLease if 0); renewed every third of it.
	SlotLease time.Duration
}

// Service implements the lifecycle; its Authority serves the gateways.
type Service struct {
	st      store.Store
	log     *auditlog.Log
	pol     *policy.Engine
	dir     *authn.Directory
	targets map[string]Target
	maxDur  time.Duration
	// loaded is the last policy set ReloadPolicies loaded
	// (decidedBeforeLoad names its trigger).
	loaded atomic.Pointer[policyLoad]
	// beforeRequestWrite, if set (tests only), runs after a request is
	// decided and before it is recorded.
	beforeRequestWrite func()
	// maxPending bounds an identity's requests waiting for a person.
	maxPending atomic.Int64
	// pendingScan bounds the pending requests a page of the queue reads
	// (PendingScan unless set: SetPendingScan).
	pendingScan atomic.Int64
	pending     time.Duration
	reason      bool
	credKey     []byte
	// now is the time of every record and check: the clock corrected to
	// the database's (dbc, dbclock.go).
	now    func() time.Time
	clk    clock.Clock
	dbc    *dbClock
	logger *slog.Logger

	findings *findings.Detector
	binding  func(identity string) string

	locks keyLocks // per-grant (and per-identity) serialisation

	mu      sync.RWMutex
	timers  map[string]*armedTimer
	waits   *waiters       // the open long polls (Wait)
	changes []func(Change) // lifecycle watchers, see OnChange
	// endpoints are the gateways' addresses per target, for Credentials.
	endpoints map[string]*Endpoint

	// unrecorded holds the active grants this process cut off (revoke,
	// end) whose end it could not record yet and keeps trying to
	// (keepCutOff): a read of the still-active row (a cache miss, a
	// re-read of every grant) must not put them back. Cleared with the
	// grant's timer (stopTimer), which is the retry.
	unrecorded map[string]bool

	// auth answers the gateways from the active grants in memory
	// (internal/authority); rec records their sessions and refused
	// attempts (internal/sessions); running says rec's flusher runs.
	auth    *authority.Authority
	rec     *sessions.Recorder
	running bool
	closed  bool

	// rep is the Service's part among replicas sharing a store.
	rep *replicas
	// slots bounds a grant's PostgreSQL sessions across replicas (nil
	// for a single process: slots.go).
	slots *slotKeeper
	// fresh are the requests for other replicas' session summaries
	// (fresh.go).
	fresh freshReqs
	// sight are the agents' instances told to the other replicas
	// (findingsync.go).
	sight sightings
	// refusals bounds the refused decisions written to the log
	// (refusals.go).
	refusals refusalLimiter
	// proofs are the derivations kept between the pages of a session's
	// events (sessionproof.go).
	proofs sessionProofs
	// grantProofs are the derivations kept between reads of a grant and
	// of its sessions (grantproof.go).
	grantProofs proofCache[*grantProof]
}

// New returns a Service. Call Start before serving.
func New(o Options) (*Service, error) {
	if o.Store == nil || o.Log == nil || o.Policy == nil || o.Directory == nil {
		return nil, errors.New("grants: Store, Log, Policy and Directory are required")
	}
	if !o.Log.WritesRows() {
		// A session's start is a plain append: its row comes from the log.
		return nil, errors.New("grants: the audit log must write the rows its entries imply (auditlog.Options.Rows: review.StoreRows)")
	}
	if len(o.CredentialKey) < 32 {
		return nil, errors.New("grants: CredentialKey must be at least 32 bytes")
	}
	if o.MaxDuration <= 0 {
		o.MaxDuration = 12 * time.Hour
	}
	if o.PendingTimeout <= 0 {
		o.PendingTimeout = time.Hour
	}
	if o.Clock == nil {
		o.Clock = clock.Real
		if o.Now != nil {
			o.Clock = clock.Func(o.Now)
		}
	}
	clk := o.Clock
	dbc := newDBClock(o)
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	s := &Service{
		st: o.Store, log: o.Log, pol: o.Policy, dir: o.Directory,
		targets: make(map[string]Target, len(o.Targets)),
		maxDur:  o.MaxDuration, pending: o.PendingTimeout, reason: o.RequireReason,
		credKey: o.CredentialKey, now: func() time.Time { return clk.Now().UTC().Add(dbc.get()) }, clk: clk, dbc: dbc, logger: o.Logger,
		timers: map[string]*armedTimer{}, unrecorded: map[string]bool{}, waits: newWaiters(o.MaxWaiters, o.MaxWaitersPerIdentity),
		findings: o.Findings, binding: o.Binding, rep: newReplicas(o),
	}
	s.slots = newSlotKeeper(s, o)
	for _, t := range o.Targets {
		s.targets[t.Name] = t
	}
	replica := ""
	if s.rep.notifier != nil {
		replica = s.rep.id
	}
	rec, err := sessions.New(sessions.Options{
		Log: o.Log, Store: o.Store, Replica: replica, Now: s.now, Refuse: s.logErr, Logger: o.Logger,
		Rejections: o.Rejections, Clock: clk, Observer: o.Observer, Active: s.sessionActive,
	})
	if err != nil {
		return nil, err
	}
	s.rec = rec
	ao := authority.Options{Now: s.now, Recorder: rec, NewSessionID: func() string { return newID("s_") },
		Miss: s.loadMiss, Admit: s.checkMoved}
	if s.rep.notifier != nil {
		// Among replicas, a revoke may have been missed while the
		// listener was down: refuse everything until it has re-read.
		ao.Ready = s.rep.ready.Load
	}
	if s.auth, err = authority.New(ao); err != nil {
		return nil, err
	}
	s.maxPending.Store(MaxPendingPerIdentity)
	s.pendingScan.Store(PendingScan)
	return s, nil
}

// Authority is what the gateways use: the active grants by credential,
// their sessions and refused attempts (gateway.Authority).
func (s *Service) Authority() *authority.Authority { return s.auth }

// Clock is the service's time as the gateways should read it: this
// replica's clock corrected to the database's (dbclock.go), the time every
// grant's window in the record is on. A gateway that checked a grant's
// expiry against the machine's own clock would cut it off early on a fast
// replica, and late on a slow one should the control plane's end be late.
// Timers run on the underlying clock (durations need no correction).
func (s *Service) Clock() clock.Clock { return serviceClock{s} }

type serviceClock struct{ s *Service }

func (c serviceClock) Now() time.Time { return c.s.now() }

func (c serviceClock) AfterFunc(d time.Duration, f func()) clock.Timer {
	return c.s.clk.AfterFunc(d, f)
}

// Timers is the clock the service's timers run on (clock.RealTimers).
func (c serviceClock) Timers() clock.Clock { return c.s.clk }

// cutOff ends grant id in memory (see authority.Authority.CutOff).
func (s *Service) cutOff(id, reason string) *gateway.Grant { return s.auth.CutOff(id, reason) }

// cached returns the grant in memory holding credentialID, or nil.
func (s *Service) cached(credentialID string) *gateway.Grant { return s.auth.Cached(credentialID) }

// MaxDuration is the configured cap on a grant's duration.
func (s *Service) MaxDuration() time.Duration { return s.maxDur }

// Start records the policy set in force and recovers open grants: those
// that went overdue while Airlock was stopped are ended now with their true
// expiry (or decision deadline) as the end time; the others get their timers
// and, if active, their place in the gateway cache; the requests that the
// set in force no longer permits are denied, and the grants that a forbid
// of it matches revoked (endRefused).
func (s *Service) Start(ctx context.Context) error {
	// First, so that every time below is the database's (dbclock.go).
	if err := s.startClock(ctx); err != nil {
		return err
	}
	set := s.pol.Current()
	if err := s.log.Append(ctx, auditlog.Event{Type: "policy.loaded", Time: s.now(), Actor: "airlock", Data: policyData(set, "start")}); err != nil {
		return fmt.Errorf("recording the policy set: %w", err)
	}
	var open []model.Grant
	err := s.log.Do(ctx, func(ctx context.Context, tx store.Tx) ([]auditlog.Event, error) {
		var err error
		open, err = tx.OpenGrants(ctx)
		return nil, err
	})
	if err != nil {
		return fmt.Errorf("loading open grants: %w", err)
	}
	// Among replicas, open sessions may be another live replica's: they
	// are not this start's to end (the sweep ends a dead replica's). Alone,
	// every session still open is the last run's.
	if s.rep.notifier == nil {
		if err := s.recoverOpenSessions(ctx); err != nil {
			return err
		}
	}
	now := s.now()
	for _, g := range open {
		if id, ok := s.dir.Lookup(g.Identity); ok && id.Disabled {
			// Its identity was disabled while Airlock was stopped (taken
			// out of the configuration, which SyncIdentities read): its
			// grants end as `agent disable` ends them, rather than stay
			// usable, or approvable, for an identity that no longer is.
			// A conflict is another replica ending it first.
			if err := s.endForDisable(ctx, model.Identity{Name: "config"}, g); err != nil && !isConflict(err) {
				return fmt.Errorf("ending grant %s of disabled identity %s: %w", g.ID, g.Identity, err)
			}
			continue
		}
		if g.Extends != "" {
			// The grant it extends was revoked, and ending its extensions
			// (endExtensions) failed or was cut short by a stop: end it now,
			// rather than serve again a grant a person cut off.
			base, err := s.st.Grant(ctx, g.Extends)
			if err != nil && !errors.Is(err, store.ErrNotFound) {
				return fmt.Errorf("reading grant %s, which %s extends: %w", g.Extends, g.ID, err)
			}
			if err == nil && base.Status == model.Revoked {
				if err := s.endOpen(ctx, model.Identity{Name: "airlock"}, g, extensionEnd(base)); err != nil && !isConflict(err) {
					return fmt.Errorf("ending grant %s, which extends revoked grant %s: %w", g.ID, base.ID, err)
				}
				continue
			}
		}
		switch {
		case g.Status == model.Active && !now.Before(g.ExpiresAt):
			if err := s.expire(ctx, g.ID); err != nil {
				return err
			}
		case g.Status == model.Pending && !now.Before(g.DecideBy):
			if err := s.cancelOverdue(ctx, g.ID); err != nil {
				return err
			}
		case g.Status == model.Active:
			s.activateInMemory(g)
		default:
			s.armCancel(g)
		}
	}
	s.logger.Info("grants recovered", "open", len(open))
	// The set may have changed while Airlock was stopped: the requests
	// it no longer permits and the grants its forbids match, still open
	// from before, end now, as a reload would end them, before this
	// replica serves anything.
	if err := s.endRefused(ctx, set, "start"); err != nil {
		return err
	}
	if err := s.seedFindings(ctx); err != nil { // findings.go
		return fmt.Errorf("reading recent requests' instances: %w", err)
	}
	s.rec.Run()
	s.running = true
	if err := s.startListening(ctx); err != nil {
		return err
	}
	if s.slots != nil {
		if err := s.slots.start(ctx); err != nil {
			return fmt.Errorf("clearing this replica's earlier session slots: %w", err)
		}
	}
	return nil
}

// Close stops every timer and writes the session summaries still pending.
// Grants stay as recorded; Start recovers them.
func (s *Service) Close() {
	if s.slots != nil {
		s.slots.stop()
	}
	s.stopListening()
	if s.running {
		s.running = false
		s.rec.Close()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	s.stopClockLocked()
	for id, t := range s.timers {
		t.t.Stop()
		delete(s.timers, id)
	}
}

// lock serialises changes to one grant.
func (s *Service) lock(id string) func() { return s.locks.lock(id) }

// setTimer arms fn to run at t for grant id, replacing any earlier timer.
func (s *Service) setTimer(id string, at time.Time, fn func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	if old := s.timers[id]; old != nil {
		old.t.Stop()
	}
	s.timers[id] = &armedTimer{t: s.clk.AfterFunc(at.Sub(s.now()), fn), at: at, fn: fn}
}

// armedTimer is a grant's timer, with what rearmTimers needs to arm it
// again: the instant it runs at, by the Service's time, and its function.
type armedTimer struct {
	t  clock.Timer
	at time.Time
	fn func()
}

// rearmTimers arms every timer that has not run again for its instant by
// the Service's time as it reads now. A timer runs after a duration,
// computed from the Service's time when it was armed; after this
// replica's clock stepped back, the timers armed before the next
// measurement found it (dbclock.go) would run late by the step, and a
// grant's open connections outlive its expiry.
func (s *Service) rearmTimers() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	for _, a := range s.timers {
		if a.t.Stop() { // false: it runs or ran, and arms or stops itself
			a.t = s.clk.AfterFunc(a.at.Sub(s.now()), a.fn)
		}
	}
}

func (s *Service) stopTimer(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.unrecorded, id)
	if t := s.timers[id]; t != nil {
		t.t.Stop()
		delete(s.timers, id)
	}
}

// newID returns prefix + 20 random base32 characters (100 bits).
func newID(prefix string) string {
	var b [13]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("grants: crypto/rand failed: " + err.Error())
	}
	return prefix + strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b[:]))[:20]
}

// logErr turns a failure to write the log into the API's fail-closed answer.
func (s *Service) logErr(op string, err error) error {
	var ae *apierr.Error
	if errors.As(err, &ae) {
		return ae
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	if errors.Is(err, auditlog.ErrGrantEnded) {
		// A gateway record of a grant another replica ended, whose notice
		// this one has not applied yet: the gateways answer as for any
		// ended grant (nothing failed).
		return fmt.Errorf("%w (%w)", gateway.ErrNoGrant, err)
	}
	s.logger.Error("write failed; refusing", "op", op, "err", err)
	return apierr.Unavailable("could not record %s durably; nothing was changed", op)
}

func principalOf(id model.Identity) policy.Principal {
	return policy.Principal{Kind: string(id.Kind), Name: id.Name, Owner: id.Owner, Groups: id.Groups}
}

func policyData(set *policy.Set, why string) map[string]any {
	return map[string]any{"hash": set.Hash(), "files": set.Files(), "policies": set.Len(), "trigger": why}
}
