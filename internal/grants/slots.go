package grants

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/airlock-dev/airlock/internal/clock"
	"github.com/airlock-dev/airlock/internal/gateway"
	"github.com/airlock-dev/airlock/internal/store"
)

// Session slots across replicas. A postgres target's max_sessions_per_grant
// bounds the sessions a grant holds at once; each `airlock serve` counted
// its own, so a grant's agent whose logins a balancer spread over N
// replicas held N times the bound, each session one of the upstream's
// max_connections. Replicas sharing a store (store.SessionSlots) take a
// slot there for each session they admit (SessionSlots, which the
// PostgreSQL gateway asks after its own count admitted the login) and
// delete it at the session's end. A kept upstream connection (pggw's
// reuse) holds its session's slot on, marked kept, so that the grant's
// backends stay within the bound too; a login on another replica that
// finds the grant full only of kept slots takes them over, and their
// replica closes the connections at its next renewal (or at once, if
// they are its own).
//
// A replica that dies leaves its slots: each has a lease, pushed forward
// every lease/3 while the replica runs, written and compared on the
// Service's time (the database's clock as this replica reads it:
// dbclock.go), so that a dead replica's slots count no more once the lease
// has passed, whatever the replicas' own clocks say. A replica that starts
// again under the same id deletes its earlier run's at once.
//
// The same lease binds a live replica that cannot renew (its store
// unreachable): once a slot's lease is about to pass unrenewed, the other
// replicas are about to count it out and could admit a session in its
// place, so the replica ends the session it stands for (Take's cut; a
// kept connection's lost) rather than let the grant exceed its bound:
// fail closed. It does so slotMargin before the lease passes by its own
// reading of the database's clock, which another replica's reading may
// be ahead of by a measurement's error or a clock step since the last
// one. A client may log in again once the store answers.
//
// A session's slot whose row is gone while its lease holds (the database
// restarted: the table is unlogged) is taken again at the next renewal
// under the same rule as a login's, the grant's lock and its bound: the
// other replicas may have filled the grant meanwhile, counting an empty
// table, and a slot written back as it was would put the grant over its
// bound. A session whose grant is full is ended (slotFullCutReason):
// fail closed.

// DefaultSlotLease is the default Options.SlotLease.
const DefaultSlotLease = 30 * time.Second

// slotTimeout bounds one store call of the slots.
const slotTimeout = 5 * time.Second

// slotMargin is how long before its lease passes, by this replica's
// reading of the database's clock, a slot this replica could not renew
// has its session ended: a sixth of the lease (5 s of the default 30 s),
// above the error of two replicas' readings (half a round trip of at
// most 1 s each, and a clock step since the last reading) and a timer
// late on a loaded host. With renewals every lease/3 a session is ended
// after two failed renewals in a row at the earliest.
func slotMargin(lease time.Duration) time.Duration { return lease / 6 }

// slotCutReason is the reason a session's cut is given (Take's cut): it
// names no error, since it may reach the client.
const slotCutReason = "the gateway could not renew the session's slot under max_sessions_per_grant before its lease ran out (its store is unreachable), and the other replicas count the slot out"

// slotFullCutReason is the reason a session's cut is given when its
// slot, gone from the store, could not be taken again: the grant's other
// sessions fill max_sessions_per_grant.
const slotFullCutReason = "the gateway lost the session's slot under max_sessions_per_grant (the database restarted?) and could not take it again: the grant's sessions on other replicas fill the bound"

// slotKeeper is a replica's part of the session slots.
type slotKeeper struct {
	s     *Service
	st    store.SessionSlots
	lease time.Duration
	mu    sync.Mutex
	held  map[string]*slot // the slots this replica holds, by id
	timer clock.Timer      // the next renewal; nil once stopped
	// expiry is armed for the earliest time a held slot's session must
	// end (expire), if any; under mu.
	expiry clock.Timer
	// renewErr is the last renewal's error (nil after one that worked),
	// for the log of the sessions ended; under mu.
	renewErr error
}

