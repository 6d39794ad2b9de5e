package grants

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/airlock-dev/airlock/internal/clock"
	"github.com/airlock-dev/airlock/internal/store"
)

// The database's clock. Replicas sharing a store each read their own
// clock, and clocks disagree: a replica ten minutes fast wrote a grant it
// approved as starting ten minutes from now, so the grant outlived its
// duration by ten minutes on every other replica; one ten minutes slow
// wrote requests already past their decision deadline, and sessions that
// started before their grant. The one clock they share is the database
// server's. So a replica on a store that can read it (store.ServerClock)
// measures its offset from it at Start and every Options.ClockCheck, and
// its time (s.now: what it writes in records and log entries, and what
// its timers and its authority's liveness checks are measured against) is
// its own clock plus that offset. Every time in the record is then the
// database's, within half a measurement's round trip, whichever replica
// wrote it, and each replica cuts a grant off when the database's clock
// reaches its expiry: its timers run for the time left by that clock.
//
// Correcting was chosen over refusing to serve beyond some skew: a replica
// whose clock is off keeps serving, on the right times, and says so in its
// log; refusing would take it out for a fault the correction makes
// harmless. What it cannot see is a step of its clock between two
// measurements: that is corrected at the next one (at most ClockCheck),
// which after a step back also arms the timers again (rearmTimers), so a
// timer armed meanwhile does not cut a grant off late. A request and a
// decision read the database's clock inside their transaction
// (store.ClockTx, txNow) for their times (and a decision for its
// deadline), which a step cannot defeat; that reading is a measurement
// too. A store of one process (SQLite) has no such clock: its time is the
// process's own, unchanged, and a step forward of it is watched for
// (armStepCheck).

// DefaultClockCheck is the default Options.ClockCheck.
const DefaultClockCheck = 10 * time.Second

const (
	// clockWarn is the offset from which a replica logs a warning: NTP
	// keeps clocks within milliseconds, so a second is a fault.
	clockWarn = time.Second
	// clockMaxRTT bounds a periodic measurement's round trip: the offset
	// is known only within half of it, so a slower answer (a loaded
	// database) is dropped and the previous offset kept.
	clockMaxRTT = time.Second
	// clockRearm is the step back of the replica's clock from which its
	// timers are armed again (rearmTimers).
	clockRearm = 100 * time.Millisecond
	// clockTimeout bounds one measurement.
	clockTimeout = 5 * time.Second
)

// dbClock is a replica's offset from the database's clock.
type dbClock struct {
	src   store.ServerClock // nil: the store is this process's own
	every time.Duration
	// offset is the database's clock minus this replica's, in
	// nanoseconds: added to the replica's clock, it reads the database's.
	offset atomic.Int64
	warnMu sync.Mutex
	warned time.Duration // the offset last logged
	timer  clock.Timer   // under Service.mu

	startMu sync.Mutex  // one startClock at a time
	started atomic.Bool // the first measurement succeeded (startClock)
}

func newDBClock(o Options) *dbClock {
	c := &dbClock{every: o.ClockCheck}
	if c.every <= 0 {
		c.every = DefaultClockCheck
	}
	c.src, _ = o.Store.(store.ServerClock)
	return c
}

func (c *dbClock) get() time.Duration { return time.Duration(c.offset.Load()) }

// startClock measures the offset once, which must succeed, and arms the
// periodic measurement, the first time it is called (SyncIdentities, which
// runs before Start, records times too). Without a database clock it does
// nothing.
func (s *Service) startClock(ctx context.Context) error {
	s.dbc.startMu.Lock()
	defer s.dbc.startMu.Unlock()
	if s.dbc.started.Load() {
		return nil
	}
	if s.dbc.src == nil {
		s.dbc.started.Store(true)
		s.armStepCheck()
		return nil
	}
	// At start any round trip is accepted: an offset known within half of
	// it is better than none.
	if err := s.measureClock(ctx, 0); err != nil {
		return fmt.Errorf("reading the database's clock: %w", err)
	}
	s.dbc.started.Store(true)
	s.armClockCheck()
	return nil
}

