// Package replicaset ends the gateway sessions of a replica that is gone.
//
// Replicas of `airlock serve` sharing a PostgreSQL store each serve their
// own gateway connections. When a replica dies (kill -9, a lost machine) its
// open sessions stay open in the store: nobody else was serving them, so
// nobody ends them. This package records which replica serves each open
// session and lets the survivors end the sessions of a dead one at their
// last recorded event (the grant service's RecoverSession), as a single
// server does for itself when it restarts after a crash.
//
// # Liveness
//
// A replica is alive while it holds a session-level advisory lock, keyed by
// its id, on a connection of its own. PostgreSQL releases the lock the
// moment that connection ends, which is when the process dies. A replica
// whose lock stays free for Grace (5 s) is dead: the grace covers a
// database restart, after which every live replica takes its lock again
// within about a second.
// Ids are random per process and never reused: a restarted replica is a new
// one, and its predecessor's sessions are reaped like any dead replica's.
// A survivor that finds a replica's lock free takes it while it ends that
// replica's sessions, so two survivors never end the same session twice.
//
// A replica whose lock connection alone is cut (the database restarted, a
// network fault) looks dead to the others until it takes its lock again
// (within a second of the database answering); its sessions may then be
// ended under it. Its readiness (Ready) fails until the lock is back.
//
// # What is stored
//
// airlock_replica_sessions (session_id, replica_id, started_at), created by
// this package in the store's schema: a row per open session, inserted when
// the session starts and deleted when it ends (or is reaped). A session
// started by a replica killed before its row was written is not seen (the
// window is one INSERT).
package replicaset

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

const table = `CREATE TABLE IF NOT EXISTS airlock_replica_sessions (
	session_id text COLLATE "C" PRIMARY KEY,
	replica_id text COLLATE "C" NOT NULL,
	started_at timestamptz NOT NULL DEFAULT now()
)`

// lockKey is the advisory lock key of replica id, computed by PostgreSQL.
const lockKey = `hashtextextended('airlock.replica/' || $1, 0)`

// Interval is how often the set checks its lock and reaps.
const Interval = time.Second

// Grace is how long a replica's lock must stay free before its sessions
// are ended. When the database restarts every lock is released at once, and
// live replicas take theirs again within about Interval of it answering;
// the grace keeps the first one back from taking the others for dead. It is
// also how long a replica waits after taking its own lock before it reaps,
// since its view of the others is no older than that.
const Grace = 5 * time.Second

// Set is this replica's membership.
type Set struct {
	id      string
	pool    *pgxpool.Pool
	connCfg *pgx.ConnConfig
	recover func(ctx context.Context, sessionID string) error
	logger  *slog.Logger

	mu     sync.Mutex
	lock   *pgx.Conn // holds our advisory lock; nil while lost
	lockAt time.Time // when lock was taken
	why    error

	// grace is Grace (tests shorten it); freeSince is when each other
	// replica's lock was first seen free, since it was last seen held.
	grace     time.Duration
	freeSince map[string]time.Time

	stop context.CancelFunc
	done chan struct{}
}

// Open joins the set as replica id on the database at dsn (the store's),
// taking this replica's lock, and starts reaping dead replicas' sessions
// with recover. Close leaves.
func Open(ctx context.Context, dsn, id string, recover func(ctx context.Context, sessionID string) error, logger *slog.Logger) (*Set, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("replicaset: the store DSN: %w", err)
	}
	cfg.MaxConns = 2
	cfg.ConnConfig.RuntimeParams["application_name"] = "airlock-replicaset " + id
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("replicaset: %w", err)
	}
	s := &Set{id: id, pool: pool, connCfg: cfg.ConnConfig.Copy(), recover: recover, logger: logger, done: make(chan struct{}),
		grace: Grace, freeSince: map[string]time.Time{}}
	if err := s.init(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	if err := s.relock(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	rctx, cancel := context.WithCancel(context.Background())
	s.stop = cancel
	go s.run(rctx)
	return s, nil
}

func (s *Set) init(ctx context.Context) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("replicaset: %w", err)
	}
	defer tx.Rollback(context.Background())
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended('airlock.replicaset/' || current_schema(), 0))`); err != nil {
		return fmt.Errorf("replicaset: %w", err)
	}
	if _, err := tx.Exec(ctx, table); err != nil {
		return fmt.Errorf("replicaset: creating airlock_replica_sessions: %w", err)
	}
	return tx.Commit(ctx)
}

// relock (re)connects the lock connection and takes this replica's lock.
func (s *Set) relock(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	conn, err := pgx.ConnectConfig(ctx, s.connCfg)
	if err == nil {
		var ok bool
		if err = conn.QueryRow(ctx, "SELECT pg_try_advisory_lock("+lockKey+")", s.id).Scan(&ok); err == nil && !ok {
			err = errors.New("another process holds this replica's lock")
		}
		if err != nil {
			conn.Close(context.Background())
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		s.why = fmt.Errorf("replicaset: taking the replica lock: %w", err)
		return s.why
	}
	s.lock, s.lockAt, s.why = conn, time.Now(), nil
	return nil
}

// Ready reports whether this replica holds its lock (the others see it
// alive).
func (s *Set) Ready() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.lock == nil {
		if s.why == nil {
			return errors.New("replicaset: the replica lock is lost")
		}
		return s.why
	}
	return nil
}

// Started records that this replica serves session id.
func (s *Set) Started(ctx context.Context, sessionID string) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO airlock_replica_sessions (session_id, replica_id) VALUES ($1, $2) ON CONFLICT (session_id) DO NOTHING`, sessionID, s.id)
	if err != nil {
		return fmt.Errorf("replicaset: recording the session's replica: %w", err)
	}
	return nil
}