// slot is one held slot (gateway.Slot).
type slot struct {
	k         *slotKeeper
	id, grant string
	max       int    // the bound it was taken under, to take it again
	taken     bool   // written by Take, under k.mu
	kept      bool   // under k.mu
	lost      func() // Keep's, under k.mu
	gone      bool   // released or lost, under k.mu
	// until is the lease last written (by Take or a renewal that
	// worked), on the Service's time; under k.mu.
	until time.Time
	cut   func(why string) // Take's
}

func newSlotKeeper(s *Service, o Options) *slotKeeper {
	st, ok := o.Store.(store.SessionSlots)
	if !ok || o.Notifier == nil {
		return nil
	}
	k := &slotKeeper{s: s, st: st, lease: o.SlotLease, held: map[string]*slot{}}
	if k.lease <= 0 {
		k.lease = DefaultSlotLease
	}
	return k
}

// SessionSlots is the PostgreSQL gateway's bound on a grant's sessions
// across the replicas sharing the store; nil for a single process (the
// gateway's own count is then the bound).
func (s *Service) SessionSlots() gateway.Slots {
	if s.slots == nil {
		return nil
	}
	return s.slots
}

// start deletes this replica's earlier run's slots and arms the renewals.
func (k *slotKeeper) start(ctx context.Context) error {
	if err := k.st.ClearSlots(ctx, k.s.rep.id); err != nil {
		return err
	}
	k.arm()
	return nil
}

func (k *slotKeeper) arm() {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.timer = k.s.clk.AfterFunc(k.lease/3, k.renew)
}

// stop ends the renewals. The slots held stay until their lease passes
// (or the next start under the same id): the sessions they stand for may
// outlive this Service (a gateway closing after it).
func (k *slotKeeper) stop() {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.timer != nil {
		k.timer.Stop()
		k.timer = nil
	}
	if k.expiry != nil {
		k.expiry.Stop()
		k.expiry = nil
	}
}

// renew pushes the held slots' leases forward, closes the kept
// connections whose slots were taken over, and arms the next renewal.
func (k *slotKeeper) renew() {
	k.mu.Lock()
	if k.timer == nil {
		k.mu.Unlock()
		return
	}
	slots := make([]store.Slot, 0, len(k.held))
	for _, sl := range k.held {
		if sl.taken {
			slots = append(slots, store.Slot{ID: sl.id, GrantID: sl.grant, Kept: sl.kept})
		}
	}
	k.mu.Unlock()
	if len(slots) > 0 {
		ctx, cancel := context.WithTimeout(context.Background(), slotTimeout)
		until := k.s.now().Add(k.lease)
		lost, missing, err := k.st.RenewSlots(ctx, k.s.rep.id, slots, until)
		cancel()
		k.mu.Lock()
		k.renewErr = err
		if err == nil {
			// Every slot neither lost nor missing is renewed to until.
			// After an error none counts as renewed, though some may be.
			for _, v := range slots {
				if sl := k.held[v.ID]; sl != nil && !slices.Contains(lost, v.ID) && !slices.Contains(missing, v.ID) {
					sl.until = until
				}
			}
		}
		k.mu.Unlock()
		if err != nil {
			k.s.logger.Warn("could not renew this replica's session slots; their sessions are ended before the other replicas count them out", "err", err, "lease", k.lease)
		}
		for _, id := range lost {
			k.lose(id)
		}
		if len(missing) > 0 {
			k.retake(missing, until)
		}
	}
	k.expire()
	k.mu.Lock()
	stopped := k.timer == nil
	k.mu.Unlock()
	if !stopped {
		k.arm()
	}
}

