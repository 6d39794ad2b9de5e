package grants

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/airlock-dev/airlock/internal/gateway"
	"github.com/airlock-dev/airlock/internal/model"
	"github.com/airlock-dev/airlock/internal/store"
)

// Notifier carries grant changes between replicas that share a store
// (*pgstore.Listener implements it). Nil in Options means a single
// process (the SQLite default): every active grant is then in memory and
// nothing is read or listened for.
type Notifier interface {
	// Run listens until ctx ends. After each (re)connection it calls
	// connected, which re-reads the open grants; for every change
	// committed by a replica it calls changed with the grant's id and that
	// replica's id; when the connection fails it calls lost and reconnects.
	Run(ctx context.Context, changed func(grantID, origin string), connected func(ctx context.Context) error, lost func(error))
}

// Bounds on what unknown credentials cost a replica of a shared store.
const (
	// negativeTTL is how long a credential id found to have no active
	// grant is answered from memory. Such an id never becomes valid
	// (credential ids are random and made at activation, before anyone can
	// present them), so the TTL only bounds memory, not correctness.
	negativeTTL = 10 * time.Second
	// negativeMax caps the negative cache; when it is full of unexpired
	// entries it is emptied (a flood of distinct bogus ids then meets
	// missReads instead).
	negativeMax = 10000
	// missReads bounds the store reads of cache misses in flight, and
	// missWait how long a miss waits for one before it is refused.
	missReads = 4
	missWait  = time.Second
	// missTimeout bounds one such read.
	missTimeout = 2 * time.Second
	// missRate and missBurst bound the store reads of misses over time (a
	// token bucket): beyond them a miss is refused without a read. A
	// replica loads grants from their notices, so a legitimate credential
	// misses only when its notice is late.
	missRate  = 100 // per second
	missBurst = 100
	// syncWorkers bounds the notices being applied at once, and
	// reconcileWorkers the grants re-read at once by a reconciliation.
	syncWorkers      = 16
	reconcileWorkers = 8
	// startReadyWait is how long Start waits for the listener's first
	// reconciliation.
	startReadyWait = 15 * time.Second
)

// replicas is the Service's part in a set of replicas sharing a store.
type replicas struct {
	id       string
	notifier Notifier
	reader   store.CredentialReader // nil: misses are not read

	ready    atomic.Bool
	failures atomic.Int64 // notices that could not be applied, ever
	// rereads counts the re-reads of every grant (reconcile) begun. A
	// grant read (or committed) before one began, and put in memory after
	// it looked at memory, may have been passed by: see syncGrantLocked.
	rereads  atomic.Int64
	whyMu    sync.Mutex
	why      error         // why not ready
	readyCh  chan struct{} // closed at the first readiness
	stop     context.CancelFunc
	done     chan struct{}
	syncs    sync.WaitGroup
	syncSem  chan struct{}
	missSem  chan struct{}
	negMu    sync.Mutex
	negative map[string]time.Time // credential id → until
	inflight map[string]*missCall
	tokens   float64   // the miss token bucket, under negMu
	filled   time.Time // when tokens was last topped up

	// sweep is Options.SessionSweep; gone the replicas found gone at the
	// last sweep (owned by the sweep goroutine); stopSweep ends it.
	sweep  time.Duration
	grace  time.Duration
	gone   map[string]time.Time
	owners map[string]sessionOwner // the replica of each session open at the last sweep
	// startSeq is the log's size when Start began listening: this
	// replica's own sessions whose start came before it are an earlier
	// run's (sweepSessions).
	startSeq  int64
	stopSweep chan struct{}
	sweepDone chan struct{}
}

type missCall struct {
	done chan struct{}
}

func newReplicas(o Options) *replicas {
	id := o.ReplicaID
	if id == "" {
		id = newID("r_")
	}
	r := &replicas{id: id, notifier: o.Notifier, readyCh: make(chan struct{}),
		syncSem: make(chan struct{}, syncWorkers), missSem: make(chan struct{}, missReads),
		negative: map[string]time.Time{}, inflight: map[string]*missCall{},
		sweep: o.SessionSweep, grace: o.ReplicaGrace}
	if r.sweep <= 0 {
		r.sweep = DefaultSessionSweep
	}
	if r.grace <= 0 {
		r.grace = DefaultReplicaGrace
	}
	r.why = errors.New("grants: not started")
	if cr, ok := o.Store.(store.CredentialReader); ok && o.Notifier != nil {
		r.reader = cr
	}
	return r
}