// armStepCheck watches, without a database clock (one process on
// SQLite), for a step forward of the machine's clock. The Service's time
// is then the machine's own, and a grant is refused calls from its expiry
// by that clock (gateway.Grant.Live), but its timer runs for a duration:
// after a step forward it ran late by the step, and until it did the
// grant's open PostgreSQL sessions and S3 transfers went on (its Done was
// not closed), recorded after the expiry the grant's record ends it at. A
// check every ClockCheck that found more time passed by the clock than by
// its own timer arms every timer again (rearmTimers), for the time left
// by the clock. A step back is left: the timers then cut a grant off
// after its duration, before the clock reaches its expiry.
func (s *Service) armStepCheck() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	from := s.now()
	s.dbc.timer = s.clk.AfterFunc(s.dbc.every, func() {
		// A timer that runs late (a loaded machine) looks like a small
		// step; arming the timers again is then harmless.
		if ahead := s.now().Sub(from) - s.dbc.every; ahead >= clockRearm {
			if ahead >= clockWarn {
				s.logger.Warn("this machine's clock stepped forward; grants whose expiry it passed end now", "by", ahead)
			}
			s.rearmTimers()
		}
		s.armStepCheck()
	})
}

// armClockCheck arms the next measurement, on the Service's clock (a test's
// clock.Fake runs it as it moves).
func (s *Service) armClockCheck() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	s.dbc.timer = s.clk.AfterFunc(s.dbc.every, func() {
		ctx, cancel := context.WithTimeout(context.Background(), clockTimeout)
		if err := s.measureClock(ctx, clockMaxRTT); err != nil {
			s.logger.Warn("could not measure this replica's clock against the database's; keeping the offset measured before", "err", err, "offset", s.dbc.get())
		}
		cancel()
		s.armClockCheck()
	})
}

// measureClock reads the database's clock and sets the offset to it from
// the middle of the read's round trip; with maxRTT > 0 a slower read is
// refused.
func (s *Service) measureClock(ctx context.Context, maxRTT time.Duration) error {
	c := s.dbc
	t0 := s.clk.Now()
	db, err := c.src.ServerNow(ctx)
	t1 := s.clk.Now()
	if err != nil {
		return err
	}
	if rtt := t1.Sub(t0); maxRTT > 0 && rtt > maxRTT {
		return fmt.Errorf("reading the database's clock took %v (more than %v)", rtt, maxRTT)
	}
	s.observeClock(db, t0, t1)
	return nil
}

// observeClock sets the offset from db, the database's clock read between
// t0 and t1 by this replica's.
func (s *Service) observeClock(db, t0, t1 time.Time) {
	c := s.dbc
	rtt := t1.Sub(t0)
	off := db.Sub(t0.Add(rtt / 2))
	before := time.Duration(c.offset.Swap(int64(off)))
	if c.started.Load() && off-before >= clockRearm {
		// This replica's clock stepped back since the last measurement:
		// the timers armed meanwhile run late by the step. (A step
		// forward makes them early, which cuts a grant off before its
		// time rather than after; and it is what a test's fake clock
		// moving ahead of the database's looks like, so it is left.)
		s.rearmTimers()
	}
	c.warnMu.Lock()
	defer c.warnMu.Unlock()
	switch {
	case off.Abs() >= clockWarn && (off-c.warned).Abs() >= clockWarn:
		c.warned = off
		s.logger.Warn("this replica's clock differs from the database's; every time it writes and enforces is corrected to the database's clock, but synchronise it (NTP)",
			"ahead_by", -off, "round_trip", rtt)
	case off.Abs() < clockWarn && c.warned != 0:
		c.warned = 0
		s.logger.Info("this replica's clock agrees with the database's again", "ahead_by", -off)
	}
}

// stopClockLocked stops the periodic measurement; s.mu is held.
func (s *Service) stopClockLocked() {
	if s.dbc.timer != nil {
		s.dbc.timer.Stop()
		s.dbc.timer = nil
	}
}

// txNow is the time of a record written in tx: the database's clock read
// in it (store.ClockTx), exact whatever step this replica's clock made
// since its last measurement, or the Service's time on a store without
// one. A request's and a decision's times, and so a grant's start and
// expiry, are taken so. The reading is also a measurement (if quick
// enough), so that the timers the transaction's outcome arms are armed
// for the time left by the same clock.
func (s *Service) txNow(ctx context.Context, tx store.Tx) (time.Time, error) {
	ct, ok := tx.(store.ClockTx)
	if !ok {
		return s.now(), nil
	}
	t0 := s.clk.Now()
	db, err := ct.Now(ctx)
	t1 := s.clk.Now()
	if err != nil {
		return time.Time{}, err
	}
	if s.dbc.src != nil && t1.Sub(t0) <= clockMaxRTT {
		s.observeClock(db, t0, t1)
	}
	return db.UTC(), nil
}