// expire ends the sessions (and closes the kept connections) whose slots'
// leases are about to pass unrenewed, slotMargin before they do, and arms
// itself for the next such time. It runs after each renewal and on its
// own timer, since a renewal may fail late (slotTimeout) or not at all.
func (k *slotKeeper) expire() {
	now := k.s.now()
	margin := slotMargin(k.lease)
	var due []*slot
	var next time.Time
	k.mu.Lock()
	if k.timer == nil {
		k.mu.Unlock()
		return // stopped: the sessions may outlive the Service
	}
	for id, sl := range k.held {
		if !sl.taken || sl.gone {
			continue
		}
		end := sl.until.Add(-margin)
		if !now.Before(end) {
			sl.gone = true
			delete(k.held, id)
			due = append(due, sl)
			continue
		}
		if next.IsZero() || end.Before(next) {
			next = end
		}
	}
	k.armExpiry(now, next)
	err := k.renewErr
	k.mu.Unlock()
	if len(due) == 0 {
		return
	}
	k.s.logger.Warn("ending sessions whose slots among the replicas this replica could not renew before their lease ran out; the other replicas count them out (max_sessions_per_grant)", "sessions", len(due), "lease", k.lease, "err", err)
	ids := make([]string, len(due))
	for i, sl := range due {
		ids[i] = sl.id
		switch {
		case sl.kept && sl.lost != nil:
			go sl.lost()
		case !sl.kept && sl.cut != nil:
			go sl.cut(slotCutReason)
		}
	}
	go func() {
		// Gone by their lease anyway; deleted now if the store answers.
		ctx, cancel := context.WithTimeout(context.Background(), slotTimeout)
		defer cancel()
		_ = k.st.ReleaseSlots(ctx, ids)
	}()
}

// armExpiry arms expire for at (none if zero), replacing the timer
// armed; k.mu held.
func (k *slotKeeper) armExpiry(now, at time.Time) {
	if k.expiry != nil {
		k.expiry.Stop()
		k.expiry = nil
	}
	if !at.IsZero() {
		k.expiry = k.s.clk.AfterFunc(at.Sub(now), k.expire)
	}
}

// retake follows a renewal that found sessions' slots gone while their
// lease held by this replica's reading (a slot whose lease passed
// unrenewed has its session ended: expire): after a restart of the
// database (the table is unlogged), or a take on a replica whose reading
// of the database's clock is ahead by more than slotMargin. Each is taken
// again as a login takes one (the grant's lock, its bound), with lease
// until: other replicas may have filled the grant while the table was
// empty. A session whose grant is full is ended (fail closed); one whose
// take failed keeps the lease last written, and is ended by expire unless
// a later renewal takes it again.
func (k *slotKeeper) retake(ids []string, until time.Time) {
	k.s.logger.Warn("session slots of this replica were missing from the store while their lease held (a restart of the database?); taking them again under max_sessions_per_grant", "slots", len(ids), "lease", k.lease)
	ctx, cancel := context.WithTimeout(context.Background(), slotTimeout)
	defer cancel()
	now := k.s.now()
	var full []*slot
	var released []string
	for _, id := range ids {
		k.mu.Lock()
		sl := k.held[id]
		if sl == nil || sl.gone || sl.kept {
			// Released since the renewal read it (its row deleted, or
			// about to be), or kept: a kept slot that is gone is lost
			// at the next renewal.
			k.mu.Unlock()
			continue
		}
		grant, max := sl.grant, sl.max
		k.mu.Unlock()
		taken, stolen, err := k.st.TakeSlot(ctx, store.Slot{ID: id, GrantID: grant, Replica: k.s.rep.id, LeaseUntil: until}, max, now)
		if err != nil {
			k.mu.Lock()
			k.renewErr = err
			k.mu.Unlock()
			k.s.logger.Warn("could not take again a session slot missing from the store; its session is ended before its lease runs out unless a later renewal takes it", "grant", grant, "err", err, "lease", k.lease)
			continue
		}
		k.mu.Lock()
		switch {
		case taken && sl.gone:
			released = append(released, id) // released during the take
		case taken:
			sl.until = until
		case !sl.gone:
			sl.gone = true
			delete(k.held, id)
			full = append(full, sl)
		}
		k.mu.Unlock()
		for _, v := range stolen {
			if v.Replica == k.s.rep.id {
				k.lose(v.ID)
			}
		}
	}
	if len(released) > 0 {
		_ = k.st.ReleaseSlots(ctx, released) // if it fails, they expire
	}
	if len(full) == 0 {
		return
	}
	k.s.logger.Warn("ending sessions whose slots, missing from the store, could not be taken again: their grants' sessions on other replicas fill max_sessions_per_grant", "sessions", len(full))
	for _, sl := range full {
		switch {
		case sl.kept && sl.lost != nil:
			go sl.lost() // kept during the take
		case !sl.kept && sl.cut != nil:
			go sl.cut(slotFullCutReason)
		}
	}
}