// ReplicaID is this Service's id among replicas: the origin of the change
// notices it sends.
func (s *Service) ReplicaID() string { return s.rep.id }

// Ready reports whether this Service may serve grants: nil once Start has
// loaded the open grants and, with a Notifier, while its listener is
// connected and has re-read the open grants since it last connected. While
// it is not, Lookup and Authenticate refuse every credential (a revoke
// may have been missed), and /readyz should report the error.
func (s *Service) Ready() error {
	if s.rep.ready.Load() {
		return nil
	}
	s.rep.whyMu.Lock()
	defer s.rep.whyMu.Unlock()
	if s.rep.why == nil {
		return errors.New("grants: not ready")
	}
	return s.rep.why
}

func (s *Service) setReady(err error) {
	s.rep.whyMu.Lock()
	defer s.rep.whyMu.Unlock()
	s.setReadyLocked(err)
}

// readyUnlessFailed declares the Service ready unless a notice failed
// since failures was read (checked and set under one lock, so a failure
// is never overwritten by an older re-read).
func (s *Service) readyUnlessFailed(failures int64) bool {
	s.rep.whyMu.Lock()
	defer s.rep.whyMu.Unlock()
	if s.rep.failures.Load() != failures {
		return false
	}
	s.setReadyLocked(nil)
	return true
}

// setReadyLocked is setReady with whyMu held. Every error is counted in
// failures (the listener's own losses too: they come before its next
// re-read begins, so they never void one).
func (s *Service) setReadyLocked(err error) {
	if err != nil {
		s.rep.failures.Add(1)
	}
	s.rep.why = err
	s.rep.ready.Store(err == nil)
	if err == nil {
		select {
		case <-s.rep.readyCh:
		default:
			close(s.rep.readyCh)
		}
	}
}

// startListening runs the Notifier and waits (up to startReadyWait, or
// ctx) for its first reconciliation. Without a Notifier the Service is
// ready at once.
func (s *Service) startListening(ctx context.Context) error {
	if s.rep.notifier == nil {
		s.setReady(nil)
		return nil
	}
	s.rep.startSeq = s.log.Size()
	s.setReady(errors.New("grants: waiting for the grant change listener"))
	lctx, cancel := context.WithCancel(context.Background())
	s.rep.stop, s.rep.done = cancel, make(chan struct{})
	go func() {
		defer close(s.rep.done)
		s.rep.notifier.Run(lctx, s.remoteChange, s.reconcile, func(err error) {
			s.setReady(fmt.Errorf("grants: the grant change listener is down: %w", err))
			s.logger.Error("grant change listener lost; refusing grants until it reconnects and re-reads them", "err", err)
		})
	}()
	wait, cancelWait := context.WithTimeout(ctx, startReadyWait)
	defer cancelWait()
	select {
	case <-s.rep.readyCh:
		s.rep.stopSweep, s.rep.sweepDone = make(chan struct{}), make(chan struct{})
		go func() {
			defer close(s.rep.sweepDone)
			s.sweepLoop(s.rep.stopSweep, s.rep.sweep)
		}()
		return nil
	case <-wait.Done():
		return fmt.Errorf("grants: the grant change listener did not start: %w", s.Ready())
	}
}

// stopListening stops the Notifier and waits for the notices in hand.
func (s *Service) stopListening() {
	if s.rep.stopSweep != nil {
		close(s.rep.stopSweep)
		<-s.rep.sweepDone
		s.rep.stopSweep = nil
	}
	if s.rep.stop != nil {
		s.rep.stop()
		<-s.rep.done
		s.rep.stop = nil
	}
	s.rep.syncs.Wait()
	s.rep.ready.Store(false)
}

// remoteChange applies a notice: the grant is re-read and its state here
// made to match. Notices of this replica's own changes are skipped (they
// were applied as they committed). Each runs on a goroutine of its own
// (at most syncWorkers at once), so a grant whose lock is held does not
// delay the notices of the others.
func (s *Service) remoteChange(id, origin string) {
	if origin == s.rep.id || id == "" || s.freshNotice(id, origin) || s.findingNotice(id) {
		return
	}
	s.rep.syncSem <- struct{}{}
	s.rep.syncs.Add(1)
	go func() {
		defer func() { <-s.rep.syncSem; s.rep.syncs.Done() }()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		var err error
		if name, ok := strings.CutPrefix(id, store.IdentityNotice); ok {
			err = s.syncIdentity(ctx, name)
		} else {
			err = s.syncGrant(ctx, id, true)
		}
		if err != nil {
			// A notice that cannot be applied leaves this replica unsure
			// of the grant: stop serving until a reconnection re-reads all.
			s.setReady(fmt.Errorf("grants: applying a change of %s: %w", id, err))
			s.logger.Error("could not apply another replica's grant change; refusing grants until re-read", "grant", id, "err", err)
			go s.retryReconcile()
		}
	}()
}

