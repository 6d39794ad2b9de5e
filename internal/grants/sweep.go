package grants

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/airlock-dev/airlock/internal/store"
)

// DefaultSessionSweep is the default Options.SessionSweep.
const DefaultSessionSweep = 15 * time.Second

// DefaultReplicaGrace is the default Options.ReplicaGrace: well above the
// time a live replica's listener takes to get its lock back after a
// database restart (backoff up to 5 s, then a re-read).
const DefaultReplicaGrace = 30 * time.Second

// sweepTimeout bounds one sweep's store reads and writes.
const sweepTimeout = 30 * time.Second

// Sessions of a replica that died. A session lives in the memory of the
// replica whose gateway serves it; when that process dies (kill -9, a lost
// machine) nobody ends it. Each session.started entry names its replica
// (Options.ReplicaID), and each running replica holds a lock in the store
// that says so (store.ReplicaRegistry). Every replica sweeps the open
// sessions (store.OpenSessionLister: an index of the sessions whose row
// records no end, whatever their grant and however long ago it ended)
// every SessionSweep, and ends, at their last recorded event, those whose
// replica has been gone at every sweep for at least ReplicaGrace (and at
// two sweeps at least): a live replica loses its lock while its listener
// reconnects, which after a database restart takes up to the listener's
// backoff (5 s) and its re-read. The end is written once: inside the write
// transaction the session is read again (store.SessionTx) and left alone
// if another replica ended it first. At a replica's first sweep its own
// earlier run's sessions (same ReplicaID) are ended at once. A sweep reads
// the open sessions and, for each it has not seen open before, its first
// log entry (which names its replica); a session's whole log is read only
// to end it. Sessions started
// before replicas recorded their replica are not swept.

// sweepLoop sweeps at start and then every interval until stop closes.
func (s *Service) sweepLoop(stop <-chan struct{}, interval time.Duration) {
	first := true
	for {
		// A sweep is bounded by its own timeout, not by the interval: a
		// sweep cut short never records which replicas it found gone, so
		// under load (or with a short interval) a dead replica's sessions
		// would never reach their grace.
		ctx, cancel := context.WithTimeout(context.Background(), max(interval, sweepTimeout))
		if err := s.sweepSessions(ctx, first); err != nil {
			s.logger.Warn("sweeping the sessions of stopped replicas", "err", err)
		} else {
			first = false
		}
		cancel()
		t := time.NewTimer(interval)
		select {
		case <-stop:
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// sweepSessions ends the open sessions of dead replicas; mine says that
// this replica's own sessions are from an earlier run (its first sweep).
func (s *Service) sweepSessions(ctx context.Context, mine bool) error {
	reg, ok := s.st.(store.ReplicaRegistry)
	if !ok {
		return nil
	}
	lister, ok := s.st.(store.OpenSessionLister)
	if !ok {
		return nil
	}
	open, err := lister.OpenSessions(ctx)
	if err != nil {
		return err
	}
	alive := map[string]bool{}
	gone := map[string]time.Time{} // replicas found gone, since when
	owners := make(map[string]sessionOwner, len(open))
	now := time.Now()
	for _, ses := range open {
		if !ses.EndedAt.IsZero() {
			continue
		}
		// A session's replica never changes: it is read once, from its
		// session.started entry (its first: the read stops there).
		so, known := s.rep.owners[ses.ID]
		if !known {
			first, err := s.st.LogEntries(ctx, store.LogFilter{SessionID: ses.ID, Type: "session.started", Limit: 1})
			if err != nil {
				return err
			}
			so = sessionOwnerOf(first)
		}
		owners[ses.ID] = so
		owner := so.replica
		switch {
		case owner == "":
			continue
		case owner == s.rep.id:
			// This run's sessions started after Start began, so their
			// session.started entries come after the log's size then
			// (startSeq). Their times cannot tell: a time is this
			// replica's clock plus its offset from the database's, and
			// each measurement moves the offset by up to half its round
			// trip (or a step of the clock moves it), so a session started
			// just after Start could read as before it, and the first
			// sweep, running late on a loaded machine, ended a live
			// session whose calls then followed its end in the log.
			if !mine || so.started >= s.rep.startSeq {
				continue // this run's: live
			}
		default:
			a, known := alive[owner]
			if !known {
				if a, err = reg.ReplicaAlive(ctx, owner); err != nil {
					return err
				}
				alive[owner] = a
			}
			if a {
				continue
			}
			since, before := s.rep.gone[owner]
			if !before {
				since = now
			}
			gone[owner] = since
			if !before || now.Sub(since) < s.rep.grace {
				continue // gone at two sweeps in a row, for the grace, or not yet
			}
		}
		entries, err := s.st.LogEntries(ctx, store.LogFilter{SessionID: ses.ID})
		if err != nil {
			return err
		}
		why := fmt.Sprintf("replica %s stopped without ending the session; it ends at its last recorded event", owner)
		if err := s.recoverSession(ctx, ses, entries, nil, why); err != nil {
			return err
		}
	}
	s.rep.gone, s.rep.owners = gone, owners
	return nil
}

// sessionOwner is what a sweep needs of a session's session.started
// entry: the replica it names, and the entry's place in the log.
type sessionOwner struct {
	replica string
	started int64
}

// sessionOwnerOf reads a session's session.started entry.
func sessionOwnerOf(entries []store.LogEntry) sessionOwner {
	for _, e := range entries {
		if e.Type != "session.started" {
			continue
		}
		var ent struct {
			Data struct {
				Replica string `json:"replica"`
			} `json:"data"`
		}
		if json.Unmarshal(e.Data, &ent) == nil {
			return sessionOwner{replica: ent.Data.Replica, started: e.Seq}
		}
	}
	return sessionOwner{}
}

// RecoverSession ends one open session whose gateway is gone (its replica
// died) at its last recorded event, counting its summary again from the
// log; a session already ended is left alone (on a shared store this is
// checked again inside the write transaction, so the end is written once
// however many replicas call it). The sweep above does this by itself;
// RecoverSession is for a caller that tracks replicas another way.
func (s *Service) RecoverSession(ctx context.Context, sessionID string) error {
	ses, err := s.st.Session(ctx, sessionID)
	if err != nil {
		return err
	}
	if !ses.EndedAt.IsZero() {
		return nil
	}
	entries, err := s.st.LogEntries(ctx, store.LogFilter{SessionID: sessionID})
	if err != nil {
		return err
	}
	return s.recoverSession(ctx, ses, entries, nil, "the replica serving it is gone; it ends at its last recorded event")
}