// lose forgets slot id, taken over by a login elsewhere, and runs its
// lost function.
func (k *slotKeeper) lose(id string) {
	k.mu.Lock()
	sl := k.held[id]
	var lost func()
	if sl != nil && sl.kept && !sl.gone {
		sl.gone = true
		lost = sl.lost
		delete(k.held, id)
	}
	k.mu.Unlock()
	if lost != nil {
		go lost()
	}
}

// Take is gateway.Slots.Take.
func (k *slotKeeper) Take(ctx context.Context, g *gateway.Grant, max int, cut func(why string)) (gateway.Slot, error) {
	now := k.s.now()
	sl := &slot{k: k, id: newID("ss_"), grant: g.ID, max: max, until: now.Add(k.lease), cut: cut}
	k.mu.Lock()
	k.held[sl.id] = sl
	k.mu.Unlock()
	// Bounded as the other calls of the slots are: the login's context has
	// no deadline of its own (the gateway's startup timeout bounds what
	// the client sends), and a store that does not answer held each login
	// (and its startup slot) for as long.
	ctx, cancel := context.WithTimeout(ctx, slotTimeout)
	defer cancel()
	taken, stolen, err := k.st.TakeSlot(ctx, store.Slot{ID: sl.id, GrantID: g.ID, Replica: k.s.rep.id, LeaseUntil: sl.until}, max, now)
	if err != nil || !taken {
		k.mu.Lock()
		sl.gone = true
		delete(k.held, sl.id)
		k.mu.Unlock()
		if err != nil {
			// The slot may have been written (a commit whose answer was
			// lost): it goes with its lease, never renewed.
			return nil, err
		}
		return nil, nil
	}
	k.mu.Lock()
	sl.taken = true
	if k.expiry == nil && k.timer != nil {
		// None is armed: no other slot held is due (any held since the
		// last expire would end no later than this one, and is armed for).
		k.armExpiry(now, sl.until.Add(-slotMargin(k.lease)))
	}
	k.mu.Unlock()
	for _, v := range stolen {
		if v.Replica == k.s.rep.id {
			k.lose(v.ID)
		}
	}
	return sl, nil
}

// Keep is gateway.Slot.Keep.
func (sl *slot) Keep(lost func()) {
	k := sl.k
	k.mu.Lock()
	if sl.gone || sl.kept {
		k.mu.Unlock()
		return
	}
	sl.kept, sl.lost = true, lost
	k.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), slotTimeout)
	defer cancel()
	if err := k.st.KeepSlot(ctx, sl.id); err != nil {
		// Counted as a session's: it is not taken over, which is safe.
		k.s.logger.Warn("could not mark a session slot kept", "grant", sl.grant, "err", err)
	}
}

// Release is gateway.Slot.Release.
func (sl *slot) Release() {
	k := sl.k
	k.mu.Lock()
	if sl.gone {
		k.mu.Unlock()
		return
	}
	sl.gone = true
	delete(k.held, sl.id)
	k.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), slotTimeout)
	defer cancel()
	if err := k.st.ReleaseSlots(ctx, []string{sl.id}); err != nil {
		// No longer renewed: counted out once its lease has passed.
		k.s.logger.Warn("could not give a session slot back; it is counted out once its lease has passed", "grant", sl.grant, "err", err, "lease", k.lease)
	}
}