// retryReconcile re-reads every open grant until it succeeds or the
// listener stops, restoring readiness.
func (s *Service) retryReconcile() {
	for delay := 100 * time.Millisecond; ; delay = min(2*delay, 5*time.Second) {
		select {
		case <-s.rep.done:
			return
		case <-time.After(delay):
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err := s.reconcile(ctx)
		cancel()
		if err == nil {
			return
		}
	}
}

// syncIdentity re-reads one identity into the directory: an agent added,
// disabled or changed on another replica authenticates (or stops) here too.
func (s *Service) syncIdentity(ctx context.Context, name string) error {
	// Two notices of one identity apply in order: the later read wins.
	unlock := s.lockIdentity(name)
	defer unlock()
	return s.syncIdentityLocked(ctx, name)
}

// lockIdentity serialises the reads and writes of identity name in the
// directory (the directory's own changes included: see putIdentity).
func (s *Service) lockIdentity(name string) func() { return s.lock(store.IdentityNotice + name) }

// putIdentity brings identity id into the directory under its lock, after
// a change of it this replica committed: a notice's older read being
// applied meanwhile is put before it, not after. Among replicas the
// identity is read again under the lock rather than id put (a newer
// change made elsewhere may have been applied since this one committed);
// id is put if that read fails.
func (s *Service) putIdentity(ctx context.Context, id model.Identity) {
	unlock := s.lockIdentity(id.Name)
	defer unlock()
	if s.rep.notifier != nil {
		if err := s.syncIdentityLocked(ctx, id.Name); err == nil {
			return
		}
	}
	s.dir.Put(id)
}

// syncIdentityLocked is syncIdentity with the identity's lock held.
func (s *Service) syncIdentityLocked(ctx context.Context, name string) error {
	id, err := s.st.Identity(ctx, name)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	s.dir.Put(id)
	return nil
}

// reconcile re-reads every grant that is open in the store or in memory
// and brings this replica's state in line, then declares it ready. The
// listener calls it after each LISTEN, so nothing that changed while it
// was down is missed, and nothing that changes from now on either.
func (s *Service) reconcile(ctx context.Context) error {
	// A notice that fails while this runs may concern a change this
	// re-read saw before it committed: then the re-read does not count.
	failures := s.rep.failures.Load()
	s.rep.rereads.Add(1)
	idents, err := s.st.Identities(ctx)
	if err != nil {
		return fmt.Errorf("grants: re-reading identities: %w", err)
	}
	// The read of all at once may be older than a notice applied since
	// (a retried re-read runs while notices are applied): an identity
	// that it shows otherwise than the directory does is read again on
	// its own, under its lock, and that read is put.
	for _, id := range idents {
		if err := s.reconcileIdentity(ctx, id); err != nil {
			return fmt.Errorf("grants: re-reading identity %s: %w", id.Name, err)
		}
	}
	// Their ids alone: each is read again on its own (syncGrant).
	open, err := s.st.Grants(ctx, store.GrantFilter{Status: []model.GrantStatus{model.Pending, model.Active}, RecordsOnly: true})
	if err != nil {
		return fmt.Errorf("grants: re-reading open grants: %w", err)
	}
	check := map[string]bool{}
	for _, g := range open {
		check[g.ID] = true
	}
	for _, id := range s.auth.IDs() {
		check[id] = true
	}
	s.mu.RLock()
	for id := range s.timers {
		check[id] = true
	}
	s.mu.RUnlock()
	// One read per grant, under its lock (a read of all at once could be
	// older than a change applied meanwhile), reconcileWorkers at a time.
	ids := make(chan string)
	errs := make(chan error, reconcileWorkers)
	var wg sync.WaitGroup
	for range reconcileWorkers {
		wg.Go(func() {
			var first error
			for id := range ids {
				if first == nil {
					first = s.syncGrant(ctx, id, true)
				}
			}
			errs <- first
		})
	}
	for id := range check {
		ids <- id
	}
	close(ids)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			return err
		}
	}
	if !s.readyUnlessFailed(failures) {
		return errors.New("grants: a change notice failed during the re-read; re-reading again")
	}
	s.logger.Info("grants reconciled with the store", "open", len(open), "checked", len(check), "identities", len(idents))
	return nil
}