// Ended forgets session id (it ended normally).
func (s *Set) Ended(ctx context.Context, sessionID string) {
	if _, err := s.pool.Exec(ctx, `DELETE FROM airlock_replica_sessions WHERE session_id = $1`, sessionID); err != nil {
		s.logger.Warn("forgetting an ended session's replica", "session", sessionID, "err", err)
	}
}

// Close leaves the set: the lock is released (this replica's remaining
// sessions, if any, are reaped by the others) and the connections closed.
func (s *Set) Close() {
	s.stop()
	<-s.done
	s.mu.Lock()
	if s.lock != nil {
		s.lock.Close(context.Background())
		s.lock = nil
	}
	s.mu.Unlock()
	s.pool.Close()
}

func (s *Set) run(ctx context.Context) {
	defer close(s.done)
	t := time.NewTicker(Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		s.checkLock(ctx)
		if err := s.Reap(ctx); err != nil && ctx.Err() == nil {
			s.logger.Warn("ending dead replicas' sessions", "err", err)
		}
	}
}

// checkLock pings the lock connection, and takes the lock again on a new
// one if it was lost.
func (s *Set) checkLock(ctx context.Context) {
	s.mu.Lock()
	conn := s.lock
	s.mu.Unlock()
	if conn != nil {
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		err := conn.Ping(pctx)
		cancel()
		if err == nil {
			return
		}
		s.logger.Warn("the replica lock connection is lost; the others may end this replica's sessions", "err", err)
		conn.Close(context.Background())
		s.mu.Lock()
		s.lock, s.why = nil, fmt.Errorf("replicaset: the replica lock connection is lost: %w", err)
		s.mu.Unlock()
	}
	if err := s.relock(ctx); err == nil {
		s.logger.Info("the replica lock is back")
	}
}

// Reap ends the open sessions of every replica that is gone: whose lock
// has been free for the grace period. It does nothing while this replica
// has not held its own lock for the grace period.
func (s *Set) Reap(ctx context.Context) error {
	s.mu.Lock()
	settled := s.lock != nil && time.Since(s.lockAt) >= s.grace
	s.mu.Unlock()
	if !settled {
		return nil
	}
	rows, err := s.pool.Query(ctx, `SELECT DISTINCT replica_id FROM airlock_replica_sessions WHERE replica_id <> $1`, s.id)
	if err != nil {
		return err
	}
	others, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return err
	}
	for _, other := range others {
		if err := s.reapOne(ctx, other); err != nil {
			return fmt.Errorf("replica %s: %w", other, err)
		}
	}
	return nil
}

// reapOne ends replica other's sessions if its lock is free, holding the
// lock meanwhile (on one pooled connection) so no other survivor does too.
func (s *Set) reapOne(ctx context.Context, other string) error {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	var free bool
	if err := conn.QueryRow(ctx, "SELECT pg_try_advisory_lock("+lockKey+")", other).Scan(&free); err != nil {
		return err
	}
	if !free {
		s.mu.Lock()
		delete(s.freeSince, other) // alive
		s.mu.Unlock()
		return nil
	}
	defer conn.Exec(context.Background(), "SELECT pg_advisory_unlock("+lockKey+")", other)
	s.mu.Lock()
	since, seen := s.freeSince[other]
	if !seen {
		s.freeSince[other] = time.Now()
	}
	s.mu.Unlock()
	if !seen || time.Since(since) < s.grace {
		return nil // perhaps reconnecting after a database restart
	}
	rows, err := conn.Query(ctx, `SELECT session_id FROM airlock_replica_sessions WHERE replica_id = $1 ORDER BY started_at`, other)
	if err != nil {
		return err
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return err
	}
	for _, id := range ids {
		if err := s.recover(ctx, id); err != nil {
			return fmt.Errorf("ending session %s: %w", id, err)
		}
		if _, err := conn.Exec(ctx, `DELETE FROM airlock_replica_sessions WHERE session_id = $1`, id); err != nil {
			return err
		}
		s.logger.Warn("ended a session of a replica that is gone, at its last recorded event", "session", id, "replica", other)
	}
	s.mu.Lock()
	delete(s.freeSince, other)
	s.mu.Unlock()
	return nil
}