// reconcileIdentity brings the directory's entry of read (from a read of
// every identity) up to date: nothing to do if the directory already has
// it so, else it is read again under its lock and put. Under the lock, a
// notice's read in flight (which may predate a change whose notice the
// listener lost, as for a grant: see syncGrantLocked) has been put before
// this looks, and is then replaced by this newer read.
func (s *Service) reconcileIdentity(ctx context.Context, read model.Identity) error {
	unlock := s.lockIdentity(read.Name)
	defer unlock()
	if have, ok := s.dir.Lookup(read.Name); ok && sameIdentity(have, read) {
		return nil
	}
	return s.syncIdentityLocked(ctx, read.Name)
}

// syncGrant re-reads grant id under its lock and applies it (applyRecord).
func (s *Service) syncGrant(ctx context.Context, id string, settle bool) error {
	unlock := s.lock(id)
	defer unlock()
	return s.syncGrantLocked(ctx, id, settle)
}

// syncGrantLocked is syncGrant with the grant's lock held. If a re-read of
// every grant (reconcile) began while it read and applied the grant, it
// reads it again: that re-read follows a listener reconnection, so a
// change this read predates may have had its notice lost, and the re-read
// may have looked at memory before this applied the grant, and found it
// neither open in the store nor here (an active grant revoked meanwhile
// would then be served until its expiry).
func (s *Service) syncGrantLocked(ctx context.Context, id string, settle bool) error {
	for {
		gen := s.rep.rereads.Load()
		g, err := s.st.Grant(ctx, id)
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := s.applyRecord(ctx, g, settle); err != nil {
			return err
		}
		if s.rep.rereads.Load() == gen {
			return nil
		}
	}
}

// recheck follows this replica's own activation of grant id in memory
// (its lock held), committed when s.rep.rereads was gen: if a re-read of
// every grant began since, it may have passed the grant by (see
// syncGrantLocked), so the grant is read again. If it cannot be, the
// replica stops serving until a re-read of all succeeds.
func (s *Service) recheck(ctx context.Context, id string, gen int64) {
	if s.rep.notifier == nil || s.rep.rereads.Load() == gen {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if err := s.syncGrantLocked(ctx, id, true); err != nil {
		s.setReady(fmt.Errorf("grants: re-reading %s after a reconciliation: %w", id, err))
		s.logger.Error("could not re-read a grant activated during a reconciliation; refusing grants until re-read", "grant", id, "err", err)
		go s.retryReconcile()
	}
}

// applyRecord makes this replica's state of g match its stored record;
// the caller holds g's lock and read g under it. An active grant is put
// in the gateway cache with its expiry timer (and Subscribe's callbacks
// run, so the PostgreSQL gateway prepares its role); a pending one gets
// its decision-deadline timer; an ended one is cut off (Done closes, which
// ends open S3 transfers and PostgreSQL sessions). With settle, a grant
// past its expiry or deadline is ended here and now (written once: the
// transaction re-reads it and does nothing if another replica did it).
func (s *Service) applyRecord(ctx context.Context, g model.Grant, settle bool) error {
	now := s.now()
	loaded := s.auth.Grant(g.ID) != nil
	s.mu.RLock()
	_, armed := s.timers[g.ID]
	unrecorded := s.unrecorded[g.ID]
	s.mu.RUnlock()
	switch {
	case g.Status == model.Active && now.Before(g.ExpiresAt):
		// Not one this replica cut off and is still trying to record
		// the end of (keepCutOff).
		if !loaded && !unrecorded {
			s.activateInMemory(g)
		}
	case g.Status == model.Active:
		if settle {
			return s.expireLocked(ctx, g.ID)
		}
	case g.Status == model.Pending && now.Before(g.DecideBy):
		if !armed {
			s.armCancel(g)
		}
	case g.Status == model.Pending:
		if settle {
			return s.cancelOverdueLocked(ctx, g.ID)
		}
	default:
		s.cutOff(g.ID, g.EndReason)
		s.stopTimer(g.ID)
		s.notify(g.ID)
	}
	return nil
}

// notifyChange queues the change notice of grant id in tx, if the store
// is shared (store.GrantNotifier); it is sent when tx commits.
func (s *Service) notifyChange(ctx context.Context, tx store.Tx, id string) error {
	n, ok := tx.(store.GrantNotifier)
	if !ok {
		return nil
	}
	return n.NotifyGrant(ctx, id, s.rep.id)
}

// notifyIdentity is notifyChange for an identity.
func (s *Service) notifyIdentity(ctx context.Context, tx store.Tx, name string) error {
	n, ok := tx.(store.GrantNotifier)
	if !ok {
		return nil
	}
	return n.NotifyIdentity(ctx, name, s.rep.id)
}

// loadMiss is Lookup's cache miss on a shared store: it reads the grant of
// credentialID from the store and, if it is active, activates it here. A
// miss that finds nothing is remembered for negativeTTL; misses in flight
// are bounded (missReads), so is their rate (missRate), and one credential
// is read once at a time.
func (s *Service) loadMiss(credentialID string) *gateway.Grant {
	r := s.rep
	if r.reader == nil || !plausibleCredential(credentialID) {
		return nil
	}
	now := time.Now()
	r.negMu.Lock()
	if until, ok := r.negative[credentialID]; ok && now.Before(until) {
		r.negMu.Unlock()
		return nil
	}
	if c := r.inflight[credentialID]; c != nil {
		r.negMu.Unlock()
		select {
		case <-c.done:
		case <-time.After(missTimeout):
		}
		return s.cached(credentialID)
	}
	r.tokens = min(missBurst, r.tokens+now.Sub(r.filled).Seconds()*missRate)
	r.filled = now
	if r.tokens < 1 {
		r.negMu.Unlock()
		return nil
	}
	r.tokens--
	c := &missCall{done: make(chan struct{})}
	r.inflight[credentialID] = c
	r.negMu.Unlock()
	defer func() {
		r.negMu.Lock()
		delete(r.inflight, credentialID)
		r.negMu.Unlock()
		close(c.done)
	}()

	select {
	case r.missSem <- struct{}{}:
	case <-time.After(missWait):
		return nil
	}
	defer func() { <-r.missSem }()
	ctx, cancel := context.WithTimeout(context.Background(), missTimeout)
	defer cancel()
	g, err := r.reader.GrantByCredential(ctx, credentialID)
	if err == nil && g.Status == model.Active && s.now().Before(g.ExpiresAt) {
		// Under the grant's lock, and read again under it, so that a
		// revoke applied meanwhile is not undone by this older read.
		err = s.syncGrant(ctx, g.ID, false)
		if err == nil {
			if gg := s.cached(credentialID); gg != nil {
				return gg
			}
		}
	}
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		s.logger.Warn("could not read a credential's grant; refusing it", "credential", credentialID, "err", err)
		return nil
	}
	r.negMu.Lock()
	if len(r.negative) >= negativeMax {
		for k, until := range r.negative {
			if !now.Before(until) {
				delete(r.negative, k)
			}
		}
		if len(r.negative) >= negativeMax {
			clear(r.negative)
		}
	}
	r.negative[credentialID] = now.Add(negativeTTL)
	r.negMu.Unlock()
	return nil
}

// forgetMiss drops a credential from the negative cache as its grant
// activates here (it cannot be there: see negativeTTL; this is belt and braces).
func (r *replicas) forgetMiss(credentialID string) {
	r.negMu.Lock()
	delete(r.negative, credentialID)
	r.negMu.Unlock()
}

// plausibleCredential checks the shape newCredentialID makes, so that
// garbage never reaches the store.
func plausibleCredential(id string) bool {
	if len(id) != 20 || !strings.HasPrefix(id, credentialPrefix) {
		return false
	}
	for _, c := range id[len(credentialPrefix):] {
		if !(c >= 'A' && c <= 'Z' || c >= '2' && c <= '7') {
			return false
		}
	}
	return true
}

// LiveGrants says which of ids are active, unexpired grants in the store:
// the grants whose PostgreSQL roles must survive a reconciliation (see
// pgroles.Manager.ReconcileLive). It reads the store, not memory, because
// another replica may hold a grant this one has not loaded.
func (s *Service) LiveGrants(ctx context.Context, ids []string) (map[string]bool, error) {
	live := map[string]bool{}
	now := s.now()
	for _, id := range ids {
		g, err := s.st.Grant(ctx, id)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		live[id] = g.Status == model.Active && now.Before(g.ExpiresAt)
	}
	return live, nil
}
